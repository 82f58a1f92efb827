//! Median time of the full DICE derivation: CDI_0, CDI_1, DeviceID and Alias key pairs,
//! DeviceID and Alias certificates. Run with `cargo bench -p hsm-riot --bench derive`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use hsm_riot::{DiceOptions, DiceX509, Firmware, Fwid, Uds, Validity, derive_alias, derive_keys, issue_chain};
use zeroize::Zeroizing;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn measure(name: &str, runs: usize, mut f: impl FnMut()) {
    for _ in 0..runs / 10 {
        f();
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f();
        times.push(t.elapsed());
    }
    let min = *times.iter().min().unwrap();
    let med = median(times);
    println!(
        "{name:<58} median {:>8.3} ms   min {:>8.3} ms   ({runs} runs)",
        med.as_secs_f64() * 1e3,
        min.as_secs_f64() * 1e3
    );
}

fn main() {
    let runs = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let uds = Uds::from_bytes(Zeroizing::new((0u8..32).map(|i| i ^ 0xa5).collect())).unwrap();
    let fwid = Fwid::of_bytes(b"firmware image 1.0");
    let validity = Validity::default();

    measure("full derivation (CDIs, 2 key pairs, 2 certificates)", runs, || {
        let keys = derive_keys(&uds, &fwid).unwrap();
        let chain = issue_chain(&keys, "device-0001", &validity, None).unwrap();
        std::hint::black_box(chain);
    });
    measure("key pairs only (CDIs, DeviceID + Alias)", runs, || {
        std::hint::black_box(derive_keys(&uds, &fwid).unwrap());
    });
    measure("Alias key only (what a dice: token costs to open)", runs, || {
        std::hint::black_box(derive_alias(&uds, &fwid).unwrap());
    });

    let alias = derive_alias(&uds, &fwid).unwrap();
    measure("certificate signature (p256, RFC 6979)", runs, || {
        std::hint::black_box(alias.sign_sha256(b"tbsCertificate"));
    });
    measure("TLS signature (SigningKey::sign, ring)", runs, || {
        std::hint::black_box(
            hsm_core::SigningKey::sign(&alias, hsm_core::SignatureScheme::EcdsaP256Sha256, b"transcript").unwrap(),
        );
    });

    let dir = tempfile::tempdir().unwrap();
    let uds_path = dir.path().join("uds.bin");
    hsm_riot::create_uds_file(&uds_path).unwrap();
    let fw_path = dir.path().join("firmware.bin");
    std::fs::write(&fw_path, vec![0x5au8; 256 * 1024]).unwrap();
    let opts = DiceOptions {
        uds_file: uds_path,
        firmware: Firmware::File(fw_path),
        registration_id: "device-0001".into(),
        ca: None,
        validity,
    };
    measure(
        "DiceX509::new from files (+ read UDS, hash 256 KiB image)",
        runs,
        || {
            std::hint::black_box(DiceX509::new(&opts).unwrap());
        },
    );
}
