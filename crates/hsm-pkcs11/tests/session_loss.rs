//! Sessions and login lost behind the backend's back (`C_CloseAllSessions` on the token's slot,
//! as a token reset or another component of the process would do): the next operation gets
//! `CKR_SESSION_HANDLE_INVALID`, re-opens the token once, logs in again and succeeds.
//! Its own test process: it closes every session of the token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{fixture, ring_verify};
use hsm_core::{Curve, KeyAlgorithm, SignatureScheme, SigningKey, SymmetricIdentity};
use hsm_pkcs11::{Pkcs11Uri, open_signer, tools};

/// `C_CloseAllSessions(slot)` through the module's own export (cryptoki does not wrap it).
fn close_all_sessions(module: &std::path::Path, slot: u64) {
    // SAFETY: loading the module already loaded by the backend (dlopen returns the same
    // handle); C_CloseAllSessions has this signature in PKCS#11 (CK_SLOT_ID -> CK_RV, both
    // unsigned long on this platform) and is safe to call with any slot id.
    #[allow(unsafe_code)]
    let rv = unsafe {
        let lib = libloading::Library::new(module).unwrap();
        let f: libloading::Symbol<unsafe extern "C" fn(std::ffi::c_ulong) -> std::ffi::c_ulong> =
            lib.get(b"C_CloseAllSessions").unwrap();
        f(slot as std::ffi::c_ulong)
    };
    assert_eq!(rv, 0, "C_CloseAllSessions");
}

#[test]
fn recovers_after_all_sessions_are_closed() {
    let f = fixture();
    // Another component of the process initialized the module first (as a C library may):
    // the backend shares it instead of failing, and loads it only once itself.
    let other = cryptoki::context::Pkcs11::new(f.hsm.module()).unwrap();
    other
        .initialize(cryptoki::context::CInitializeArgs::new(
            cryptoki::context::CInitializeFlags::OS_LOCKING_OK,
        ))
        .unwrap();
    let m1 = hsm_pkcs11::module(f.hsm.module()).unwrap();
    let m2 = hsm_pkcs11::module(f.hsm.module()).unwrap();
    assert!(Arc::ptr_eq(&m1, &m2), "one context per module and process");
    let key_uri = tools::generate_key_pair(&f.uri("object=resilient"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let signer: Arc<dyn SigningKey> = open_signer(&key_uri.to_token_string()).unwrap();
    let spki = signer.public_key_spki().unwrap();
    let secret_uri = tools::import_secret(&f.uri("object=resilient-hmac"), &[7u8; 32]).unwrap();
    let secret = hsm_pkcs11::Pkcs11Symmetric::new(
        "device-0001".into(),
        hsm_pkcs11::Pkcs11Secret::open(&secret_uri).unwrap(),
    );
    let expected_mac = hsm_core::sas::hmac_sha256(&[7u8; 32], b"data");
    assert_eq!(secret.hmac_sha256(b"data").unwrap(), expected_mac);

    let token = hsm_pkcs11::Token::open(&Pkcs11Uri::parse(&f.uri("")).unwrap(), None).unwrap();
    let slot = token.find_slot().unwrap().id();
    // The call really closes this process's sessions on that slot.
    let probe = token
        .module()
        .context()
        .open_ro_session(token.find_slot().unwrap())
        .unwrap();
    close_all_sessions(f.hsm.module(), slot);
    assert!(probe.get_session_info().is_err(), "sessions were closed");
    drop(probe);
    for round in 0..3 {
        close_all_sessions(f.hsm.module(), slot);
        let msg = format!("after losing every session, round {round}");
        let sig = signer.sign(SignatureScheme::EcdsaP256Sha256, msg.as_bytes()).unwrap();
        ring_verify(SignatureScheme::EcdsaP256Sha256, &spki, msg.as_bytes(), &sig);
        assert_eq!(secret.hmac_sha256(b"data").unwrap(), expected_mac);
    }

    // Several threads with pooled sessions lose them at once and recover together. (Sessions
    // are closed only between operations: closing a session another thread is using is a
    // misuse PKCS#11 forbids, and SoftHSM crashes on it.)
    let barrier = Arc::new(std::sync::Barrier::new(5));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let signer = signer.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                for round in 0..3 {
                    for i in 0..20 {
                        let msg = format!("{t}/{round}/{i}");
                        signer.sign(SignatureScheme::EcdsaP256Sha256, msg.as_bytes()).unwrap();
                    }
                    barrier.wait(); // every thread idle
                    barrier.wait(); // sessions closed
                }
            })
        })
        .collect();
    for _ in 0..3 {
        barrier.wait();
        close_all_sessions(f.hsm.module(), slot);
        barrier.wait();
    }
    for h in handles {
        h.join().unwrap();
    }

    // The key is replaced under the same label and id: the cached handle goes stale, the key
    // is found again, and the backend refuses to sign with a different key.
    let swap = tools::generate_key_pair(&f.uri("object=swapped;id=%5a"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let swap_signer = open_signer(&swap.to_token_string()).unwrap();
    swap_signer.sign(SignatureScheme::EcdsaP256Sha256, b"before").unwrap();
    token
        .run_rw(|session| {
            for h in session
                .find_objects(&[cryptoki::object::Attribute::Id(vec![0x5a])])
                .unwrap()
            {
                session.destroy_object(h).unwrap();
            }
            Ok(())
        })
        .unwrap();
    tools::generate_key_pair(&f.uri("object=swapped;id=%5a"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let e = swap_signer
        .sign(SignatureScheme::EcdsaP256Sha256, b"after")
        .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(
            e,
            hsm_core::Error::Device {
                rv: cryptoki_sys::CKR_KEY_CHANGED,
                ..
            }
        ) && text.contains("not the key this identity was opened with"),
        "{text}"
    );
    // Opening it again gives the new key.
    let fresh = open_signer(&swap.to_token_string()).unwrap();
    assert_ne!(fresh.public_key_spki().unwrap(), swap_signer.public_key_spki().unwrap());
    fresh.sign(SignatureScheme::EcdsaP256Sha256, b"after").unwrap();
}
