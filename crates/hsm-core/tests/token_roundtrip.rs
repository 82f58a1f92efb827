//! Key tokens: `decode(encode(v)) == v` for every value of every backend's token, and
//! `encode(decode(t)) == t` for every token written by `encode`; paths with spaces, `;`, `%`,
//! `=` and any Unicode; non-UTF-8 refused with a clear error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use hsm_core::token::{DiceToken, InlinePem, KeyToken, TpmKeyLocation, TpmToken, VendorSource, VendorToken};
use proptest::prelude::*;

/// Text with the characters that end attributes or start escapes, and any Unicode.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9 ;=%/.~_-]{0,16}",
        "\\PC{0,12}",
        Just(String::from("%25%3B; =%")),
    ]
}

fn path() -> impl Strategy<Value = PathBuf> {
    prop_oneof![
        prop::collection::vec("[a-zA-Z0-9 ;=%._~-]{1,10}", 1..4)
            .prop_map(|parts| PathBuf::from(format!("/{}", parts.join("/")))),
        "\\PC{1,16}".prop_map(PathBuf::from),
        Just(PathBuf::from("relative dir/key;1%.pem ")),
    ]
}

fn tcti() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        "(swtpm|mssim|device|tabrmd):[a-z0-9=,.:/_]{1,30}".prop_map(Some),
        // Any character inside, since the TCTI is last and written as it is.
        "[a-z]\\PC{0,20}[a-z]".prop_map(Some),
    ]
}

fn token() -> impl Strategy<Value = KeyToken> {
    prop_oneof![
        "pkcs11:token=[a-z0-9%]{1,8};object=[a-z0-9%]{1,8}(\\?pin-source=file:[a-z/]{1,10})?"
            .prop_map(KeyToken::Pkcs11),
        (0x8100_0000u32..=0x81ff_ffff, tcti()).prop_map(|(h, tcti)| KeyToken::Tpm(TpmToken {
            location: TpmKeyLocation::Persistent(h),
            tcti
        })),
        (path(), tcti()).prop_map(|(p, tcti)| KeyToken::Tpm(TpmToken {
            location: TpmKeyLocation::Blob(p),
            tcti
        })),
        (path(), any::<[u8; 32]>()).prop_map(|(uds_file, fwid)| KeyToken::Dice(DiceToken { uds_file, fwid })),
        path().prop_map(KeyToken::File),
        (path(), text()).prop_map(|(p, identity)| KeyToken::Vendor(VendorToken {
            source: VendorSource::Library(p),
            identity
        })),
        (text(), text()).prop_map(|(n, identity)| KeyToken::Vendor(VendorToken {
            source: VendorSource::Registered(n),
            identity
        })),
        "[A-Za-z0-9+/=\n]{0,40}".prop_map(|b| KeyToken::InlinePem(InlinePem::new(&format!(
            "-----BEGIN PRIVATE KEY-----\n{b}\n-----END PRIVATE KEY-----\n"
        )))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn every_token_round_trips(v in token()) {
        let t = v.encode().unwrap();
        let back = KeyToken::decode(&t).unwrap();
        prop_assert_eq!(&back, &v, "token {:?}", t);
        prop_assert_eq!(back.encode().unwrap(), t);
    }

    #[test]
    fn decoding_never_panics_and_decoded_tokens_re_encode(s in "\\PC{0,40}") {
        if let Ok(v) = KeyToken::decode(&s) {
            // Not every accepted text is canonical (`%2f` for `/`, spaces unescaped), but its
            // value encodes to a token that decodes to the same value.
            if let Ok(t) = v.encode() {
                prop_assert_eq!(KeyToken::decode(&t).unwrap(), v);
            }
        }
    }
}

#[test]
fn non_utf8_is_refused_clearly() {
    for (t, what) in [
        ("file:/keys/%FF.pem", "file: key token"),
        ("tpm:blob=/k/%C3%28", "tpm: key token"),
        ("dice:uds-file=%80;fwid=00", "dice: key token"),
        ("vendor:library=/v/%FE.so;identity=", "vendor: key token"),
        ("vendor:registered=a;identity=%FF", "vendor: key token"),
    ] {
        let e = KeyToken::decode(t).unwrap_err().to_string();
        assert!(
            e.contains(what) && e.contains("not UTF-8 after percent-decoding"),
            "{t}: {e}"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let p = PathBuf::from(std::ffi::OsStr::from_bytes(b"/keys/\xff.blob"));
        for v in [
            KeyToken::File(p.clone()),
            KeyToken::Tpm(TpmToken {
                location: TpmKeyLocation::Blob(p.clone()),
                tcti: None,
            }),
            KeyToken::Dice(DiceToken {
                uds_file: p.clone(),
                fwid: [0; 32],
            }),
            KeyToken::Vendor(VendorToken {
                source: VendorSource::Library(p.clone()),
                identity: String::new(),
            }),
        ] {
            let e = v.encode().unwrap_err().to_string();
            assert!(e.contains("is not UTF-8"), "{v:?}: {e}");
        }
    }
}
