//! Alias-key tokens (hsm-core): decoding never panics; a decoded value encodes to a token that
//! decodes to the same value; a pkcs11 token goes on to the URI parser.
#![no_main]

use hsm_core::token::KeyToken;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(token) = KeyToken::decode(text) else { return };
    if let Ok(again) = token.encode() {
        assert_eq!(
            KeyToken::decode(&again).ok().as_ref(),
            Some(&token),
            "{text:?} -> {again:?}"
        );
    }
    if let KeyToken::Pkcs11(uri) = token {
        let _ = hsm_pkcs11::Pkcs11Uri::parse(&uri);
    }
});
