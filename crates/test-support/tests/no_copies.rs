//! The workspace's tests use this crate's fixtures instead of copies: no test outside it builds
//! certificates with rcgen, starts SoftHSM2 by hand, writes the emulator's configuration literal,
//! or sleeps to wait for something (a sleep that paces the behaviour under test says so in a
//! comment just above it, with the word "pace" or "pacing").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

/// What a test may not write, and what to use instead.
const COPIES: &[(&str, &str)] = &[
    (
        "CertificateParams::new",
        "test_support::pki (params, leaf_params, Ca::leaf_with...)",
    ),
    ("CertifiedIssuer::", "test_support::pki::Ca"),
    ("Issuer::from_params", "test_support::pki::Ca"),
    ("Issuer::new(", "test_support::pki::Ca"),
    ("generate_simple_self_signed", "test_support::pki::self_signed_server"),
    ("serialize_request", "test_support::pki::csr"),
    (
        "SoftHsm::create",
        "test_support::softhsm (fixture, for_children, create)",
    ),
    ("assigned_hub:", "test_support::emulator::config"),
    ("process_new_packets", "test_support::tls::handshake"),
];

/// Sleeps that still stand for an event the test cannot observe yet (issue 22): the device having
/// taken the hub's 202 before the emulator is stopped. Seeing the 202 reach the device's socket
/// (an MQTT relay) is not enough: when the connection ends right behind it, the device reports the
/// error as if no 202 had come (seen with such a relay: the PUBACK counted, the 202 not).
const PENDING_SLEEPS: &[&str] = &["hsm-issued/tests/flow.rs"];

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries {
        let path = e.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Every Rust file under a `tests/` directory of a crate other than this one, with its name
/// relative to `crates/`.
fn test_files() -> Vec<(String, String)> {
    let root = crates_dir();
    let mut files = Vec::new();
    for krate in std::fs::read_dir(&root).unwrap() {
        let krate = krate.unwrap().path();
        if krate.file_name().is_some_and(|n| n == "test-support") {
            continue;
        }
        rust_files(&krate.join("tests"), &mut files);
    }
    assert!(
        files.len() > 50,
        "found only {} test files under {}",
        files.len(),
        root.display()
    );
    files
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

fn copies_in(name: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (pattern, instead) in COPIES {
        for (n, line) in text.lines().enumerate() {
            if line.contains(pattern) {
                found.push(format!("{name}:{}: `{pattern}`: use {instead}", n + 1));
            }
        }
    }
    found
}

fn sleeps_in(name: &str, text: &str) -> Vec<String> {
    if PENDING_SLEEPS.contains(&name) {
        return Vec::new();
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        if !line.contains("sleep(") || line.trim_start().starts_with("//") {
            continue;
        }
        let above = lines[n.saturating_sub(3)..n].join("\n").to_lowercase();
        if !above.contains("pace") && !above.contains("pacing") {
            found.push(format!(
                "{name}:{}: a sleep: wait on the event with test_support::wait (or say why it paces)",
                n + 1
            ));
        }
    }
    found
}

#[test]
fn no_test_copies_a_fixture_or_sleeps_for_an_event() {
    let mut found = Vec::new();
    for (name, text) in test_files() {
        found.extend(copies_in(&name, &text));
        found.extend(sleeps_in(&name, &text));
    }
    assert!(
        found.is_empty(),
        "copies of test-support fixtures:\n{}",
        found.join("\n")
    );
}

/// The check finds what it looks for (it is not passing because it reads nothing).
#[test]
fn the_check_sees_a_copy_and_an_unexplained_sleep() {
    let copy = "let p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();";
    assert_eq!(copies_in("x/tests/a.rs", copy).len(), 1);
    let sleep = "fn f() {\n    std::thread::sleep(Duration::from_millis(300));\n}";
    assert_eq!(sleeps_in("x/tests/a.rs", sleep).len(), 1);
    let paced = "    // Pacing: a byte every 300 ms is the behaviour under test.\n    std::thread::sleep(d);";
    assert!(sleeps_in("x/tests/a.rs", paced).is_empty());
}
