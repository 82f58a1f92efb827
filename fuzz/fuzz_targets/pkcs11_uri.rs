//! PKCS#11 URIs: parsing never panics, and what parses writes back to a URI that parses to the same value.
#![no_main]

use hsm_pkcs11::Pkcs11Uri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(uri) = Pkcs11Uri::parse(text) else { return };
    let mut again = Pkcs11Uri::parse(&uri.to_token_string()).expect("a written URI parses");
    // Not written back, by design.
    again.pin_value = uri.pin_value.clone();
    again.vendor_query = uri.vendor_query.clone();
    assert_eq!(again, uri, "round trip of {text:?}");
    let _ = (uri.token_description(), uri.object_description(), uri.vendor_note());
});
