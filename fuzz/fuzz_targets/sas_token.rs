//! SAS tokens: parsing never panics, and `verify` agrees with an independent HMAC (ring) on every token
//! that parses, for a fixed key and for the key that makes the signature right.
#![no_main]

use hsm_core::sas::SasToken;
use libfuzzer_sys::fuzz_target;

const KEY: &[u8] = b"secret-key-for-device-sym";

fn ring_verify(token: &SasToken, key: &[u8]) -> bool {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::verify(&key, token.string_to_sign().as_bytes(), &token.signature).is_ok()
}

fuzz_target!(|text: &str| {
    let Ok(mut token) = SasToken::parse(text) else { return };
    assert_eq!(token.verify(KEY), ring_verify(&token, KEY), "{text:?}");
    // Make the signature right, then both must accept it.
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, KEY);
    token.signature = ring::hmac::sign(&key, token.string_to_sign().as_bytes())
        .as_ref()
        .to_vec();
    assert!(token.verify(KEY) && ring_verify(&token, KEY), "{text:?}");
});
