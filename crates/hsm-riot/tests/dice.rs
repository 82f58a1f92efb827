//! The DICE identity end to end on real files: determinism, chains checked by independent
//! verifiers (openssl CLI and rustls-webpki), the TcbInfo extension, the alias-key token,
//! and the errors for bad inputs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use common::*;
use hsm_core::{SignatureScheme, X509Identity};
use hsm_riot::tcbinfo::{SHA256_OID, TCB_INFO_OID, TcbInfo};
use hsm_riot::{DiceX509, Fwid};

fn err<T: std::fmt::Debug>(r: hsm_core::Result<T>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn same_inputs_same_chain_new_firmware_new_alias_only() {
    let dev = Device::new(b"firmware 1.0");
    let a = dev.identity("device-0001", "").unwrap();
    let b = dev.identity("device-0001", "").unwrap();
    // RFC 6979 signatures and fixed validity: the chain is byte-for-byte reproducible.
    assert_eq!(a.certificate_chain().unwrap(), b.certificate_chain().unwrap());
    assert_eq!(a.key_reference().unwrap(), b.key_reference().unwrap());

    std::fs::write(&dev.firmware, b"firmware 1.1").unwrap();
    let c = dev.identity("device-0001", "").unwrap();
    assert_eq!(
        a.chain().device_id,
        c.chain().device_id,
        "DeviceID must not depend on firmware"
    );
    assert_ne!(
        a.signing_key().unwrap().public_key_spki().unwrap(),
        c.signing_key().unwrap().public_key_spki().unwrap(),
        "new firmware must give a new Alias key"
    );
    assert_ne!(a.key_reference().unwrap(), c.key_reference().unwrap());

    // Another device (another UDS) has other keys.
    let other = Device::new(b"firmware 1.0");
    let d = other.identity("device-0001", "").unwrap();
    assert_ne!(
        hsm_core::pem::public_key_spki(&a.chain().device_id).unwrap(),
        hsm_core::pem::public_key_spki(&d.chain().device_id).unwrap()
    );
}

#[test]
fn self_signed_chain_verifies_with_openssl_and_webpki() {
    let dev = Device::new(b"firmware image");
    let id = dev.identity("device-0042", "").unwrap();
    let chain = id.certificate_chain().unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(id.common_name().unwrap(), "device-0042");
    assert_eq!(hsm_core::pem::common_name(&chain[0]).unwrap(), "device-0042");
    assert_eq!(hsm_core::pem::common_name(&chain[1]).unwrap(), "device-0042");

    let (ok, out) = openssl_verify(dev.dir.path(), &chain[1..], &[], &chain[0]);
    assert!(ok, "openssl verify: {out}");
    webpki_verify(&chain[1], &[], &chain[0]).unwrap();

    // The leaf really is the Alias key's: a TLS-style signature made through the identity
    // verifies under the leaf's public key (ring, independent of p256).
    let key = id.signing_key().unwrap();
    assert_eq!(
        key.public_key_spki().unwrap(),
        hsm_core::pem::public_key_spki(&chain[0]).unwrap()
    );
    let sig = key
        .sign(SignatureScheme::EcdsaP256Sha256, b"handshake transcript")
        .unwrap();
    let point = &x509_parser::parse_x509_certificate(&chain[0])
        .unwrap()
        .1
        .public_key()
        .subject_public_key
        .data
        .to_vec();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point)
        .verify(b"handshake transcript", &sig)
        .unwrap();
    assert!(key.sign(SignatureScheme::RsaPssSha256, b"x").is_err());

    // Structure, as openssl reads it.
    let alias_text = openssl_text(dev.dir.path(), &chain[0]);
    for s in [
        "Subject: CN = device-0042, O = hsm-riot, OU = DICE Alias",
        "Issuer: CN = device-0042, O = hsm-riot, OU = DICE DeviceID",
        "TLS Web Client Authentication",
        "Digital Signature",
        "2.23.133.5.4.1",
        "Not After : Dec 31 23:59:59 9999 GMT",
    ] {
        assert!(alias_text.contains(s), "alias lacks `{s}`:\n{alias_text}");
    }
    let dev_text = openssl_text(dev.dir.path(), &chain[1]);
    for s in ["CA:TRUE, pathlen:0", "Certificate Sign", "Subject Key Identifier"] {
        assert!(dev_text.contains(s), "DeviceID lacks `{s}`:\n{dev_text}");
    }

    // A tampered Alias certificate (one bit of the signature flipped) is refused by both.
    let mut bad = chain[0].to_vec();
    let n = bad.len();
    bad[n - 5] ^= 0x01;
    let bad = rustls_pki_types::CertificateDer::from(bad);
    assert!(!openssl_verify(dev.dir.path(), &chain[1..], &[], &bad).0);
    assert!(webpki_verify(&chain[1], &[], &bad).is_err());
}

#[test]
fn tcb_info_extension_carries_the_firmware_hash() {
    let dev = Device::new(&vec![0x42u8; 100_000]);
    let id = dev.identity("device-tcb", "").unwrap();
    let alias = &id.chain().alias;
    let expected = sha256_hex_openssl(&dev.firmware);
    assert_eq!(id.fwid().to_hex(), expected);

    // Our parser.
    let info = TcbInfo::from_certificate(alias).unwrap().expect("TcbInfo present");
    assert_eq!(data_encoding_hex(info.sha256_fwid().unwrap()), expected);
    assert_eq!(info.layer, Some(1));
    assert!(TcbInfo::from_certificate(&id.chain().device_id).unwrap().is_none());

    // openssl's ASN.1 parser on the raw extension value.
    let (_, cert) = x509_parser::parse_x509_certificate(alias).unwrap();
    let oid = x509_parser::oid_registry::Oid::from(TCB_INFO_OID).unwrap();
    let ext = cert.get_extension_unique(&oid).unwrap().unwrap();
    assert!(!ext.critical);
    let der_path = dev.path("tcbinfo.der");
    std::fs::write(&der_path, ext.value).unwrap();
    let out = Command::new("openssl")
        .args(["asn1parse", "-inform", "DER", "-in"])
        .arg(&der_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("cont [ 6 ]"), "{text}");
    assert!(text.contains(":sha256"), "{text}");
    assert!(
        text.contains(&format!("[HEX DUMP]:{}", expected.to_uppercase())),
        "{text}"
    );
    assert_eq!(SHA256_OID, &[2, 16, 840, 1, 101, 3, 4, 2, 1]);
}

fn data_encoding_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn firmware_digest_gives_the_same_identity_as_the_file() {
    let dev = Device::new(b"the image");
    let from_file = dev.identity("device-d", "").unwrap();
    let digest = sha256_hex_openssl(&dev.firmware);
    let text = format!(
        "[x509]\nbackend = \"dice\"\nuds_file = \"uds.bin\"\nfirmware_digest = \"{}\"\nregistration_id = \"device-d\"\n",
        digest.to_uppercase()
    );
    let cfg = hsm_core::config::Config::from_toml(&text, "t.toml", dev.dir.path()).unwrap();
    let from_digest = DiceX509::from_section(cfg.section("x509").unwrap()).unwrap();
    assert_eq!(
        from_file.certificate_chain().unwrap(),
        from_digest.certificate_chain().unwrap()
    );
    assert_eq!(from_digest.fwid(), Fwid::from_hex("d", &digest).unwrap());
}

#[test]
fn token_names_the_key_without_the_secret_and_resolves_to_it() {
    let dev = Device::new(b"fw");
    let id = dev.identity("device-tok", "").unwrap();
    let token = id.key_reference().unwrap();
    assert!(token.starts_with("dice:uds-file=/"), "{}", *token);
    let uds = std::fs::read(&dev.uds).unwrap();
    let uds_hex: String = data_encoding_hex(&uds);
    assert!(!token.to_lowercase().contains(&uds_hex[..16]), "token leaks the UDS");
    let hsm_core::token::KeyToken::Dice(token) = hsm_core::token::KeyToken::decode(&token).unwrap() else {
        panic!("not a dice: token: {}", *token)
    };
    let signer = hsm_riot::open_signer(&token).unwrap();
    assert_eq!(
        signer.public_key_spki().unwrap(),
        hsm_core::pem::public_key_spki(&id.chain().alias).unwrap()
    );
    // The token fails clearly once its UDS is gone.
    std::fs::remove_file(&dev.uds).unwrap();
    let e = err(hsm_riot::open_signer(&token));
    assert!(e.contains("read UDS file") && e.contains("uds.bin"), "{e}");
}

#[test]
fn bad_uds_files_give_clear_errors() {
    let dev = Device::new(b"fw");
    // Missing.
    std::fs::remove_file(&dev.uds).unwrap();
    let e = err(dev.identity("device-1", ""));
    assert!(
        e.contains("read UDS file") && e.contains("uds.bin") && e.contains("No such file"),
        "{e}"
    );

    // Short.
    std::fs::write(&dev.uds, [7u8; 16]).unwrap();
    std::fs::set_permissions(&dev.uds, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = err(dev.identity("device-1", ""));
    assert!(
        e.contains("uds.bin") && e.contains("16 bytes") && e.contains("at least 32"),
        "{e}"
    );

    // Readable by others.
    std::fs::write(&dev.uds, (0u8..32).collect::<Vec<_>>()).unwrap();
    std::fs::set_permissions(&dev.uds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = err(dev.identity("device-1", ""));
    assert!(
        e.contains("uds.bin") && e.contains("mode 0644") && e.contains("0600"),
        "{e}"
    );
    std::fs::set_permissions(&dev.uds, std::fs::Permissions::from_mode(0o600)).unwrap();
    dev.identity("device-1", "").unwrap();

    // A directory is not a UDS file.
    let d = dev.path("udsdir");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    let digest = "ab".repeat(32);
    let cfg = hsm_core::config::Config::from_toml(
        &format!("[x509]\nbackend = \"dice\"\nuds_file = \"udsdir\"\nfirmware_digest = \"{digest}\"\nregistration_id = \"d\"\n"),
        "t.toml",
        dev.dir.path(),
    )
    .unwrap();
    let e = err(DiceX509::from_section(cfg.section("x509").unwrap()));
    assert!(e.contains("udsdir") && e.contains("not a regular file"), "{e}");
}

#[test]
fn bad_firmware_and_configuration_give_clear_errors() {
    let dev = Device::new(b"fw");
    std::fs::remove_file(&dev.firmware).unwrap();
    let e = err(dev.identity("device-1", ""));
    assert!(
        e.contains("read firmware image") && e.contains("firmware.bin") && e.contains("No such file"),
        "{e}"
    );

    let cases = [
        ("firmware_digest = \"00\"\n", "either firmware_file or firmware_digest"),
        ("colour = \"blue\"\n", "unknown field `colour`"),
        ("ca_certificate = \"ca.pem\"\n", "ca_key"),
        ("not_before = \"soon\"\n", "x509.not_before"),
        ("validity_days = 0\n", "x509.validity_days"),
    ];
    for (extra, msg) in cases {
        let e = err(dev.identity("device-1", extra));
        assert!(e.contains("dice-test.toml") && e.contains(msg), "{extra}: {e}");
    }
    let e = err(dev.identity("Device_1.", ""));
    assert!(e.contains("x509.registration_id") && e.contains("'D'"), "{e}");

    let text = "[x509]\nbackend = \"dice\"\nuds_file = \"uds.bin\"\nregistration_id = \"d\"\n";
    let cfg = hsm_core::config::Config::from_toml(text, "t.toml", dev.dir.path()).unwrap();
    let e = err(DiceX509::from_section(cfg.section("x509").unwrap()));
    assert!(e.contains("x509.firmware_file") && e.contains("missing"), "{e}");
}

#[test]
fn group_ca_signs_the_device_id() {
    let dev = Device::new(b"fw");
    let pki_dir = dev.path("pki");
    let out = hsm_riot::pki::generate(&pki_options(&pki_dir, "Group Root", Some("Group Intermediate"))).unwrap();
    let id = dev
        .identity(
            "group-device-1",
            "ca_certificate = \"pki/intermediate-ca.cert.pem\"\nca_key = \"pki/intermediate-ca.key.pem\"\n",
        )
        .unwrap();
    let chain = id.certificate_chain().unwrap();
    assert_eq!(chain.len(), 3, "Alias, DeviceID, intermediate");
    let root = hsm_core::pem::parse_certificates("root", &std::fs::read(out.root.unwrap()).unwrap()).unwrap();
    let (ok, text) = openssl_verify(dev.dir.path(), &root, &chain[1..], &chain[0]);
    assert!(ok, "openssl verify: {text}");
    webpki_verify(&root[0], &chain[1..], &chain[0]).unwrap();
    // The DeviceID is itself a CA: the intermediate must allow one CA below it.
    let int_text = openssl_text(dev.dir.path(), &chain[2]);
    assert!(int_text.contains("CA:TRUE, pathlen:1"), "{int_text}");

    // A CA with pathlen 0 cannot have the DeviceID (a CA) below it: refused up front.
    let p0 = test_support::pki::Ca::root_with("pathlen 0 CA", test_support::pki::KeyType::P256, |p| {
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    });
    std::fs::write(dev.path("p0.cert.pem"), p0.pem()).unwrap();
    std::fs::write(dev.path("p0.key.pem"), p0.key_pem()).unwrap();
    let e = err(dev.identity(
        "group-device-1",
        "ca_certificate = \"p0.cert.pem\"\nca_key = \"p0.key.pem\"\n",
    ));
    assert!(e.contains("p0.cert.pem") && e.contains("pathlen 0"), "{e}");

    // A CA key that does not match its certificate is refused.
    let e = err(dev.identity(
        "group-device-1",
        "ca_certificate = \"pki/intermediate-ca.cert.pem\"\nca_key = \"pki/root-ca.key.pem\"\n",
    ));
    assert!(e.contains("root-ca.key.pem") && e.contains("does not match"), "{e}");
}
