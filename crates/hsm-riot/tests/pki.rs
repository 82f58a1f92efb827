//! The test-PKI generator: many leaves from one signer, intermediates, CSRs made by openssl,
//! RSA keys, and an existing CA; every chain checked with `openssl verify` and rustls-webpki.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use common::*;
use hsm_riot::pki::{KeyKind, PkiOptions, generate};
use rustls_pki_types::CertificateDer;

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    hsm_core::pem::parse_certificates("test", &std::fs::read(path).unwrap()).unwrap()
}

fn options(dir: &Path) -> PkiOptions {
    PkiOptions {
        device_ids: PkiOptions::numbered_ids("device-", 3),
        ..pki_options(dir, "Test Root", None)
    }
}

#[test]
fn root_intermediate_and_many_leaves_verify() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.intermediate_cn = Some("Test Intermediate".into());
    let out = generate(&opts).unwrap();
    let root = certs(out.root.as_ref().unwrap());
    assert_eq!(out.issuing_ca, dir.path().join("intermediate-ca.cert.pem"));
    assert_eq!(out.leaves.len(), 3);
    let mut serials = std::collections::HashSet::new();
    for (i, leaf) in out.leaves.iter().enumerate() {
        assert_eq!(leaf.registration_id, format!("device-{:04}", i + 1));
        let chain = certs(&leaf.chain);
        assert_eq!(chain.len(), 2, "leaf + intermediate");
        assert_eq!(certs(&leaf.certificate), chain[..1]);
        assert_eq!(hsm_core::pem::common_name(&chain[0]).unwrap(), leaf.registration_id);
        let (ok, text) = openssl_verify(dir.path(), &root, &chain[1..], &chain[0]);
        assert!(ok, "{text}");
        webpki_verify(&root[0], &chain[1..], &chain[0]).unwrap();
        let (_, c) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
        assert!(serials.insert(c.raw_serial().to_vec()), "serials must differ");
        // The key file works as a file-backend identity with this chain.
        let key = leaf.key.as_ref().unwrap();
        assert_eq!(std::fs::metadata(key).unwrap().permissions().mode() & 0o777, 0o600);
        let id = hsm_core::file::FileX509::open(&leaf.chain, key, Default::default()).unwrap();
        assert_eq!(hsm_core::X509Identity::common_name(&id).unwrap(), leaf.registration_id);
    }
    for key in ["root-ca.key.pem", "intermediate-ca.key.pem"] {
        assert_eq!(
            std::fs::metadata(dir.path().join(key)).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // Nothing is overwritten unless asked, and a clash is found before anything is written.
    let before = std::fs::read(dir.path().join("root-ca.cert.pem")).unwrap();
    let e = generate(&opts).unwrap_err().to_string();
    assert!(e.contains("root-ca.key.pem") && e.contains("overwrite"), "{e}");
    let only_leaf_clash = PkiOptions {
        out_dir: dir.path().join("second"),
        ..opts.clone()
    };
    std::fs::create_dir(&only_leaf_clash.out_dir).unwrap();
    std::fs::write(only_leaf_clash.out_dir.join("device-0003.chain.pem"), b"mine").unwrap();
    let e = generate(&only_leaf_clash).unwrap_err().to_string();
    assert!(
        e.contains("device-0003.chain.pem") && e.contains("nothing was written"),
        "{e}"
    );
    assert!(!only_leaf_clash.out_dir.join("root-ca.cert.pem").exists());
    assert_eq!(std::fs::read(dir.path().join("root-ca.cert.pem")).unwrap(), before);
    let e = generate(&PkiOptions {
        out_dir: dir.path().join("third"),
        device_ids: vec!["twin".into(), "twin".into()],
        ..opts.clone()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("`twin` is asked for twice"), "{e}");
    opts.overwrite = true;
    generate(&opts).unwrap();
}

#[test]
fn csr_leaves_and_an_existing_ca() {
    let dir = tempfile::tempdir().unwrap();
    // A CA made first, then reused to sign a CSR whose key openssl made (and keeps).
    let mut opts = options(&dir.path().join("ca"));
    opts.device_ids = vec![];
    let ca = generate(&opts).unwrap();

    let key = dir.path().join("hsm-device.key.pem");
    let csr = dir.path().join("hsm-device.csr");
    let st = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
        ])
        .arg("/CN=hsm-device-9/O=Someone Else")
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        // A CSR may ask for anything; the tool must not copy it.
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .status()
        .unwrap();
    assert!(st.success());

    let leaves_dir = dir.path().join("leaves");
    let out = generate(&PkiOptions {
        out_dir: leaves_dir.clone(),
        device_ids: vec!["plain-1".into()],
        csr_files: vec![csr.clone()],
        issuer: Some((
            dir.path().join("ca/root-ca.cert.pem"),
            dir.path().join("ca/root-ca.key.pem"),
        )),
        ..options(&leaves_dir)
    });
    // rcgen refuses CSRs with extensions it does not model; basicConstraints it models.
    let out = out.unwrap();
    assert!(out.root.is_none());
    assert!(!leaves_dir.join("root-ca.cert.pem").exists());
    let root = certs(ca.root.as_ref().unwrap());
    let leaf = out.leaves.iter().find(|l| l.from_csr.is_some()).unwrap();
    assert_eq!(leaf.registration_id, "hsm-device-9");
    assert!(leaf.key.is_none());
    let chain = certs(&leaf.chain);
    assert_eq!(chain.len(), 1, "signed by the root: nothing to add");
    let (ok, text) = openssl_verify(dir.path(), &root, &[], &chain[0]);
    assert!(ok, "{text}");
    let text = openssl_text(dir.path(), &chain[0]);
    assert!(
        !text.contains("CA:TRUE"),
        "the CSR's CA request must not be copied:\n{text}"
    );
    assert!(text.contains("Subject: CN = hsm-device-9\n"), "{text}");
    // The certificate matches openssl's key.
    let id = hsm_core::file::FileX509::open(&leaf.chain, &key, Default::default()).unwrap();
    assert_eq!(hsm_core::X509Identity::common_name(&id).unwrap(), "hsm-device-9");
    for l in &out.leaves {
        webpki_verify(&root[0], &[], &certs(&l.certificate)[0]).unwrap();
    }

    // A CSR with a broken signature is refused before anything is written.
    use base64::Engine as _;
    let text = std::fs::read_to_string(&csr).unwrap();
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut der = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    let n = der.len();
    der[n - 3] ^= 0x40;
    let bad = dir.path().join("bad.csr.der");
    std::fs::write(&bad, &der).unwrap();
    let bad_dir = dir.path().join("bad");
    let e = generate(&PkiOptions {
        out_dir: bad_dir.clone(),
        device_ids: vec![],
        csr_files: vec![bad.clone()],
        ..options(&bad_dir)
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("bad.csr.der") && e.contains("signature"), "{e}");
    assert!(!bad_dir.join("root-ca.cert.pem").exists());
}

#[test]
fn rsa_pki_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let out = generate(&PkiOptions {
        device_ids: vec!["rsa-device".into()],
        key_kind: KeyKind::Rsa(2048),
        ..options(dir.path())
    })
    .unwrap();
    let root = certs(out.root.as_ref().unwrap());
    let chain = certs(&out.leaves[0].chain);
    let (ok, text) = openssl_verify(dir.path(), &root, &[], &chain[0]);
    assert!(ok, "{text}");
    webpki_verify(&root[0], &[], &chain[0]).unwrap();
    let text = openssl_text(dir.path(), &chain[0]);
    assert!(
        text.contains("Public-Key: (2048 bit)") && text.contains("sha256WithRSAEncryption"),
        "{text}"
    );
    let id = hsm_core::file::FileX509::open(
        &out.leaves[0].chain,
        out.leaves[0].key.as_ref().unwrap(),
        Default::default(),
    )
    .unwrap();
    assert_eq!(
        hsm_core::SigningKey::algorithm(&*hsm_core::X509Identity::signing_key(&id).unwrap()),
        hsm_core::KeyAlgorithm::Rsa { bits: 2048 }
    );
    assert!(KeyKind::Rsa(1024).generate().is_err());
}

#[test]
fn bad_device_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = generate(&PkiOptions {
        device_ids: vec!["Bad Id".into()],
        ..options(dir.path())
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("Bad Id"), "{e}");
}
