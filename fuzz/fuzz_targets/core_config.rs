//! The library's TOML configuration (hsm-core): never panics, whatever the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = hsm_core::config::Config::from_toml(text, "fuzz.toml", std::path::Path::new("/nonexistent"));
});
