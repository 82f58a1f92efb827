#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The TPM backend through the tpm2-abrmd resource manager (TCTI `tabrmd:`), the way many
//! devices share their TPM: EK/SRK creation and reuse, a real activation and HMAC signing, TPM
//! x509 keys (persistent and blob) signing verifiably, `tpm:` tokens naming the tabrmd TCTI,
//! and another process using the TPM while this one holds its connection (a bare swtpm serves
//! one client at a time). One test: the tabrmd TCTI finds its bus through the process-wide
//! `DBUS_SESSION_BUS_ADDRESS`, so one private bus and daemon serve the whole test.

mod common;

use common::{open_signer, verify};
use hsm_core::{SasSigner, SignatureScheme, SigningKey, TpmIdentity};
use hsm_tpm::testing::Tabrmd;
use hsm_tpm::{EK_HANDLE, KeyLocation, Tpm, TpmConn, TpmOptions, generate_key, service};

#[test]
fn identity_and_x509_keys_through_tabrmd() {
    let rm = Tabrmd::start().unwrap_or_else(|e| panic!("tpm2-abrmd, dbus-daemon and swtpm are required: {e}"));
    // SAFETY: the only test of this binary, before any TPM connection is made; nothing else
    // reads or writes the environment concurrently.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("DBUS_SESSION_BUS_ADDRESS", rm.bus_address());
    }
    let tcti = rm.tcti();

    // EK and SRK are created and persisted, then found again by a fresh object.
    let (ek, srk) = {
        let t = Tpm::open(TpmOptions::new(tcti.clone())).unwrap();
        assert_eq!(t.keys_created(), hsm_tpm::KeysCreated { ek: true, srk: true });
        (t.endorsement_key().unwrap(), t.storage_root_key().unwrap())
    };
    let t = Tpm::open(TpmOptions::new(tcti.clone())).unwrap();
    assert_eq!(t.keys_created(), hsm_tpm::KeysCreated { ek: false, srk: false });
    assert_eq!(t.endorsement_key().unwrap(), ek);
    assert_eq!(t.storage_root_key().unwrap(), srk);
    assert_eq!(t.registration_id(), hsm_tpm::registration_id(&ek));

    // A real activation blob, made by the service side, then HMAC signing with the key.
    let data = b"0ne00000A0A%2fregistrations%2fdevice\n1767225600";
    let mut keys = Vec::new();
    for _ in 0..2 {
        let a = service::make_activation(&ek, &srk).unwrap();
        t.activate_identity_key(&a.blob).unwrap();
        assert_eq!(
            t.sign_with_identity(data).unwrap(),
            hsm_core::sas::hmac_sha256(&a.key, data).to_vec()
        );
        keys.push(a.key.to_vec());
    }
    assert_ne!(keys[0], keys[1], "the second activation replaced the first key");

    // TPM x509 keys: persistent and blob, signatures verified in software.
    let dir = tempfile::tempdir().unwrap();
    let conn = TpmConn::shared(&tcti).unwrap();
    let persistent = generate_key(conn.clone(), KeyLocation::Persistent(0x8100_0200)).unwrap();
    let blob_path = dir.path().join("k.tpmkey");
    let blob = generate_key(conn, KeyLocation::Blob(blob_path.clone())).unwrap();
    for key in [&persistent, &blob] {
        let spki = key.public_key_spki().unwrap();
        // More loads of the blob key than swtpm has object slots: each is flushed.
        for i in 0..8u8 {
            let msg = [i; 100];
            verify(&spki, &msg, &key.sign(SignatureScheme::EcdsaP256Sha256, &msg).unwrap());
        }
    }
    // Alias-key tokens carry the tabrmd TCTI (with its commas and equals signs).
    let by_handle = open_signer(&format!("tpm:handle=0x81000200;tcti={tcti}")).unwrap();
    assert_eq!(
        by_handle.public_key_spki().unwrap(),
        persistent.public_key_spki().unwrap()
    );
    let by_blob = open_signer(&format!("tpm:blob={};tcti={tcti}", blob_path.display())).unwrap();
    let sig = by_blob.sign(SignatureScheme::EcdsaP256Sha256, b"via token").unwrap();
    verify(&blob.public_key_spki().unwrap(), b"via token", &sig);
    let csr = persistent.csr_pem("device-tabrmd").unwrap();
    assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"), "{csr}");

    // Another process uses the TPM while this one holds its connection: it reads the EK this
    // process persisted (the same TPM2B_PUBLIC), and this process goes on working after.
    let ek_file = dir.path().join("ek.pub");
    let out = std::process::Command::new("tpm2_readpublic")
        .args(["-c", &format!("{EK_HANDLE:#x}"), "-o"])
        .arg(&ek_file)
        .env("TPM2TOOLS_TCTI", &tcti)
        .output()
        .expect("tpm2_readpublic (Debian package tpm2-tools)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&ek_file).unwrap(), ek);
    assert_eq!(
        t.sign_with_identity(data).unwrap(),
        hsm_core::sas::hmac_sha256(&keys[1], data).to_vec()
    );
    drop(rm);
}
