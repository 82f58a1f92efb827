//! Identity keys: real activation blobs, large-input HMAC, corrupted blobs, interrupted re-activation, and a
//! foreign object at the staging handle.

use hsm_core::{SasSigner, TpmIdentity};
use hsm_tpm::{EkTemplate, Tpm, service};

use crate::common::Swtpm;
use crate::{activate, opts};

#[test]
fn real_activation_signs_like_software_and_replacement_works() {
    let sw = Swtpm::start();
    let mut t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
    let err = t.sign_with_identity(b"x").unwrap_err().to_string();
    assert!(err.contains("no identity key at 0x81000100"), "{err}");

    let key = activate(&mut t);
    assert!(t.has_identity_key().unwrap());
    let data = b"0ne00000A0A%2fregistrations%2fabc\n1767225600";
    assert_eq!(
        t.sign_with_identity(data).unwrap(),
        hsm_core::sas::hmac_sha256(&key, data).to_vec()
    );
    assert_eq!(
        t.sign_with_identity(b"").unwrap(),
        hsm_core::sas::hmac_sha256(&key, b"").to_vec()
    );

    // The SDK activates again with the key returned at assignment: the new key replaces the old.
    let key2 = activate(&mut t);
    assert_ne!(key, key2);
    assert_eq!(
        t.sign_with_identity(data).unwrap(),
        hsm_core::sas::hmac_sha256(&key2, data).to_vec()
    );

    // A fresh object on the same TPM finds the persisted key.
    drop(t);
    let t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
    assert_eq!(
        t.sign_with_identity(data).unwrap(),
        hsm_core::sas::hmac_sha256(&key2, data).to_vec()
    );
}

#[test]
fn large_inputs_use_an_hmac_sequence_and_match_software() {
    let sw = Swtpm::start();
    let mut t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
    let key = activate(&mut t);
    for len in [1023usize, 1024, 1025, 2048, 5000, 70_000] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(
            t.sign_with_identity(&data).unwrap(),
            hsm_core::sas::hmac_sha256(&key, &data).to_vec(),
            "length {len}"
        );
        // The ordinary path keeps working after the raw sequence path.
        assert_eq!(
            t.sign_with_identity(b"ab").unwrap(),
            hsm_core::sas::hmac_sha256(&key, b"ab").to_vec()
        );
    }
}

#[test]
fn corrupted_or_truncated_blobs_fail_and_the_old_key_keeps_working() {
    let sw = Swtpm::start();
    let mut t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
    let key = activate(&mut t);
    let data = b"payload";
    let expected = hsm_core::sas::hmac_sha256(&key, data).to_vec();

    let ek = t.endorsement_key().unwrap();
    let srk = t.storage_root_key().unwrap();
    let good = service::make_activation(&ek, &srk).unwrap().blob;

    // Truncations at every field boundary and a few inside fields.
    let parsed = hsm_tpm::ActivationBlob::parse(&good).unwrap();
    let mut cuts = vec![0usize, 1, good.len() - 1, good.len() / 2];
    let mut off = 0;
    for part in [
        &parsed.credential_blob,
        &parsed.credential_secret,
        &parsed.duplicate,
        &parsed.import_secret,
        &parsed.public,
    ] {
        off += 2 + part.len();
        cuts.push(off);
    }
    for cut in cuts {
        let e = t.activate_identity_key(&good[..cut]).unwrap_err().to_string();
        assert!(e.contains("activation blob"), "cut {cut}: {e}");
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(
        t.activate_identity_key(&trailing)
            .unwrap_err()
            .to_string()
            .contains("trailing")
    );

    // Flipped bytes in each protected part: the TPM's integrity checks refuse them.
    let flip = |mut b: hsm_tpm::ActivationBlob, which: usize| {
        let part = match which {
            0 => &mut b.credential_blob,
            1 => &mut b.credential_secret,
            2 => &mut b.duplicate,
            3 => &mut b.import_secret,
            _ => &mut b.public,
        };
        let i = part.len() - 5;
        part[i] ^= 0x40;
        b.to_bytes()
    };
    for which in 0..5 {
        let bad = flip(parsed.clone(), which);
        assert!(
            t.activate_identity_key(&bad).is_err(),
            "corruption of part {which} accepted"
        );
        assert_eq!(
            t.sign_with_identity(data).unwrap(),
            expected,
            "old key lost after part {which}"
        );
    }
    // A blob made for another TPM fails too.
    let other = Swtpm::start();
    let o = Tpm::open(opts(&other, EkTemplate::Sdk)).unwrap();
    let foreign = service::make_activation(&o.endorsement_key().unwrap(), &o.storage_root_key().unwrap()).unwrap();
    let e = t.activate_identity_key(&foreign.blob).unwrap_err().to_string();
    assert!(e.contains("ActivateCredential"), "{e}");
    assert_eq!(t.sign_with_identity(data).unwrap(), expected);
    // And the good one still activates.
    t.activate_identity_key(&good).unwrap();
    assert_ne!(t.sign_with_identity(data).unwrap(), expected);
}

/// Issue 12, defect 10: re-activation never leaves the TPM without an identity key. An
/// activation made to fail after each step of the replacement (staged, old evicted, new
/// persisted) leaves a key that signs with the new key; a following open or activation puts
/// the layout back to one key at the identity handle and none at the staging handle.
#[test]
fn interrupted_reactivation_keeps_a_working_key() {
    use hsm_tpm::ActivationStep;

    let sw = Swtpm::start();
    let mut t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
    let h = t.identity_handle();
    let staging = hsm_tpm::staging_handle(h);
    assert_eq!(staging, 0x8100_0101);
    let layout = |t: &Tpm| {
        let conn = t.connection().clone();
        let listed = conn
            .with_context(move |ctx| {
                use tss_esapi::constants::CapabilityType;
                use tss_esapi::structures::CapabilityData;
                match ctx.get_capability(CapabilityType::Handles, 0x8100_0000, 64).unwrap().0 {
                    CapabilityData::Handles(l) => l.iter().map(|h| u32::from(*h)).collect::<Vec<_>>(),
                    other => panic!("{other:?}"),
                }
            })
            .unwrap();
        (listed.contains(&h), listed.contains(&staging))
    };
    let mut key = activate(&mut t);
    assert_eq!(layout(&t), (true, false));

    for step in [
        ActivationStep::Staged,
        ActivationStep::OldEvicted,
        ActivationStep::Persisted,
    ] {
        let ek = t.endorsement_key().unwrap();
        let srk = t.storage_root_key().unwrap();
        let a = service::make_activation(&ek, &srk).unwrap();
        assert_ne!(a.key.to_vec(), key);
        t.fail_activation_after(Some(step));
        let e = t.activate_identity_key(&a.blob).unwrap_err().to_string();
        assert!(e.contains("injected failure"), "{step:?}: {e}");
        t.fail_activation_after(None);
        // A key still signs, and it is the new one.
        assert!(t.has_identity_key().unwrap(), "{step:?}");
        assert_eq!(
            t.sign_with_identity(b"after").unwrap(),
            hsm_core::sas::hmac_sha256(&a.key, b"after").to_vec(),
            "{step:?}"
        );
        // Also over the HMAC sequence path (input longer than TPM_PT_INPUT_BUFFER).
        let long = vec![7u8; 3000];
        assert_eq!(
            t.sign_with_identity(&long).unwrap(),
            hsm_core::sas::hmac_sha256(&a.key, &long).to_vec(),
            "{step:?}"
        );
        let expected = match step {
            ActivationStep::Staged => (true, true),
            ActivationStep::OldEvicted => (false, true),
            ActivationStep::Persisted => (true, true),
        };
        assert_eq!(layout(&t), expected, "{step:?}");
        key = a.key.to_vec();

        // Opening again removes a staged duplicate; a key that is only staged stays until the
        // next activation, which converges to the normal layout.
        drop(t);
        t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
        assert_eq!(
            t.sign_with_identity(b"reopened").unwrap(),
            hsm_core::sas::hmac_sha256(&key, b"reopened").to_vec(),
            "{step:?}"
        );
        if step == ActivationStep::Persisted {
            assert_eq!(layout(&t), (true, false));
        } else {
            assert_eq!(layout(&t), expected, "{step:?}");
            key = activate(&mut t);
            assert_eq!(layout(&t), (true, false), "{step:?}");
            assert_eq!(
                t.sign_with_identity(b"again").unwrap(),
                hsm_core::sas::hmac_sha256(&key, b"again").to_vec()
            );
        }
    }
    // Removing the identity key removes a staged one too.
    assert!(t.remove_identity_key().unwrap());
    assert!(!t.has_identity_key().unwrap());
}

/// The staging handle holding an object that is not an identity key (a user's ECDSA key) is
/// never evicted: re-activation refuses with a clear error and the old identity key still signs.
#[test]
fn a_foreign_object_at_the_staging_handle_is_left_alone() {
    let sw = Swtpm::start();
    let mut t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
    let key = activate(&mut t);
    let staging = hsm_tpm::staging_handle(t.identity_handle());
    let ecc = hsm_tpm::generate_key(t.connection().clone(), hsm_tpm::KeyLocation::Persistent(staging)).unwrap();
    let spki = hsm_core::SigningKey::public_key_spki(&ecc).unwrap();
    assert_eq!(
        t.sign_with_identity(b"m").unwrap(),
        hsm_core::sas::hmac_sha256(&key, b"m").to_vec()
    );
    let ek = t.endorsement_key().unwrap();
    let srk = t.storage_root_key().unwrap();
    let a = service::make_activation(&ek, &srk).unwrap();
    let e = t.activate_identity_key(&a.blob).unwrap_err().to_string();
    assert!(
        e.contains(&format!("0x{staging:08x}")) && e.contains("another object"),
        "{e}"
    );
    assert_eq!(
        t.sign_with_identity(b"m").unwrap(),
        hsm_core::sas::hmac_sha256(&key, b"m").to_vec()
    );
    drop(t);
    let t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
    assert!(t.remove_identity_key().unwrap());
    let again = hsm_tpm::TpmKey::open(t.connection().clone(), hsm_tpm::KeyLocation::Persistent(staging)).unwrap();
    assert_eq!(hsm_core::SigningKey::public_key_spki(&again).unwrap(), spki);
    // With the identity handle empty, activation persists there directly and still leaves the
    // object at the staging handle alone.
    let mut t = t;
    let key = activate(&mut t);
    assert_eq!(
        t.sign_with_identity(b"n").unwrap(),
        hsm_core::sas::hmac_sha256(&key, b"n").to_vec()
    );
    let again = hsm_tpm::TpmKey::open(t.connection().clone(), hsm_tpm::KeyLocation::Persistent(staging)).unwrap();
    assert_eq!(hsm_core::SigningKey::public_key_spki(&again).unwrap(), spki);
}
