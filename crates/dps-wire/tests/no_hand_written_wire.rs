//! The DPS wire is written once, in this crate: the sources of `dps-device`, `dps-service` and
//! `dps-emulator` build no JSON by hand (`json!(`) and read none by hand (`value["field"]`,
//! `value.get("field")`). A line that must do so for JSON that is not a DPS object is on the
//! allow-list below, each with its reason.
//!
//! Tests of those crates (their `tests/` directories) are not scanned: they send raw JSON on purpose,
//! to see how the other side answers what the types would never build.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

/// The crates whose sources are scanned (beside this one in `crates/`).
const SCANNED: &[&str] = &["dps-device", "dps-service", "dps-emulator"];

/// `(file under crates/, text on the line, why it is not a DPS object)`.
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "dps-device/src/amqp/websocket.rs",
        ".get(\"Sec-WebSocket-Protocol\")",
        "an HTTP header of the WebSocket upgrade answer, not JSON",
    ),
    (
        "dps-emulator/src/config.rs",
        "table.get(\"enrollment\")",
        "the emulator's own TOML configuration file, not the DPS wire",
    ),
    (
        "dps-emulator/src/config.rs",
        "table.get(\"service_policy\")",
        "the emulator's own TOML configuration file, not the DPS wire",
    ),
    (
        "dps-emulator/src/config.rs",
        "t.get(\"rights\")",
        "the emulator's own TOML configuration file, not the DPS wire",
    ),
];

/// What a hand-written read or write of a JSON object looks like on one line.
fn hand_written(line: &str) -> Option<&'static str> {
    let code = line.split("//").next().unwrap_or_default();
    if code.contains("json!(") {
        return Some("json!(");
    }
    if code.contains(".get(\"") {
        return Some(".get(\"field\")");
    }
    // Indexing: an expression (a name, a call, an index) directly followed by `["`; an array literal
    // (`["a", "b"]`) follows a space, `(`, `&`, `=` or `!` instead.
    let bytes = code.as_bytes();
    let indexed = code.match_indices("[\"").any(|(i, _)| {
        i > 0 && {
            let before = bytes[i - 1];
            before.is_ascii_alphanumeric() || matches!(before, b'_' | b')' | b']')
        }
    });
    indexed.then_some("value[\"field\"]")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_crate_but_the_wire_builds_or_reads_dps_json_by_hand() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    let mut used = vec![false; ALLOWED.len()];
    let mut scanned = 0;
    for name in SCANNED {
        let mut files = Vec::new();
        rust_files(&crates.join(name).join("src"), &mut files);
        assert!(!files.is_empty(), "{name} has no sources to scan");
        for file in files {
            scanned += 1;
            let rel = file.strip_prefix(&crates).unwrap().to_string_lossy().replace('\\', "/");
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let Some(form) = hand_written(line) else { continue };
                match ALLOWED.iter().position(|(f, t, _)| *f == rel && line.contains(t)) {
                    Some(i) => used[i] = true,
                    None => found.push(format!("{rel}:{}: {form}: {}", n + 1, line.trim())),
                }
            }
        }
    }
    assert!(scanned > 10, "only {scanned} files scanned");
    assert!(
        found.is_empty(),
        "DPS JSON written or read by hand (use the dps_wire types):\n{}",
        found.join("\n")
    );
    let stale: Vec<_> = ALLOWED
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(a, _)| a)
        .collect();
    assert!(
        stale.is_empty(),
        "allow-list entries that match nothing (remove them): {stale:?}"
    );
}

#[test]
fn the_scan_sees_each_form_and_passes_array_literals() {
    for line in [
        r#"let body = json!({"registrationId": id});"#,
        r#"    let id = body["registrationId"].as_str();"#,
        r#"a["x509"]["signingCertificates"]"#,
        r#"f(x)["etag"]"#,
        r#"let s = object.get("status");"#,
    ] {
        assert!(hand_written(line).is_some(), "not seen: {line}");
    }
    for line in [
        r#"for slot in ["primary", "secondary"] {"#,
        r#"const KEYS: &[&str] = &["a"];"#,
        r#"if !["name"].contains(&k) {"#,
        r#"// value["comment"] is not code"#,
    ] {
        assert!(hand_written(line).is_none(), "wrongly seen: {line}");
    }
}
