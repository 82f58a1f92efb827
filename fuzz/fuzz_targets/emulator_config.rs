//! The emulator's TOML configuration: never panics, whatever the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = dps_emulator::EmulatorConfig::from_toml(text, std::path::Path::new("/nonexistent"));
});
