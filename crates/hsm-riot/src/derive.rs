//! The DICE layering: CDIs and the DeviceID and Alias key pairs (see the crate documentation
//! for the exact derivation).

use std::io::Read as _;
use std::path::Path;

use hkdf::Hkdf;
use hsm_core::{Error, Result};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::key::DiceKey;
use crate::uds::Uds;

// `hsm-riot/v1`, the version label of the derivation, begins every HKDF `info` and salt input,
// so a future change of the scheme can never silently reuse keys of this one.

const LAYER0_MEASUREMENT_INPUT: &[u8] = b"hsm-riot/v1 layer 0: software DICE engine";
const CDI0_INFO: &[u8] = b"hsm-riot/v1 CDI_0";
const CDI1_INFO: &[u8] = b"hsm-riot/v1 CDI_1";
const ASYM_SALT_INPUT: &[u8] = b"hsm-riot/v1 asymmetric key salt";
const DEVICE_ID_INFO: &[u8] = b"hsm-riot/v1 DeviceID P-256 key pair";
const ALIAS_INFO: &[u8] = b"hsm-riot/v1 Alias P-256 key pair";

/// How many HKDF-Expand candidates the scalar derivation tries before giving up. A candidate
/// is rejected with probability about 2^-32, so a second one is already vanishingly rare.
const MAX_SCALAR_CANDIDATES: u8 = 16;

/// A firmware measurement: SHA-256 of the next layer's image (the DICE "FWID").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fwid(pub [u8; 32]);

impl Fwid {
    /// SHA-256 of a firmware image file.
    pub(crate) fn of_file(path: &Path) -> Result<Self> {
        // Any size (it is hashed in chunks), but a regular file: a FIFO would block.
        let (mut file, _) = hsm_core::fs::open_regular("read firmware image", path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| Error::io("read firmware image", path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(Fwid(hasher.finalize().into()))
    }

    /// SHA-256 of firmware bytes.
    pub fn of_bytes(image: &[u8]) -> Self {
        Fwid(Sha256::digest(image).into())
    }

    /// A digest given as 64 hex digits (either case).
    pub fn from_hex(what: &str, hex: &str) -> Result<Self> {
        let t = hex.trim();
        let bytes = hsm_core::hex::decode(t).map_err(|e| Error::parse(what, format!("not hexadecimal: {e}")))?;
        let arr: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            Error::parse(
                what,
                format!("{} bytes; a SHA-256 digest has 32 (64 hex digits)", b.len()),
            )
        })?;
        Ok(Fwid(arr))
    }

    /// The digest as 64 lowercase hex digits (as a configuration's `firmware_digest` takes it).
    pub fn to_hex(&self) -> String {
        hsm_core::hex::encode(&self.0)
    }
}

/// A Compound Device Identifier. Zeroized on drop.
pub(crate) struct Cdi(Zeroizing<[u8; 32]>);

/// The keys of both layers.
#[derive(Debug)]
pub struct DiceKeys {
    /// Layer 0 identity: depends on the UDS only.
    pub device_id: DiceKey,
    /// Layer 1 identity: depends on the UDS and the firmware measurement.
    pub alias: DiceKey,
    /// The firmware measurement the Alias key was derived from.
    pub fwid: Fwid,
}

fn hkdf32(salt: &[u8], ikm: &[u8], info: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    let mut okm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, &mut okm[..])
        .map_err(|e| Error::Internal(format!("HKDF-Expand of 32 bytes failed: {e}")))?;
    Ok(okm)
}

/// CDI_0 = HKDF-SHA256(IKM = UDS, salt = SHA-256(layer-0 measurement input), info = "hsm-riot/v1 CDI_0").
pub(crate) fn cdi0(uds: &Uds) -> Result<Cdi> {
    let salt: [u8; 32] = Sha256::digest(LAYER0_MEASUREMENT_INPUT).into();
    Ok(Cdi(hkdf32(&salt, uds.as_bytes(), CDI0_INFO)?))
}

/// CDI_1 = HKDF-SHA256(IKM = CDI_0, salt = FWID, info = "hsm-riot/v1 CDI_1").
pub(crate) fn cdi1(cdi0: &Cdi, fwid: &Fwid) -> Result<Cdi> {
    Ok(Cdi(hkdf32(&fwid.0, &cdi0.0[..], CDI1_INFO)?))
}

/// The P-256 key of a CDI: PRK = HKDF-Extract(salt = SHA-256(asymmetric salt input), IKM = CDI);
/// candidate_i = HKDF-Expand(PRK, info || i, 32) for i = 0, 1, ..., read big-endian; the first
/// candidate in [1, n-1] is the private scalar.
pub(crate) fn key_from_cdi(cdi: &Cdi, info: &[u8]) -> Result<DiceKey> {
    let salt: [u8; 32] = Sha256::digest(ASYM_SALT_INPUT).into();
    let hk = Hkdf::<Sha256>::new(Some(&salt), &cdi.0[..]);
    let mut label = Zeroizing::new(Vec::with_capacity(info.len() + 1));
    for i in 0..MAX_SCALAR_CANDIDATES {
        label.clear();
        label.extend_from_slice(info);
        label.push(i);
        let mut candidate = Zeroizing::new([0u8; 32]);
        hk.expand(&label, &mut candidate[..])
            .map_err(|e| Error::Internal(format!("HKDF-Expand of 32 bytes failed: {e}")))?;
        // Rejects 0 and values >= n (the group order), in constant time.
        if let Ok(secret) = p256::SecretKey::from_bytes(p256::FieldBytes::from_slice(&candidate[..])) {
            return DiceKey::from_secret(secret);
        }
    }
    Err(Error::Crypto {
        op: "derive a P-256 scalar",
        reason: format!("{MAX_SCALAR_CANDIDATES} HKDF candidates were all out of range"),
    })
}

/// The Alias key: depends on the UDS and the firmware measurement.
pub fn derive_alias(uds: &Uds, fwid: &Fwid) -> Result<DiceKey> {
    key_from_cdi(&cdi1(&cdi0(uds)?, fwid)?, ALIAS_INFO)
}

/// Both key pairs.
pub fn derive_keys(uds: &Uds, fwid: &Fwid) -> Result<DiceKeys> {
    let c0 = cdi0(uds)?;
    let device_id = key_from_cdi(&c0, DEVICE_ID_INFO)?;
    let alias = key_from_cdi(&cdi1(&c0, fwid)?, ALIAS_INFO)?;
    Ok(DiceKeys {
        device_id,
        alias,
        fwid: *fwid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uds(seed: u8) -> Uds {
        Uds::from_bytes(Zeroizing::new(
            (0..32u8).map(|i| i.wrapping_mul(7).wrapping_add(seed)).collect(),
        ))
        .unwrap()
    }

    #[test]
    fn same_inputs_same_keys_new_firmware_new_alias_only() {
        let fw1 = Fwid::of_bytes(b"firmware 1.0");
        let fw2 = Fwid::of_bytes(b"firmware 1.1");
        let a = derive_keys(&uds(1), &fw1).unwrap();
        let b = derive_keys(&uds(1), &fw1).unwrap();
        assert_eq!(a.device_id.spki(), b.device_id.spki());
        assert_eq!(a.alias.spki(), b.alias.spki());
        let c = derive_keys(&uds(1), &fw2).unwrap();
        assert_eq!(a.device_id.spki(), c.device_id.spki());
        assert_ne!(a.alias.spki(), c.alias.spki());
        let d = derive_keys(&uds(2), &fw1).unwrap();
        assert_ne!(a.device_id.spki(), d.device_id.spki());
        assert_ne!(a.alias.spki(), d.alias.spki());
        assert_ne!(a.device_id.spki(), a.alias.spki());
        assert_eq!(derive_alias(&uds(1), &fw1).unwrap().spki(), a.alias.spki());
    }

    /// The scalar is HKDF-Expand(HKDF-Extract(salt, CDI), info || 0): recompute it with the
    /// primitives spelled out and compare public keys, so the documented derivation is the real one.
    #[test]
    fn derivation_matches_the_documented_steps() {
        use p256::elliptic_curve::sec1::ToEncodedPoint as _;
        let uds = uds(9);
        let fw = Fwid::of_bytes(b"image");
        let h = |b: &[u8]| -> [u8; 32] { Sha256::digest(b).into() };
        let expand = |salt: &[u8], ikm: &[u8], info: &[u8]| {
            let mut o = [0u8; 32];
            Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, &mut o).unwrap();
            o
        };
        let cdi0 = expand(
            &h(b"hsm-riot/v1 layer 0: software DICE engine"),
            uds.as_bytes(),
            b"hsm-riot/v1 CDI_0",
        );
        let cdi1 = expand(&fw.0, &cdi0, b"hsm-riot/v1 CDI_1");
        let asym = h(b"hsm-riot/v1 asymmetric key salt");
        let d_dev = expand(&asym, &cdi0, b"hsm-riot/v1 DeviceID P-256 key pair\x00");
        let d_alias = expand(&asym, &cdi1, b"hsm-riot/v1 Alias P-256 key pair\x00");
        let pt = |d: [u8; 32]| {
            p256::SecretKey::from_bytes(&d.into())
                .unwrap()
                .public_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec()
        };
        let keys = derive_keys(&uds, &fw).unwrap();
        assert_eq!(keys.device_id.public_point(), pt(d_dev).as_slice());
        assert_eq!(keys.alias.public_point(), pt(d_alias).as_slice());
    }

    #[test]
    fn fwid_hex() {
        let f = Fwid::of_bytes(b"abc");
        assert_eq!(
            f.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Fwid::from_hex("d", &f.to_hex().to_uppercase()).unwrap(), f);
        let e = Fwid::from_hex("firmware_digest", "abcd").unwrap_err().to_string();
        assert!(e.contains("firmware_digest") && e.contains("2 bytes"), "{e}");
        let e = Fwid::from_hex("firmware_digest", "zz").unwrap_err().to_string();
        assert!(e.contains("not hexadecimal"), "{e}");
    }
}
