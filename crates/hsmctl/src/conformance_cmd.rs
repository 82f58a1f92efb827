//! `hsmctl conformance`: run the vendor-backend conformance check (hsm_abi::vendor::conformance)
//! on a vendor shared object, or on this library's built-in backends, and print a PASS/FAIL
//! report. Exits non-zero when any check fails.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use hsm_abi::vendor::VendorTable;
use hsm_abi::vendor::conformance::{self, Options};
use hsm_core::{Error, Origin};

#[derive(Debug, Args)]
pub struct ConformanceArgs {
    /// The vendor shared object (it exports `hsm_abi_vendor_table`).
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present = "builtin",
        conflicts_with = "builtin"
    )]
    pub vendor_lib: Option<PathBuf>,
    /// Check this library's own backends through the same table instead; --identity is then the
    /// path of a configuration file ([x509], optionally [symmetric_key] and [tpm]).
    #[arg(long)]
    pub builtin: bool,
    /// The identity string passed to the vendor's `open`.
    #[arg(long, default_value = "")]
    pub identity: String,
    /// Threads of the concurrency checks.
    #[arg(long, default_value_t = 8)]
    pub threads: usize,
    /// Signatures per thread in the concurrency checks.
    #[arg(long, default_value_t = 25)]
    pub signs_per_thread: usize,
}

/// Run the check; `Err` when the table is refused or any check fails.
pub fn run(args: ConformanceArgs) -> Result<(), Error> {
    let table = match (&args.vendor_lib, args.builtin) {
        (Some(path), _) => VendorTable::load(path)?,
        (None, true) => VendorTable::builtin()?,
        (None, false) => return Err(Error::invalid("--vendor-lib", "give --vendor-lib PATH or --builtin")),
    };
    let opts = Options {
        identity: args.identity,
        threads: args.threads,
        signs_per_thread: args.signs_per_thread,
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "conformance of vendor backend \"{}\" ({})",
        table.name(),
        table.origin()
    );
    let report = conformance::run(&table, &opts, &mut |check| {
        // Flushed line by line: if the vendor crashes, the last line names the probe before it.
        let _ = writeln!(out, "{check}");
        let _ = out.flush();
    });
    outln!("{}", report.summary());
    if report.ok() {
        Ok(())
    } else {
        Err(Error::Device {
            origin: Origin::Vendor,
            op: format!("{}: conformance", table.name()),
            rv: report.failed() as u64,
            message: format!("{} check(s) failed (FAIL lines above)", report.failed()),
        })
    }
}
