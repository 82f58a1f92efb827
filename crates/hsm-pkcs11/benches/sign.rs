//! Signing throughput on a SoftHSM2 P-256 key, as ratios measured in one run:
//! - backend `SigningKey::sign` vs a raw cryptoki loop (hash + C_Sign CKM_ECDSA) on the same key;
//! - two threads vs one thread through the backend;
//! - the C signer table (`hsm_abi_signer_table()->sign`, what C callers and vendors use) vs the
//!   backend call, on the same key.
//!
//! Run: `cargo bench -p hsm-pkcs11 --bench sign` (needs the `softhsm2` package).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Calling the C signer table is an FFI call, as a C program makes it.
#![allow(unsafe_code)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use hsm_core::{Curve, KeyAlgorithm, SignatureScheme, SigningKey};
use hsm_pkcs11::{open_signer, tools};
use sha2::Digest;
use test_support::bench::{median, rate};

const ROUND: Duration = Duration::from_millis(250);
const ROUNDS: usize = 15;

fn threaded_rate(signer: &Arc<dyn SigningKey>, threads: usize) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let signer = signer.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while start.elapsed() < ROUND {
                    signer
                        .sign(SignatureScheme::EcdsaP256Sha256, format!("{t}/{n}").as_bytes())
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    total as f64 / start.elapsed().as_secs_f64()
}

/// Software ECDSA P-256 (ring) signatures per second in `threads` threads: how much the
/// machine's cores are free during this run.
fn cpu_rate(threads: usize) -> f64 {
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let key = Arc::new(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap());
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let key = key.clone();
            std::thread::spawn(move || {
                let rng = ring::rand::SystemRandom::new();
                let mut n = 0u64;
                while start.elapsed() < ROUND {
                    key.sign(&rng, &n.to_le_bytes()).unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    total as f64 / start.elapsed().as_secs_f64()
}

/// The key opened through hsm-abi's C signer table.
struct TableSigner {
    table: &'static hsm_abi::ffi::signer::HSM_ABI_SIGNER_TABLE,
    signer: *mut hsm_abi::ffi::signer::HSM_ABI_SIGNER,
}

impl TableSigner {
    fn open(uri: &str) -> Result<Self, String> {
        // SAFETY: the function takes no arguments and returns a pointer to a static table.
        let table = unsafe { &*hsm_abi::ffi::signer::hsm_abi_signer_table() };
        let c_uri = std::ffi::CString::new(uri).unwrap();
        let mut signer = std::ptr::null_mut();
        // SAFETY: `c_uri` is NUL-terminated and `signer` is a writable pointer.
        let rc = unsafe { (table.open.unwrap())(c_uri.as_ptr(), &mut signer) };
        if rc != 0 {
            return Err(format!("hsm_abi_signer_open returned {rc}"));
        }
        Ok(TableSigner { table, signer })
    }

    fn sign(&self, msg: &[u8]) {
        let mut sig = [0u8; 80];
        let mut len = sig.len();
        // SAFETY: `signer` is open; `msg` and `sig` are valid for their lengths; `len` is
        // initialized and writable.
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

impl Drop for TableSigner {
    fn drop(&mut self) {
        // SAFETY: `signer` came from `open` and is closed once.
        unsafe { (self.table.close.unwrap())(self.signer) };
    }
}

fn main() {
    let f = common::fixture();
    let uri = tools::generate_key_pair(&f.uri("object=bench;id=%be%0c"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let signer = open_signer(&uri.to_token_string()).unwrap();

    // The raw loop: its own session on the same token and key (the login is shared).
    let token = hsm_pkcs11::Token::open(&uri, None).unwrap();
    let session = token
        .module()
        .context()
        .open_ro_session(token.find_slot().unwrap())
        .unwrap();
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(vec![0xbe, 0x0c]),
        ])
        .unwrap()[0];

    // Rounds alternate the contenders, and each ratio compares neighbouring rounds, so load
    // from other processes on the machine hits both sides alike.
    let mut backend_ratio = Vec::new();
    let mut thread_ratio = Vec::new();
    let mut raw_thread_ratio = Vec::new();
    let mut cpu_ratio = Vec::new();
    let mut table_ratio = Vec::new();
    let table = TableSigner::open(&uri.to_token_string());
    if let Err(e) = &table {
        println!("C signer table: cannot open the key ({e}); is hsm-abi built with its `pkcs11` feature?");
    }
    let (mut raw_rates, mut backend_rates, mut one_rates, mut two_rates) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let slot = token.find_slot().unwrap();
    for _ in 0..ROUNDS {
        let raw = rate(ROUND, |n| {
            let digest = sha2::Sha256::digest(n.to_le_bytes());
            session.sign(&Mechanism::Ecdsa, key, &digest).unwrap();
        });
        let backend = rate(ROUND, |n| {
            signer.sign(SignatureScheme::EcdsaP256Sha256, &n.to_le_bytes()).unwrap();
        });
        let one = threaded_rate(&signer, 1);
        let two = threaded_rate(&signer, 2);
        // The same two-thread comparison on raw sessions: what the token itself allows.
        let raw_two = {
            let start = Instant::now();
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let s = token.module().context().open_ro_session(slot).unwrap();
                    std::thread::spawn(move || {
                        let mut n = 0u64;
                        while start.elapsed() < ROUND {
                            let digest = sha2::Sha256::digest(n.to_le_bytes());
                            s.sign(&Mechanism::Ecdsa, key, &digest).unwrap();
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            total as f64 / start.elapsed().as_secs_f64()
        };
        cpu_ratio.push(cpu_rate(2) / cpu_rate(1));
        if let Ok(table) = &table {
            let via_table = rate(ROUND, |n| table.sign(&n.to_le_bytes()));
            let backend_again = rate(ROUND, |n| {
                signer.sign(SignatureScheme::EcdsaP256Sha256, &n.to_le_bytes()).unwrap();
            });
            table_ratio.push(via_table / backend_again);
        }
        backend_ratio.push(backend / raw);
        thread_ratio.push(two / one);
        raw_thread_ratio.push(raw_two / raw);
        raw_rates.push(raw);
        backend_rates.push(backend);
        one_rates.push(one);
        two_rates.push(two);
    }
    println!(
        "PKCS#11 SoftHSM2 ECDSA P-256, {ROUNDS} alternating rounds of {} ms (medians)",
        ROUND.as_millis()
    );
    println!("raw cryptoki loop (hash + C_Sign)   {:>9.0} signs/s", median(raw_rates));
    println!(
        "backend SigningKey::sign            {:>9.0} signs/s",
        median(backend_rates)
    );
    println!("backend, 1 thread                   {:>9.0} signs/s", median(one_rates));
    println!("backend, 2 threads                  {:>9.0} signs/s", median(two_rates));
    println!(
        "ratio backend / raw                 {:>9.3}  (target >= 0.95)",
        median(backend_ratio)
    );
    println!(
        "ratio 2 threads / 1 thread          {:>9.3}  (target >= 1.4)",
        median(thread_ratio)
    );
    println!(
        "ratio raw 2 sessions / raw 1        {:>9.3}  (what the token allows)",
        median(raw_thread_ratio)
    );
    println!(
        "ratio ring 2 threads / 1 (CPU)     {:>9.3}  (free cores during the run)",
        median(cpu_ratio)
    );
    if !table_ratio.is_empty() {
        println!(
            "ratio C signer table / backend      {:>9.3}  (target >= 0.95)",
            median(table_ratio)
        );
    }
    println!(
        "load average at the end             {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
}
