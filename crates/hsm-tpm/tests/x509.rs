#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! TPM-resident ECDSA P-256 keys on swtpm: persistent and blob keys, signatures verified in
//! software, CSRs verified by openssl, x509 identities from configuration, `tpm:` tokens.

mod common;

use std::sync::Arc;

use common::{Swtpm, open_signer, verify};
use hsm_core::{SignatureScheme, SigningKey, X509Identity};
use hsm_tpm::{KeyLocation, TpmConn, generate_key};

#[test]
fn persistent_and_blob_keys_sign_verifiably() {
    let sw = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let conn = TpmConn::shared(&sw.tcti()).unwrap();

    let persistent = generate_key(conn.clone(), KeyLocation::Persistent(0x8100_0200)).unwrap();
    let blob_path = dir.path().join("k.tpmkey");
    let blob = generate_key(conn.clone(), KeyLocation::Blob(blob_path.clone())).unwrap();
    assert_ne!(persistent.public_point(), blob.public_point());
    // Neither location is overwritten.
    assert!(generate_key(conn.clone(), KeyLocation::Persistent(0x8100_0200)).is_err());
    assert!(generate_key(conn.clone(), KeyLocation::Blob(blob_path.clone())).is_err());

    for key in [&persistent, &blob] {
        let spki = key.public_key_spki().unwrap();
        assert_eq!(spki.len(), 91);
        for msg in [&b""[..], b"hello", &[9u8; 5000]] {
            let sig = key.sign(SignatureScheme::EcdsaP256Sha256, msg).unwrap();
            verify(&spki, msg, &sig);
        }
        assert!(key.sign(SignatureScheme::RsaPssSha256, b"x").is_err());
    }

    // Tokens open the same keys.
    let t1 = open_signer(&format!("tpm:handle=0x81000200;tcti={}", sw.tcti())).unwrap();
    assert_eq!(t1.public_key_spki().unwrap(), persistent.public_key_spki().unwrap());
    let t2 = open_signer(&format!("tpm:blob={};tcti={}", blob_path.display(), sw.tcti())).unwrap();
    assert_eq!(t2.public_key_spki().unwrap(), blob.public_key_spki().unwrap());
    let sig = t2.sign(SignatureScheme::EcdsaP256Sha256, b"via token").unwrap();
    verify(&blob.public_key_spki().unwrap(), b"via token", &sig);
    let e = open_signer(&format!("tpm:handle=0x81000201;tcti={}", sw.tcti()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("0x81000201"), "{e}");

    // Many loads of the blob key: each is flushed (swtpm holds only 3 transient objects).
    for _ in 0..10 {
        blob.sign(SignatureScheme::EcdsaP256Sha256, b"again").unwrap();
    }
}

#[test]
fn csr_is_signed_in_the_tpm_and_verifies_with_openssl() {
    let sw = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let conn = TpmConn::shared(&sw.tcti()).unwrap();
    let key = generate_key(conn, KeyLocation::Persistent(0x8100_0300)).unwrap();
    let csr = key.csr_pem("device-tpm-01").unwrap();
    let path = dir.path().join("req.pem");
    std::fs::write(&path, &csr).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["req", "-verify", "-noout", "-subject", "-in"])
        .arg(&path)
        .output()
        .expect("openssl CLI");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("device-tpm-01"), "{text}");
    assert!(text.to_lowercase().contains("verif"), "{text}");
}

#[test]
fn x509_identity_from_configuration() {
    let sw = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let conn = TpmConn::shared(&sw.tcti()).unwrap();
    let key = Arc::new(generate_key(conn, KeyLocation::Persistent(0x8100_0200)).unwrap());

    // A CA signs a certificate for the TPM key (the CSR's public key).
    let ca = test_support::pki::Ca::root("Test CA");
    let leaf = ca.certify(
        test_support::pki::params("tpm-device-7"),
        &hsm_core::csr::SubjectKey::of(key.as_ref()).unwrap(),
    );
    let chain = hsm_core::pem::certificates_to_pem(&[leaf, ca.der()]);
    std::fs::write(dir.path().join("chain.pem"), chain).unwrap();

    let text = format!(
        "[x509]\nbackend = \"tpm\"\ntcti = \"{}\"\nkey_handle = \"0x81000200\"\ncertificate = \"chain.pem\"\n",
        sw.tcti()
    );
    let cfg = hsm_core::config::Config::from_toml(&text, "t.toml", dir.path()).unwrap();
    let id = hsm_tpm::TpmX509::from_section(cfg.section("x509").unwrap()).unwrap();
    assert_eq!(id.common_name().unwrap(), "tpm-device-7");
    assert_eq!(id.certificate_chain().unwrap().len(), 2);
    let token = id.key_reference().unwrap();
    assert!(token.starts_with("tpm:handle=0x81000200;tcti="), "{}", *token);
    let signer = open_signer(&token).unwrap();
    let sig = signer
        .sign(SignatureScheme::EcdsaP256Sha256, b"tls transcript")
        .unwrap();
    verify(&key.public_key_spki().unwrap(), b"tls transcript", &sig);
    let sig = id
        .signing_key()
        .unwrap()
        .sign(SignatureScheme::EcdsaP256Sha256, b"m")
        .unwrap();
    verify(&key.public_key_spki().unwrap(), b"m", &sig);

    // A certificate for another key is refused.
    let conn = TpmConn::shared(&sw.tcti()).unwrap();
    generate_key(conn, KeyLocation::Persistent(0x8100_0201)).unwrap();
    let text = text.replace("0x81000200", "0x81000201");
    let cfg = hsm_core::config::Config::from_toml(&text, "t.toml", dir.path()).unwrap();
    let e = hsm_tpm::TpmX509::from_section(cfg.section("x509").unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not for the TPM key"), "{e}");
    let text = "[x509]\nbackend = \"tpm\"\ncertificate = \"chain.pem\"\n".to_string();
    let cfg = hsm_core::config::Config::from_toml(&text, "t.toml", dir.path()).unwrap();
    let e = hsm_tpm::TpmX509::from_section(cfg.section("x509").unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("key_handle"), "{e}");

    // command_timeout: checked, applied to the shared connection, and bounding a signature
    // on a frozen TPM (issue 12, defect 5).
    let bad = format!("{}command_timeout = 0\n", text_for(&sw));
    let cfg = hsm_core::config::Config::from_toml(&bad, "t.toml", dir.path()).unwrap();
    let e = hsm_tpm::TpmX509::from_section(cfg.section("x509").unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("command_timeout"), "{e}");
    let good = format!("{}command_timeout = 1.5\n", text_for(&sw));
    let cfg = hsm_core::config::Config::from_toml(&good, "t.toml", dir.path()).unwrap();
    let id = hsm_tpm::TpmX509::from_section(cfg.section("x509").unwrap()).unwrap();
    assert_eq!(
        TpmConn::shared(&sw.tcti()).unwrap().command_timeout(),
        std::time::Duration::from_millis(1500)
    );
    let signer = id.signing_key().unwrap();
    sw.signal("STOP");
    let t0 = std::time::Instant::now();
    let e = signer
        .sign(SignatureScheme::EcdsaP256Sha256, b"frozen")
        .unwrap_err()
        .to_string();
    let took = t0.elapsed();
    sw.signal("CONT");
    assert!(took < std::time::Duration::from_millis(2500), "{took:?}");
    assert!(e.contains(&sw.tcti()) && e.contains("1500 ms"), "{e}");
    let sig =
        test_support::wait::until(
            "signing to recover after SIGCONT",
            test_support::wait::DEADLINE,
            || match signer.sign(SignatureScheme::EcdsaP256Sha256, b"thawed") {
                Ok(sig) => Some(sig),
                Err(e) => {
                    assert!(e.to_string().contains("earlier command"), "{e}");
                    None
                }
            },
        );
    verify(&key.public_key_spki().unwrap(), b"thawed", &sig);
}

fn text_for(sw: &Swtpm) -> String {
    format!(
        "[x509]\nbackend = \"tpm\"\ntcti = \"{}\"\nkey_handle = \"0x81000200\"\ncertificate = \"chain.pem\"\n",
        sw.tcti()
    )
}

#[test]
fn p384_keys_sign_with_sha384_and_make_csrs() {
    let sw = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let conn = TpmConn::shared(&sw.tcti()).unwrap();
    let blob_path = dir.path().join("p384.tpmkey");
    let key = hsm_tpm::generate_key_on(
        conn.clone(),
        KeyLocation::Blob(blob_path.clone()),
        hsm_core::Curve::P384,
    )
    .unwrap();
    assert_eq!(key.algorithm(), hsm_core::KeyAlgorithm::Ec(hsm_core::Curve::P384));
    let spki = key.public_key_spki().unwrap();
    assert_eq!(
        hsm_core::pem::key_algorithm_from_spki(&spki).unwrap(),
        hsm_core::KeyAlgorithm::Ec(hsm_core::Curve::P384)
    );
    let (_, info): (_, x509_parser::x509::SubjectPublicKeyInfo) =
        x509_parser::prelude::FromDer::from_der(&spki[..]).unwrap();
    let point = info.subject_public_key.data.to_vec();
    assert_eq!(point.len(), 97);
    // Through a token, as the TLS bridge and the issued-identity store open it.
    let signer = open_signer(&format!("tpm:blob={};tcti={}", blob_path.display(), sw.tcti())).unwrap();
    for msg in [&b""[..], b"issued", &[7u8; 3000]] {
        let sig = signer.sign(SignatureScheme::EcdsaP384Sha384, msg).unwrap();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P384_SHA384_ASN1, &point)
            .verify(msg, &sig)
            .expect("ring verifies the P-384 signature");
    }
    assert!(
        signer.sign(SignatureScheme::EcdsaP256Sha256, b"x").is_err(),
        "P-256 scheme refused"
    );
    let csr = key.csr_pem("p384-device").unwrap();
    let csr_path = dir.path().join("p384.csr");
    std::fs::write(&csr_path, csr).unwrap();
    let ok = std::process::Command::new("openssl")
        .args(["req", "-verify", "-noout", "-in"])
        .arg(&csr_path)
        .status()
        .unwrap();
    assert!(ok.success(), "openssl verifies the P-384 CSR");
}
