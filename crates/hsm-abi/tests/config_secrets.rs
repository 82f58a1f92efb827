//! Issue 21, item 6: a configuration with a syntax error after a secret (a missing quote after
//! `symmetric_key = "`) is reported by line and key, the value hidden, in
//! `hsm_abi_last_error()` and in the ERROR log (`HSM_ABI_LOG`), from a file and from inline text.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Calling `extern "C"` functions is unsafe by nature.
#![allow(unsafe_code)]

mod common;

use std::ffi::CString;
use std::process::Command;

use common::last_error;
use hsm_abi::ffi::ext::*;

const SECRET: &str = "c2VjcmV0LWtleS1mb3ItdGhlLWFiaS10ZXN0";
const CHILD: &str = "HSM_ABI_CONFIG_SECRETS_CHILD";

fn broken() -> String {
    format!("[symmetric_key]\nbackend = \"file\"\nregistration_id = \"r1\"\nsymmetric_key = \"{SECRET}\n")
}

/// In the child (logging to stderr): configure from a broken file and broken text, print each
/// last error on stdout.
fn child() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hsm.toml");
    std::fs::write(&path, broken()).unwrap();
    let p = CString::new(path.to_str().unwrap()).unwrap();
    assert_ne!(unsafe { hsm_abi_configure_file(p.as_ptr()) }, 0);
    println!("\nLAST_ERROR file: {}", last_error());
    let t = CString::new(broken()).unwrap();
    assert_ne!(unsafe { hsm_abi_configure_toml(t.as_ptr()) }, 0);
    println!("LAST_ERROR inline: {}", last_error());
}

#[test]
fn a_syntax_error_shows_no_secret_in_the_last_error_or_the_log() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_syntax_error_shows_no_secret_in_the_last_error_or_the_log"])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("HSM_ABI_LOG", "trace")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    for origin in ["file", "inline"] {
        let line = stdout
            .lines()
            .find(|l| l.contains(&format!("LAST_ERROR {origin}: ")))
            .unwrap_or_else(|| panic!("no last error from the {origin} configuration: {stdout}"));
        assert!(
            line.contains("line 4") && line.contains("symmetric_key = <hidden>"),
            "{line}"
        );
    }
    assert!(!stdout.contains(SECRET), "{stdout}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 2, "{stderr}");
    assert!(
        errors.iter().all(|l| l.contains("symmetric_key = <hidden>")),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET), "{stderr}");
}
