//! The SASL TPM mechanism's frames (dps-wire's `sasl_tpm`), as the emulator reads a device's and a device
//! reads the service's: the init, the SRK and token responses, the challenges and their reassembly. Each
//! parse stays within its input, and what decodes encodes back to the same bytes.
#![no_main]

use dps_wire::sasl_tpm::{self, BlobAssembler, Challenge, TpmInit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(init) = TpmInit::decode(bytes) {
        assert_eq!(init.encode().as_deref(), Ok(bytes));
    }
    if let Ok(srk) = sasl_tpm::decode_storage_root_key(bytes) {
        assert_eq!(sasl_tpm::encode_storage_root_key(srk).as_deref(), Ok(bytes));
    }
    if let Ok(token) = sasl_tpm::decode_token(bytes) {
        assert_eq!(sasl_tpm::encode_token(token).as_deref(), Ok(bytes));
    }
    // The input as a run of challenges, each prefixed by its length byte, through the device's reassembly.
    let mut assembler = BlobAssembler::default();
    let mut rest = bytes;
    while let Some((&len, tail)) = rest.split_first() {
        let (frame, next) = tail.split_at(usize::from(len).min(tail.len()));
        rest = next;
        match Challenge::decode(frame) {
            Ok(Challenge::Segment { sequence, last, data }) => match assembler.push(sequence, last, data) {
                Ok(Some(blob)) => {
                    assert!(blob.len() <= bytes.len());
                    // What the service would send for it comes back the same.
                    if let Ok(segments) = sasl_tpm::challenge_segments(&blob) {
                        let mut again = BlobAssembler::default();
                        let mut out = None;
                        for s in &segments {
                            let Ok(Challenge::Segment { sequence, last, data }) = Challenge::decode(s) else {
                                panic!("a segment of challenge_segments does not decode");
                            };
                            out = again.push(sequence, last, data).ok().flatten();
                        }
                        assert_eq!(out.as_deref(), Some(blob.as_slice()));
                    }
                    break;
                }
                Ok(None) => {}
                Err(_) => break,
            },
            Ok(Challenge::StorageRootKey) | Err(_) => {}
        }
    }
});
