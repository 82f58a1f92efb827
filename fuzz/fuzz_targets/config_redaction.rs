//! Configuration errors never show a secret (`hsm_core::redact`): whatever text surrounds a
//! line `symmetric_key = "SECRET…` (the input, split at its first NUL byte, goes before and
//! after it), the errors of the library's and the emulator's parsers do not contain SECRET.
#![no_main]

use libfuzzer_sys::fuzz_target;

const SECRET: &str = "S3cr3tV4lu3Xq7";

fuzz_target!(|text: &str| {
    let (before, after) = text.split_once('\0').unwrap_or((text, ""));
    let doc = format!("{before}\nsymmetric_key = \"{SECRET}{after}");
    let base = std::path::Path::new("/nonexistent");
    if let Err(e) = hsm_core::config::Config::from_toml(&doc, "fuzz.toml", base) {
        let e = e.to_string();
        assert!(!e.contains(SECRET), "{e}");
    }
    if let Err(e) = dps_emulator::EmulatorConfig::from_toml(&doc, base) {
        let e = e.to_string();
        assert!(!e.contains(SECRET), "{e}");
    }
    if let Err(e) = doc.parse::<toml::Table>() {
        let e = hsm_core::redact::toml_error(&doc, &e);
        assert!(!e.contains(SECRET), "{e}");
        let _ = hsm_core::redact::message(&e);
    }
});
