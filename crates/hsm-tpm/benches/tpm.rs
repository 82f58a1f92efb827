//! TPM throughput on swtpm, as ratios measured in one run (alternating rounds):
//! - `Tpm::sign_with_identity` (HMAC-SHA256 with the persisted identity key) vs a raw tss-esapi
//!   `TPM2_HMAC` loop on the same context with the handle resolved once and a password session;
//! - `TpmKey::sign` (ECDSA P-256, persistent key) vs a raw loop: SHA-256 in Rust + `TPM2_Sign`;
//! - the same two operations through hsm-abi's C entry points, as a C program calls them:
//!   `hsm_client_tpm_interface()->hsm_client_sign_with_identity` (the SDK's call, result
//!   malloc'd and freed) and `hsm_abi_signer_table()->sign` on a `tpm:` token, vs the raw loops;
//! - opening a provisioned TPM (EK and SRK reused) vs a fresh one (both created).
//!
//! Run: `cargo bench -p hsm-tpm --bench tpm` (needs the `swtpm` package).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Calling the C ABI is an FFI call, as a C program makes it.
#![allow(unsafe_code)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::sdk_tpm::SdkTpm;

use std::time::{Duration, Instant};

use hsm_core::{SasSigner, SignatureScheme, SigningKey, TpmIdentity};
use hsm_tpm::{KeyLocation, Tpm, TpmConn, TpmOptions};
use sha2::Digest as _;
use test_support::bench::{median, rate};
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::handles::{KeyHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Digest, HashScheme, HashcheckTicket, MaxBuffer, SignatureScheme as TssScheme};
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;

const ROUND: Duration = Duration::from_millis(300);
const ROUNDS: usize = 10;

fn persistent(conn: &TpmConn, h: u32) -> KeyHandle {
    conn.with_context(move |ctx| {
        ctx.execute_without_session(|ctx| {
            ctx.tr_from_tpm_public(TpmHandle::Persistent(PersistentTpmHandle::new(h).unwrap()))
        })
    })
    .unwrap()
    .unwrap()
    .into()
}

fn report(name: &str, raw: Vec<f64>, ours: Vec<f64>) {
    let ratios: Vec<f64> = raw.iter().zip(&ours).map(|(r, o)| o / r).collect();
    println!(
        "{name}: raw {:.0}/s, backend {:.0}/s, backend/raw median {:.3} (min {:.3}, max {:.3})",
        median(raw.clone()),
        median(ours.clone()),
        median(ratios.clone()),
        ratios.iter().cloned().fold(f64::INFINITY, f64::min),
        ratios.iter().cloned().fold(0.0, f64::max),
    );
}

/// A `tpm:` key opened through hsm-abi's C signer table.
struct AbiSigner {
    table: &'static hsm_abi::ffi::signer::HSM_ABI_SIGNER_TABLE,
    signer: *mut hsm_abi::ffi::signer::HSM_ABI_SIGNER,
}

impl AbiSigner {
    fn open(token: &str) -> Self {
        // SAFETY: returns a pointer to a static table.
        let table = unsafe { &*hsm_abi::ffi::signer::hsm_abi_signer_table() };
        let c = std::ffi::CString::new(token).unwrap();
        let mut signer = std::ptr::null_mut();
        // SAFETY: `c` is NUL-terminated and `signer` is writable.
        assert_eq!(
            unsafe { (table.open.unwrap())(c.as_ptr(), &mut signer) },
            0,
            "hsm_abi_signer_open"
        );
        AbiSigner { table, signer }
    }

    fn sign(&self, msg: &[u8]) {
        let mut sig = [0u8; 80];
        let mut len = sig.len();
        // SAFETY: the signer is open; buffers are valid for their lengths; `len` is writable.
        let rc = unsafe {
            (self.table.sign.unwrap())(
                self.signer,
                SignatureScheme::EcdsaP256Sha256.code(),
                msg.as_ptr(),
                msg.len(),
                sig.as_mut_ptr(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "hsm_abi_signer_sign");
    }
}

impl Drop for AbiSigner {
    fn drop(&mut self) {
        // SAFETY: opened once, closed once.
        unsafe { (self.table.close.unwrap())(self.signer) };
    }
}

fn main() {
    let sw = common::Swtpm::start();

    let t0 = Instant::now();
    let fresh = Tpm::open(TpmOptions::new(sw.tcti())).unwrap();
    let fresh_time = t0.elapsed();
    assert!(fresh.keys_created().ek && fresh.keys_created().srk);
    drop(fresh);
    let t0 = Instant::now();
    let tpm = Tpm::open(TpmOptions::new(sw.tcti())).unwrap();
    let provisioned_time = t0.elapsed();
    assert!(
        !tpm.keys_created().ek && !tpm.keys_created().srk,
        "a provisioned TPM must need no key creation"
    );
    println!(
        "open: fresh TPM (EK+SRK created) {:.1} ms, provisioned TPM (reused, no key creation) {:.1} ms",
        fresh_time.as_secs_f64() * 1e3,
        provisioned_time.as_secs_f64() * 1e3
    );

    let a =
        hsm_tpm::service::make_activation(&tpm.endorsement_key().unwrap(), &tpm.storage_root_key().unwrap()).unwrap();
    tpm.activate_identity_key(&a.blob).unwrap();
    let conn = tpm.connection().clone();
    let id = persistent(&conn, hsm_tpm::IDENTITY_HANDLE);
    let msg = b"0ne00000A0A%2fregistrations%2fzzxhfjbt4efjp2lyhwznkyovc5l3byer33ai4mb5qmrpkmhy7zsq\n1767225600";
    assert_eq!(
        tpm.sign_with_identity(msg).unwrap(),
        hsm_core::sas::hmac_sha256(&a.key, msg).to_vec()
    );

    let key = hsm_tpm::generate_key(conn.clone(), KeyLocation::Persistent(0x8100_0200)).unwrap();
    let ecc = persistent(&conn, 0x8100_0200);
    let ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
    .unwrap();
    let scheme = TssScheme::EcDsa {
        hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
    };

    let abi = SdkTpm::open(&sw.tcti());
    assert_eq!(abi.sign(msg), hsm_core::sas::hmac_sha256(&a.key, msg).to_vec());
    let abi_signer = AbiSigner::open(&format!("tpm:handle=0x81000200;tcti={}", sw.tcti()));

    let (mut raw_h, mut our_h, mut raw_e, mut our_e) = (vec![], vec![], vec![], vec![]);
    let (mut abi_h, mut abi_e): (Vec<f64>, Vec<f64>) = (vec![], vec![]);
    for _ in 0..ROUNDS {
        raw_h.push(rate(ROUND, |_| {
            let m = msg.to_vec();
            conn.with_context(move |ctx| {
                ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.hmac(id.into(), MaxBuffer::try_from(m).unwrap(), HashingAlgorithm::Sha256)
                })
                .unwrap()
            })
            .unwrap();
        }));
        our_h.push(rate(ROUND, |_| {
            tpm.sign_with_identity(msg).unwrap();
        }));
        raw_e.push(rate(ROUND, |n| {
            let d = sha2::Sha256::digest(format!("tls transcript {n}").as_bytes());
            let ticket = ticket.clone();
            conn.with_context(move |ctx| {
                ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.sign(ecc, Digest::try_from(d.to_vec()).unwrap(), scheme, ticket)
                })
                .unwrap()
            })
            .unwrap();
        }));
        our_e.push(rate(ROUND, |n| {
            key.sign(
                SignatureScheme::EcdsaP256Sha256,
                format!("tls transcript {n}").as_bytes(),
            )
            .unwrap();
        }));
        abi_h.push(rate(ROUND, |_| {
            abi.sign(msg);
        }));
        abi_e.push(rate(ROUND, |n| {
            abi_signer.sign(format!("tls transcript {n}").as_bytes())
        }));
    }
    report("HMAC-SHA256, Rust sign_with_identity", raw_h.clone(), our_h);
    report("HMAC-SHA256, C ABI sign_with_identity", raw_h, abi_h);
    report("ECDSA P-256, Rust TpmKey::sign", raw_e.clone(), our_e);
    report("ECDSA P-256, C signer table", raw_e, abi_e);
}
