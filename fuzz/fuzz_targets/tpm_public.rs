//! TPM2B_PUBLIC areas of EK and SRK as the service parses them, and the activation made from them.
#![no_main]

use hsm_tpm::service::{RsaStorageKey, make_activation};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = RsaStorageKey::parse("fuzz", bytes).map(|k| k.name().len());
    // Split in two: an EK and an SRK.
    if bytes.len() > 2 {
        let cut = usize::from(bytes[0]) * bytes.len() / 256;
        let (ek, srk) = bytes[1..].split_at(cut.min(bytes.len() - 1));
        let _ = make_activation(ek, srk);
    }
});
