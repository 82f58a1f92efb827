//! The example binaries of the package under test: `cargo test -p PACKAGE` builds them into
//! `target/*/examples` before it runs any test; a missing or stale one is refused. The example vendor
//! backend in C, built with make.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The example `name` of the package whose manifest directory is `manifest_dir` (pass
/// `env!("CARGO_MANIFEST_DIR")`) and whose name is `package`, checked to exist and to be no older
/// than its source (`cargo test --test examples` alone does not rebuild the examples).
pub fn binary(manifest_dir: &str, package: &str, name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo test -p {package}` (it builds the examples), not a single --test",
        path.display()
    );
    let source = Path::new(manifest_dir).join(format!("examples/{name}.rs"));
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).unwrap();
    assert!(
        modified(&path) >= modified(&source),
        "{} is older than its source: run `cargo test -p {package}`",
        path.display()
    );
    path
}

/// Runs `cmd` to its end: how it ended, and what it printed (standard output, then standard error).
pub fn run(cmd: &mut Command) -> (Output, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// The repository's root (the directory above `crates/`).
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds the example vendor backend (examples/vendor-ecdsa, C over libcrypto) with make into `out`
/// (a directory under the caller's `CARGO_TARGET_TMPDIR`); the library's path.
pub fn vendor_ecdsa(out: &Path) -> PathBuf {
    std::fs::create_dir_all(out).unwrap();
    let status = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(repository_root().join("examples/vendor-ecdsa"))
        .arg(format!("OUT={}", out.display()))
        .status()
        .expect("make is required to build examples/vendor-ecdsa");
    assert!(status.success(), "building examples/vendor-ecdsa failed");
    out.join("libvendor_ecdsa.so")
}
