//! Alias-key tokens (hsm-core): classification never panics; a pkcs11 token goes on to the URI parser.
#![no_main]

use hsm_core::token::KeyToken;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(KeyToken::Pkcs11(uri)) = KeyToken::parse(text) {
        let _ = hsm_pkcs11::Pkcs11Uri::parse(&uri);
    }
});
