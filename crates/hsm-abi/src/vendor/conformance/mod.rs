//! The conformance run of a vendor table: every field, bad inputs, the caller-buffer rule,
//! concurrency, and signatures verified independently (ring), with a PASS/FAIL/SKIP report.
//!
//! `hsmctl conformance --vendor-lib PATH --identity ID` prints this report. A crash of the
//! vendor library during a probe ends the process: each check is reported through `progress`
//! before it runs, so the last line names the probe that crashed.

use std::sync::Arc;

use hsm_core::{SigningKey, X509Identity};

use super::{BytesField, VendorKey, VendorTable, VendorX509};

mod checks;
mod options;
mod report;

use checks::{buffer_rule, sign_checks, symmetric_checks, tpm_checks};
pub use options::Options;
pub use report::{Check, Outcome, Report};
use report::{Run, describe, expect_failure, yes};

/// Run every check on `table` with `opts.identity`; `progress` sees each check as it ends.
pub fn run(table: &Arc<VendorTable>, opts: &Options, progress: &mut dyn FnMut(&Check)) -> Report {
    let mut run = Run {
        report: Report {
            backend: format!("vendor backend \"{}\" ({})", table.name(), table.origin()),
            checks: Vec::new(),
        },
        progress,
    };
    let caps = table.capabilities();
    run.check(
        "table: version, struct_size, mandatory fields, complete groups",
        Ok(format!(
            "version {}; optional: get_public_key {}, error_string {}, TPM group {}, symmetric group {} (get_symmetric_key {})",
            table.version(),
            yes(caps.public_key),
            yes(caps.error_string),
            yes(caps.tpm),
            yes(caps.symmetric),
            yes(caps.symmetric_key_export),
        )),
    );

    // ---- open / close ----
    table.probe_close_null();
    run.check("close(NULL) is a no-op", Ok(String::new()));
    match table.probe_open(None) {
        Ok((rc, None)) => run.check("open(NULL identity) is refused", expect_failure("open(NULL)", rc)),
        Ok((_, Some(_))) => run.check("open(NULL identity) is refused", Err("it succeeded".into())),
        Err(e) => run.check("open(NULL identity) is refused", Err(e.to_string())),
    }
    match table.probe_open_null_out(&opts.identity) {
        Ok(rc) => run.check(
            "open(identity, NULL out) is refused",
            expect_failure("open with out NULL", rc),
        ),
        Err(e) => run.check("open(identity, NULL out) is refused", Err(e.to_string())),
    }
    let bogus = format!("{}\u{1}no-such-identity", opts.identity);
    match table.probe_open(Some(&bogus)) {
        Ok((rc, None)) => run.check("open(unknown identity) is refused", expect_failure("open", rc)),
        Ok((_, Some(_))) => run.record(
            "open(unknown identity) is refused",
            Outcome::Skip("the backend accepts any identity string".into()),
        ),
        Err(e) => run.check("open(unknown identity) is refused", Err(e.to_string())),
    }
    let raw = match table.open(&opts.identity) {
        Ok(raw) => {
            run.check(format!("open({:?})", opts.identity), Ok(String::new()));
            Arc::new(raw)
        }
        Err(e) => {
            run.check(format!("open({:?})", opts.identity), Err(e.to_string()));
            return run.report;
        }
    };

    // ---- byte fields and the caller-buffer rule ----
    for field in BytesField::ALL {
        buffer_rule(&mut run, &raw, field);
    }

    // ---- certificate, common name, public key ----
    let chain = match super::certificate_chain(raw.as_ref()) {
        Ok(chain) => {
            run.check(
                "certificate chain is PEM, leaf first",
                Ok(format!("{} certificate(s)", chain.len())),
            );
            Some(chain)
        }
        Err(e) => {
            run.check("certificate chain is PEM, leaf first", Err(e.to_string()));
            None
        }
    };
    if let Some(leaf) = chain.as_ref().and_then(|c| c.first()) {
        let cn = hsm_core::pem::common_name(leaf);
        let got = raw.text(BytesField::CommonName);
        run.check(
            "get_common_name equals the leaf certificate's CN",
            match (cn, got) {
                (Ok(a), Ok(b)) if a == b => Ok(a),
                (Ok(a), Ok(b)) => Err(format!("get_common_name {b:?}, certificate CN {a:?}")),
                (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
            },
        );
        if caps.public_key {
            run.check(
                "get_public_key equals the leaf certificate's key",
                match (hsm_core::pem::public_key_spki(leaf), raw.bytes(BytesField::PublicKey)) {
                    (Ok(a), Ok(b)) if a == b => Ok(format!("{} bytes", a.len())),
                    (Ok(_), Ok(_)) => Err("the keys differ".into()),
                    (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
                },
            );
        }
    }

    // ---- key_info ----
    let (rc, _) = raw.probe_key_info(4);
    run.check(
        "key_info with struct_size 4 is refused",
        expect_failure("key_info(struct_size 4)", rc),
    );
    run.check(
        "key_info(NULL) is refused",
        expect_failure("key_info(NULL)", raw.probe_key_info_null()),
    );
    let info = match raw.key_info_checked() {
        Ok(info) => {
            run.check("key_info describes a usable key", Ok(describe(&info)));
            Some(info)
        }
        Err(e) => {
            run.check("key_info describes a usable key", Err(e.to_string()));
            None
        }
    };
    let key = match VendorKey::new(raw.clone()) {
        Ok(k) => {
            run.check(
                "key_info matches the certificate's key",
                Ok(format!("{:?}", k.algorithm())),
            );
            Some(Arc::new(k))
        }
        Err(e) => {
            run.check("key_info matches the certificate's key", Err(e.to_string()));
            None
        }
    };

    // ---- sign ----
    if let (Some(info), Some(key)) = (info, key) {
        sign_checks(&mut run, &raw, &info, &key, opts);
    } else {
        run.record("sign", Outcome::Skip("no usable key description".into()));
    }

    // ---- optional groups ----
    tpm_checks(&mut run, &raw);
    symmetric_checks(&mut run, &raw);

    // ---- error strings ----
    if caps.error_string {
        let text = table.explain(987_654);
        run.check(
            "error_string answers for an unknown code",
            Ok(format!("code 987654: {text:?}")),
        );
    }

    // ---- the backend as the SDK and rustls see it ----
    drop(raw);
    let source_free = VendorX509Probe::open(table, &opts.identity);
    run.check("the wrapped x509 identity (as the SDK and TLS use it)", source_free);
    run.report
}

/// Open the identity through the safe wrapper, as the registry does for `backend = "vendor"`.
struct VendorX509Probe;

impl VendorX509Probe {
    fn open(table: &Arc<VendorTable>, identity: &str) -> Result<String, String> {
        let raw = Arc::new(table.open(identity).map_err(|e| e.to_string())?);
        let id = VendorX509::from_raw(raw, String::new()).map_err(|e| e.to_string())?;
        let cn = id.common_name().map_err(|e| e.to_string())?;
        let key = id.signing_key().map_err(|e| e.to_string())?;
        let scheme = key.schemes().first().copied().ok_or("no scheme")?;
        key.sign(scheme, b"wrapped").map_err(|e| e.to_string())?;
        Ok(format!("common name {cn:?}, {scheme} signature verified"))
    }
}
