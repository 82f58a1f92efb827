//! The TPM activation blob (the decoded authenticationKey): strict parsing, and a byte-exact round trip.
#![no_main]

use hsm_tpm::ActivationBlob;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(blob) = ActivationBlob::parse(bytes) {
        assert_eq!(blob.to_bytes(), bytes, "a parsed blob writes back the same bytes");
    }
});
