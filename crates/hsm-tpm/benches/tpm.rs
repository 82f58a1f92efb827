//! TPM throughput on swtpm, as ratios measured in one run (alternating rounds):
//! - `Tpm::sign_with_identity` (HMAC-SHA256 with the persisted identity key) vs a raw tss-esapi
//!   `TPM2_HMAC` loop on the same context with the handle resolved once and a password session;
//! - `TpmKey::sign` (ECDSA P-256, persistent key) vs a raw loop: SHA-256 in Rust + `TPM2_Sign`;
//! - opening a provisioned TPM (EK and SRK reused) vs a fresh one (both created).
//!
//! Run: `cargo bench -p hsm-tpm --bench tpm` (needs the `swtpm` package).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use hsm_core::{SignatureScheme, SigningKey, TpmIdentity};
use hsm_tpm::{KeyLocation, Tpm, TpmConn, TpmOptions};
use sha2::Digest as _;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::handles::{KeyHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Digest, HashScheme, HashcheckTicket, MaxBuffer, SignatureScheme as TssScheme};
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;

const ROUND: Duration = Duration::from_millis(300);
const ROUNDS: usize = 10;

fn rate(mut f: impl FnMut(u64)) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < ROUND {
        f(n);
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn persistent(conn: &TpmConn, h: u32) -> KeyHandle {
    conn.with_context(|ctx| {
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

fn main() {
    let sw = common::Swtpm::start();

    let t0 = Instant::now();
    let fresh = Tpm::open(TpmOptions::new(sw.tcti())).unwrap();
    let fresh_time = t0.elapsed();
    assert!(fresh.keys_created().ek && fresh.keys_created().srk);
    drop(fresh);
    let t0 = Instant::now();
    let mut tpm = Tpm::open(TpmOptions::new(sw.tcti())).unwrap();
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

    let (mut raw_h, mut our_h, mut raw_e, mut our_e) = (vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        raw_h.push(rate(|_| {
            conn.with_context(|ctx| {
                ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.hmac(
                        id.into(),
                        MaxBuffer::try_from(msg.to_vec()).unwrap(),
                        HashingAlgorithm::Sha256,
                    )
                })
                .unwrap()
            })
            .unwrap();
        }));
        our_h.push(rate(|_| {
            tpm.sign_with_identity(msg).unwrap();
        }));
        raw_e.push(rate(|n| {
            let d = sha2::Sha256::digest(format!("tls transcript {n}").as_bytes());
            conn.with_context(|ctx| {
                ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.sign(ecc, Digest::try_from(d.to_vec()).unwrap(), scheme, ticket.clone())
                })
                .unwrap()
            })
            .unwrap();
        }));
        our_e.push(rate(|n| {
            key.sign(
                SignatureScheme::EcdsaP256Sha256,
                format!("tls transcript {n}").as_bytes(),
            )
            .unwrap();
        }));
    }
    report("HMAC-SHA256 (sign_with_identity)", raw_h, our_h);
    report("ECDSA P-256 sign (persistent key)", raw_e, our_e);
}
