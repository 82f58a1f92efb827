//! The DER module against real keys: the SubjectPublicKeyInfo it writes for an EC point or an RSA
//! modulus and exponent is byte for byte the one rcgen (ring) and the OpenSSL CLI write for the
//! same key, and its ECDSA signatures verify with ring.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hsm_core::der;
use hsm_core::{Curve, SignatureScheme, SigningKey};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

#[test]
fn ec_public_keys_match_rcgen() {
    for (alg, curve) in [
        (&rcgen::PKCS_ECDSA_P256_SHA256, Curve::P256),
        (&rcgen::PKCS_ECDSA_P384_SHA384, Curve::P384),
    ] {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let point = der::spki_public_key_bits(&spki).unwrap();
        assert_eq!(point, rcgen::PublicKeyData::der_bytes(&key), "{curve:?}");
        assert_eq!(der::ec_spki(curve, &point).unwrap(), spki, "{curve:?}");
    }
    let e = der::ec_spki(Curve::P384, &[4u8; 65]).unwrap_err().to_string();
    assert!(e.contains("65 bytes") && e.contains("97 bytes"), "{e}");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    let e = der::spki_public_key_bits(&[spki.as_slice(), &[0]].concat())
        .unwrap_err()
        .to_string();
    assert!(e.contains("1 bytes remaining"), "{e}");
    assert!(der::spki_public_key_bits(&spki[..spki.len() - 1]).is_err());
}

#[test]
fn rsa_public_keys_match_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("rsa.pem");
    let spki = dir.path().join("rsa.spki");
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("the openssl CLI");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run(&[
        "genpkey".as_ref(),
        "-algorithm".as_ref(),
        "RSA".as_ref(),
        "-pkeyopt".as_ref(),
        "rsa_keygen_bits:2048".as_ref(),
        "-out".as_ref(),
        key.as_os_str(),
    ]);
    run(&[
        "pkey".as_ref(),
        "-in".as_ref(),
        key.as_os_str(),
        "-pubout".as_ref(),
        "-outform".as_ref(),
        "DER".as_ref(),
        "-out".as_ref(),
        spki.as_os_str(),
    ]);
    let expected = std::fs::read(&spki).unwrap();
    let (_, info) = SubjectPublicKeyInfo::from_der(&expected).unwrap();
    let Ok(PublicKey::RSA(rsa)) = info.parsed() else {
        panic!("not an RSA key")
    };
    assert_eq!(der::rsa_spki(rsa.modulus, rsa.exponent), expected);
    assert_eq!(
        der::rsa_public_key(rsa.modulus, rsa.exponent),
        der::spki_public_key_bits(&expected).unwrap()
    );
}

#[test]
fn ecdsa_signatures_from_r_and_s_verify() {
    for (alg, scheme, verify) in [
        (
            &rcgen::PKCS_ECDSA_P256_SHA256,
            SignatureScheme::EcdsaP256Sha256,
            (
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &ring::signature::ECDSA_P256_SHA256_ASN1,
            ),
        ),
        (
            &rcgen::PKCS_ECDSA_P384_SHA384,
            SignatureScheme::EcdsaP384Sha384,
            (
                &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                &ring::signature::ECDSA_P384_SHA384_ASN1,
            ),
        ),
    ] {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let pair =
            ring::signature::EcdsaKeyPair::from_pkcs8(verify.0, &key.serialize_der(), &ring::rand::SystemRandom::new())
                .unwrap();
        let file = hsm_core::file::FileKey::from_pem("k", key.serialize_pem().as_bytes()).unwrap();
        let curve = match file.algorithm() {
            hsm_core::KeyAlgorithm::Ec(c) => c,
            other => panic!("{other:?}"),
        };
        // Many signatures: some have r or s with the high bit set, or a leading zero byte.
        for i in 0..32u8 {
            let msg = [i; 20];
            let raw = pair.sign(&ring::rand::SystemRandom::new(), &msg).unwrap();
            let sig = der::ecdsa_raw_to_der("test", curve, raw.as_ref()).unwrap();
            ring::signature::UnparsedPublicKey::new(
                verify.1,
                der::spki_public_key_bits(&file.public_key_spki().unwrap()).unwrap(),
            )
            .verify(&msg, &sig)
            .unwrap_or_else(|_| panic!("{scheme}: signature {i} does not verify"));
        }
    }
}
