//! The emulator's HTTP request reading and handling over raw bytes (what arrives after TLS).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    dps_emulator::fuzzing::http(bytes);
});
