//! The URI parser against RFC 7512: every attribute, strict errors, its examples, PINs.

use std::path::Path;

use super::*;

#[test]
fn parses_all_attributes_and_round_trips() {
    let u = Pkcs11Uri::parse(
        "pkcs11:token=My%20Token;manufacturer=SoftHSM%20project;serial=abc;model=SoftHSM%20v2;slot-id=7;\
         object=dev%3Bkey;id=%01%02%ff;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
    )
    .unwrap();
    assert_eq!(u.token.as_deref(), Some("My Token"));
    assert_eq!(u.manufacturer.as_deref(), Some("SoftHSM project"));
    assert_eq!(u.serial.as_deref(), Some("abc"));
    assert_eq!(u.model.as_deref(), Some("SoftHSM v2"));
    assert_eq!(u.slot_id, Some(7));
    assert_eq!(u.object.as_deref(), Some("dev;key"));
    assert_eq!(u.id.as_deref(), Some(&[1u8, 2, 0xff][..]));
    assert_eq!(u.object_type, Some(ObjectType::Private));
    assert_eq!(
        u.module_path.as_deref(),
        Some(Path::new("/usr/lib/softhsm/libsofthsm2.so"))
    );
    assert_eq!(
        pin_source_path(u.pin_source.as_deref().unwrap()).unwrap(),
        Path::new("/run/pin")
    );
    let again = Pkcs11Uri::parse(&u.to_token_string()).unwrap();
    assert_eq!(again, u);
    assert_eq!(Pkcs11Uri::parse("pkcs11:").unwrap(), Pkcs11Uri::default());
    // RFC 7512 allows `&` and `=` in path values, `/ ? |` in query values.
    let u = Pkcs11Uri::parse("pkcs11:object=a&b=c?pin-source=/x?y|z").unwrap();
    assert_eq!(u.object.as_deref(), Some("a&b=c"));
    assert_eq!(u.pin_source.as_deref(), Some("/x?y|z"));
    let odd = Pkcs11Uri {
        token: Some("a/b;c?d".into()),
        object: Some("é k".into()),
        pin_source: Some("/p&q".into()),
        ..Pkcs11Uri::default()
    };
    assert_eq!(Pkcs11Uri::parse(&odd.to_token_string()).unwrap(), odd);
}

fn err(text: &str) -> String {
    Pkcs11Uri::parse(text).unwrap_err().to_string()
}

#[test]
fn strict_errors_name_the_attribute() {
    let e = err("pkcs11:token=a;col.our=blue");
    assert!(e.contains("`col.our`") && e.contains("vendor attribute name"), "{e}");
    let e = err("pkcs11:token=a;pin-source=/p");
    assert!(
        e.contains("`pin-source`") && e.contains("query attribute, given in the path"),
        "{e}"
    );
    let e = err("pkcs11:?token=a");
    assert!(
        e.contains("`token`") && e.contains("path attribute, given in the query"),
        "{e}"
    );
    let e = err("pkcs11:x-a=1;x-a=2");
    assert!(e.contains("`x-a`") && e.contains("more than once"), "{e}");
    let e = err("pkcs11:x-a=%zz");
    assert!(e.contains("`x-a`") && e.contains("percent-encoding"), "{e}");
    for bad in ["", "x", "1.", ".1", "1.2.3", "256", "1.256", "a.b"] {
        let e = err(&format!("pkcs11:library-version={bad}"));
        assert!(e.contains("`library-version`"), "{bad}: {e}");
    }
    let e = err("pkcs11:token=a;token=b");
    assert!(e.contains("`token`") && e.contains("more than once"), "{e}");
    let e = err("pkcs11:id=%0g");
    assert!(e.contains("`id`") && e.contains("percent-encoding"), "{e}");
    let e = err("pkcs11:object=a%2");
    assert!(e.contains("`object`") && e.contains("percent-encoding"), "{e}");
    let e = err("pkcs11:object=a b");
    assert!(e.contains("`object`") && e.contains("percent-encoded"), "{e}");
    let e = err("pkcs11:token=%ff%fe");
    assert!(e.contains("`token`") && e.contains("UTF-8"), "{e}");
    let e = err("pkcs11:slot-id=x1");
    assert!(e.contains("`slot-id`"), "{e}");
    let e = err("pkcs11:type=key");
    assert!(e.contains("`type`"), "{e}");
    let e = err("pkcs11:token=a?pin-value=1&pin-value=2");
    assert!(e.contains("`pin-value`") && e.contains("more than once"), "{e}");
    let e = err("pkcs11:token=a?pin-value=1&pin-source=/p");
    assert!(e.contains("`pin-value`"), "{e}");
    let e = err("pkcs11:token=a?fo;o=1");
    assert!(e.contains("`fo;o`") && e.contains("vendor attribute name"), "{e}");
    let e = err("pkcs11:token=a?module-name=a/b");
    assert!(e.contains("`module-name`"), "{e}");
    let e = err("pkcs11:token");
    assert!(e.contains("`token`") && e.contains("name=value"), "{e}");
    let e = err("token=a");
    assert!(e.contains("pkcs11:"), "{e}");
    let e = err("pkcs11:token=a;;object=b");
    assert!(e.contains("empty attribute"), "{e}");
    let e = err("pkcs11:id=");
    assert!(e.contains("`id`"), "{e}");
    let e = err("pkcs11:object=a/b");
    assert!(e.contains("`object`") && e.contains("`/`"), "{e}");
    let e = err("pkcs11:token=t?pin-source=a;b");
    assert!(e.contains("`pin-source`") && e.contains("`;`"), "{e}");
}

/// Every example URI of RFC 7512 section 3.3 (the RFC wraps the long ones for display only).
const RFC7512_EXAMPLES: [&str; 13] = [
    "pkcs11:",
    "pkcs11:object=my-pubkey;type=public",
    "pkcs11:object=my-key;type=private?pin-source=file:/etc/token",
    "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;\
     object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin",
    "pkcs11:object=my-sign-key;type=private?module-name=mypkcs11",
    "pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1",
    "pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin",
    "pkcs11:slot-description=Sun%20Metaslot",
    "pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;\
     library-version=1.23",
    "pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;id=%01%02%03%Ba%dd%Ca%fe%04%05%06",
    "pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert",
    "pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=my-certificate;type=cert",
    "pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a\
     ?pin-source=file:/etc/token_pin&vendor-bbb=value-b",
];

#[test]
fn every_rfc7512_example_parses_and_round_trips() {
    for text in RFC7512_EXAMPLES {
        let u = Pkcs11Uri::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let mut back = Pkcs11Uri::parse(&u.to_token_string()).unwrap();
        back.pin_value = u.pin_value.clone();
        back.vendor_query = u.vendor_query.clone();
        assert_eq!(back, u, "{text}");
    }
    let u = Pkcs11Uri::parse(RFC7512_EXAMPLES[3]).unwrap();
    assert_eq!(u.token.as_deref(), Some("The Software PKCS#11 Softtoken"));
    assert_eq!(u.manufacturer.as_deref(), Some("Snake Oil, Inc."));
    assert_eq!(u.serial.as_deref(), Some(""));
    assert_eq!(
        u.id.as_deref(),
        Some(&[0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91][..])
    );
    let u = Pkcs11Uri::parse(RFC7512_EXAMPLES[7]).unwrap();
    assert_eq!(u.slot_description.as_deref(), Some("Sun Metaslot"));
    let u = Pkcs11Uri::parse(RFC7512_EXAMPLES[8]).unwrap();
    assert_eq!(u.library_manufacturer.as_deref(), Some("Snake Oil, Inc."));
    assert_eq!(u.library_description.as_deref(), Some("Soft Token Library"));
    assert_eq!(u.library_version, Some((1, 23)));
    let u = Pkcs11Uri::parse(RFC7512_EXAMPLES[9]).unwrap();
    assert_eq!(u.token.as_deref(), Some("My token% created by Joe"));
    assert_eq!(u.library_version, Some((3, 0)));
    assert_eq!(u.id.as_deref(), Some(&[1, 2, 3, 0xba, 0xdd, 0xca, 0xfe, 4, 5, 6][..]));
    assert_eq!(
        Pkcs11Uri::parse(RFC7512_EXAMPLES[10]).unwrap().token.as_deref(),
        Some("A name with a substring %;")
    );
    assert_eq!(
        Pkcs11Uri::parse(RFC7512_EXAMPLES[11]).unwrap().token.as_deref(),
        Some("Name with a small A with acute: \u{e1}")
    );
    let u = Pkcs11Uri::parse(RFC7512_EXAMPLES[12]).unwrap();
    assert_eq!(u.vendor_path, vec![("vendor-aaa".to_string(), "value-a".to_string())]);
    assert_eq!(u.vendor_query, vec![("vendor-bbb".to_string(), "value-b".to_string())]);
    assert_eq!(u.pin_source.as_deref(), Some("file:/etc/token_pin"));
    // Vendor path attributes select the token, so they stay in the token string; query ones do not.
    assert_eq!(
        u.to_token_string(),
        "pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a?pin-source=file:/etc/token_pin"
    );
}

#[test]
fn pin_value_is_never_written_back() {
    let u = Pkcs11Uri::parse("pkcs11:token=t;object=k?pin-value=12%2034").unwrap();
    assert_eq!(u.read_pin().unwrap().unwrap().as_str(), "12 34");
    assert_eq!(u.to_token_string(), "pkcs11:token=t;object=k");
    assert!(!format!("{u:?}").contains("12"));
    let e = u.reject_pin_value("the x509 key").unwrap_err().to_string();
    assert!(e.contains("pin-value") && e.contains("pin-source"), "{e}");
}

#[test]
fn pin_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pin");
    std::fs::write(&p, "1234\n").unwrap();
    let u = Pkcs11Uri::parse(&format!("pkcs11:token=t?pin-source=file:{}", p.display())).unwrap();
    assert_eq!(u.read_pin().unwrap().unwrap().as_str(), "1234");
    std::fs::write(&p, "").unwrap();
    assert!(u.read_pin().unwrap_err().to_string().contains("empty"));
    let missing = Pkcs11Uri::parse("pkcs11:token=t?pin-source=/nonexistent/pin").unwrap();
    assert!(missing.read_pin().unwrap_err().to_string().contains("/nonexistent/pin"));
    assert!(pin_source_path("https://x/pin").is_err());
}
