//! The service side of the TPM attestation, in pure Rust: what DPS does on a TPM registration.
//!
//! Given the device's EK and SRK (marshalled `TPM2B_PUBLIC`, as `get_ek` / `get_srk` return them),
//! [`make_activation`] picks a random HMAC key and builds the activation blob the device's
//! `activate_identity_key` takes (TPM 2.0 Part 1, "Protected Storage" and "Credential
//! Protection"):
//! - a fresh inner wrapper key, delivered as a credential: MakeCredential to the EK (seed by
//!   RSA-OAEP(SHA-256, label "IDENTITY") to the EK, KDFa "STORAGE" key for AES-128-CFB, KDFa
//!   "INTEGRITY" key for the outer HMAC), bound to the SRK's name (the activation object);
//! - the HMAC key duplicated to the SRK: inner wrapper (integrity digest, AES-128-CFB with the
//!   inner key), outer wrapper (seed by RSA-OAEP(SHA-256, label "DUPLICATE") to the SRK, KDFa
//!   "STORAGE" AES-128-CFB and "INTEGRITY" HMAC over the object's name).
//!
//! The caller keeps the returned key to verify the SAS token the device then signs.

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use hmac::Mac;
use hsm_core::{Error, Result};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::blob::ActivationBlob;
use crate::tpm2::{
    TPM_ALG_AES, TPM_ALG_CFB, TPM_ALG_HMAC, TPM_ALG_KEYEDHASH, TPM_ALG_NULL, TPM_ALG_RSA, TPM_ALG_SHA256,
};

/// Attributes of the identity key: userWithAuth | noDA | sign (duplicable: no fixedTPM/fixedParent).
const IDENTITY_KEY_ATTRIBUTES: u32 = 0x0000_0040 | 0x0000_0400 | 0x0004_0000;

/// An RSA-2048 storage key (EK or SRK) of the device, as far as the service needs it.
#[derive(Debug, Clone)]
pub struct RsaStorageKey {
    key: rsa::RsaPublicKey,
    /// TPM name: nameAlg (SHA-256) || SHA-256(TPMT_PUBLIC).
    name: Vec<u8>,
}

impl RsaStorageKey {
    /// Parse a marshalled `TPM2B_PUBLIC` of an RSA restricted decryption key with nameAlg
    /// SHA-256 and AES-128-CFB, as the SDK's EK and SRK are.
    pub fn parse(what: &str, tpm2b: &[u8]) -> Result<Self> {
        let err = |m: String| Error::parse(what, m);
        let mut r = Cursor(tpm2b);
        let size = usize::from(r.u16().ok_or_else(|| err("truncated size".into()))?);
        if size != r.0.len() {
            return Err(err(format!("size field {size} but {} bytes follow", r.0.len())));
        }
        let body = r.0;
        let ty = r.u16().ok_or_else(|| err("truncated".into()))?;
        if ty != TPM_ALG_RSA {
            return Err(err(format!("type 0x{ty:04x} is not RSA")));
        }
        let name_alg = r.u16().ok_or_else(|| err("truncated".into()))?;
        if name_alg != TPM_ALG_SHA256 {
            return Err(err(format!("nameAlg 0x{name_alg:04x} is not SHA-256")));
        }
        let attributes = r.u32().ok_or_else(|| err("truncated".into()))?;
        if attributes & 0x0003_0000 != 0x0003_0000 {
            return Err(err("not a restricted decryption key".into()));
        }
        r.tpm2b().ok_or_else(|| err("truncated authPolicy".into()))?;
        let sym = r.u16().ok_or_else(|| err("truncated".into()))?;
        let (bits, mode) = (
            r.u16().ok_or_else(|| err("truncated".into()))?,
            r.u16().ok_or_else(|| err("truncated".into()))?,
        );
        if (sym, bits, mode) != (TPM_ALG_AES, 128, TPM_ALG_CFB) {
            return Err(err("its symmetric algorithm is not AES-128-CFB".into()));
        }
        let scheme = r.u16().ok_or_else(|| err("truncated".into()))?;
        if scheme != TPM_ALG_NULL {
            return Err(err("its RSA scheme is not NULL".into()));
        }
        let key_bits = r.u16().ok_or_else(|| err("truncated".into()))?;
        let exponent = r.u32().ok_or_else(|| err("truncated".into()))?;
        let modulus = r.tpm2b().ok_or_else(|| err("truncated modulus".into()))?;
        if !r.0.is_empty() {
            return Err(err(format!("{} trailing bytes", r.0.len())));
        }
        if key_bits != 2048 || modulus.len() != 256 {
            return Err(err(format!(
                "RSA-{key_bits} with a {}-byte modulus; RSA-2048 expected",
                modulus.len()
            )));
        }
        let e = if exponent == 0 { 65537 } else { exponent };
        let key = rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(modulus), rsa::BigUint::from(e))
            .map_err(|e| err(format!("bad RSA key: {e}")))?;
        Ok(RsaStorageKey {
            key,
            name: name_of(body),
        })
    }

    /// The key's TPM name.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    fn encrypt_seed(&self, label: &str, seed: &[u8]) -> Result<Vec<u8>> {
        self.key
            .encrypt(&mut OsRng, rsa::Oaep::new_with_label::<Sha256, _>(label), seed)
            .map_err(|e| Error::Crypto {
                op: "RSA-OAEP seed encryption",
                reason: e.to_string(),
            })
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = self.0.split_at_checked(n)?;
        self.0 = b;
        Some(a)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn tpm2b(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// TPM name of a public area with nameAlg SHA-256.
fn name_of(tpmt_public: &[u8]) -> Vec<u8> {
    let mut name = TPM_ALG_SHA256.to_be_bytes().to_vec();
    name.extend_from_slice(&Sha256::digest(tpmt_public));
    name
}

fn tpm2b(data: &[u8]) -> Vec<u8> {
    let mut v = (data.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(data);
    v
}

/// KDFa (TPM 2.0 Part 1, 11.4.10.2) with HMAC-SHA256.
pub(crate) fn kdfa_sha256(
    key: &[u8],
    label: &str,
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Zeroizing<Vec<u8>> {
    let bytes = bits.div_ceil(8) as usize;
    let mut out = Zeroizing::new(Vec::with_capacity(bytes + 32));
    let mut counter: u32 = 0;
    while out.len() < bytes {
        counter += 1;
        let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(key) else {
            break;
        };
        mac.update(&counter.to_be_bytes());
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(context_u);
        mac.update(context_v);
        mac.update(&bits.to_be_bytes());
        out.extend_from_slice(&mac.finalize().into_bytes());
    }
    out.truncate(bytes);
    out
}

fn aes128_cfb(key: &[u8], data: &mut [u8]) -> Result<()> {
    let enc = cfb_mode::Encryptor::<aes::Aes128>::new_from_slices(key, &[0u8; 16]).map_err(|e| Error::Crypto {
        op: "AES-128-CFB",
        reason: e.to_string(),
    })?;
    enc.encrypt(data);
    Ok(())
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>> {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).map_err(|e| Error::Crypto {
        op: "HMAC-SHA256",
        reason: e.to_string(),
    })?;
    for p in parts {
        mac.update(p);
    }
    Ok(mac.finalize().into_bytes().to_vec())
}

/// The outer wrapper shared by MakeCredential and Duplicate: seed to `parent`, then
/// TPM2B_DIGEST(HMAC(integrity key, enc || name)) || enc, where enc = AES-CFB(storage key, plain).
fn outer_wrap(parent: &RsaStorageKey, label: &str, name: &[u8], mut plain: Vec<u8>) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut seed = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(seed.as_mut());
    let encrypted_seed = parent.encrypt_seed(label, seed.as_ref())?;
    let sym = kdfa_sha256(seed.as_ref(), "STORAGE", name, &[], 128);
    aes128_cfb(&sym, &mut plain)?;
    let hmac_key = kdfa_sha256(seed.as_ref(), "INTEGRITY", &[], &[], 256);
    let integrity = hmac_sha256(&hmac_key, &[&plain, name])?;
    let mut wrapped = tpm2b(&integrity);
    wrapped.extend_from_slice(&plain);
    Ok((wrapped, encrypted_seed))
}

/// TPM2_MakeCredential in software: returns (TPM2B_ID_OBJECT contents, encrypted secret).
pub(crate) fn make_credential(ek: &RsaStorageKey, credential: &[u8], object_name: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    if credential.is_empty() || credential.len() > 32 {
        return Err(Error::invalid("credential", "1 to 32 bytes"));
    }
    outer_wrap(ek, "IDENTITY\0", object_name, tpm2b(credential))
}

/// The public area (`TPMT_PUBLIC`) of an HMAC-SHA256 key with the given obfuscation seed.
fn hmac_key_public(key: &[u8], seed_value: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&TPM_ALG_KEYEDHASH.to_be_bytes());
    p.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    p.extend_from_slice(&IDENTITY_KEY_ATTRIBUTES.to_be_bytes());
    p.extend_from_slice(&tpm2b(&[]));
    p.extend_from_slice(&TPM_ALG_HMAC.to_be_bytes());
    p.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    let unique = Sha256::new().chain_update(seed_value).chain_update(key).finalize();
    p.extend_from_slice(&tpm2b(&unique));
    p
}

/// A challenge for one device: the activation blob and the HMAC key inside it.
pub struct Activation {
    /// The activation blob (base64 it for `authenticationKey`).
    pub blob: Vec<u8>,
    /// The HMAC key the device will sign with.
    pub key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activation")
            .field("blob_len", &self.blob.len())
            .finish_non_exhaustive()
    }
}

/// Build the activation blob for a device with a random 32-byte HMAC key.
pub fn make_activation(ek_tpm2b_public: &[u8], srk_tpm2b_public: &[u8]) -> Result<Activation> {
    let mut key = Zeroizing::new(vec![0u8; 32]);
    OsRng.fill_bytes(&mut key);
    make_activation_with_key(ek_tpm2b_public, srk_tpm2b_public, &key)
}

/// Build the activation blob that imports `key` (1 to 64 bytes) as the device's HMAC key.
pub(crate) fn make_activation_with_key(
    ek_tpm2b_public: &[u8],
    srk_tpm2b_public: &[u8],
    key: &[u8],
) -> Result<Activation> {
    if key.is_empty() || key.len() > 64 {
        return Err(Error::invalid("key", "an HMAC key of 1 to 64 bytes"));
    }
    let ek = RsaStorageKey::parse("endorsement key", ek_tpm2b_public)?;
    let srk = RsaStorageKey::parse("storage root key", srk_tpm2b_public)?;

    let mut inner_key = Zeroizing::new([0u8; 16]);
    OsRng.fill_bytes(inner_key.as_mut());
    let mut seed_value = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(seed_value.as_mut());

    let public = hmac_key_public(key, seed_value.as_ref());
    let name = name_of(&public);

    // TPMT_SENSITIVE: type, authValue (empty), seedValue, sensitive (the key bits).
    let mut sensitive = Zeroizing::new(Vec::new());
    sensitive.extend_from_slice(&TPM_ALG_KEYEDHASH.to_be_bytes());
    sensitive.extend_from_slice(&tpm2b(&[]));
    sensitive.extend_from_slice(&tpm2b(seed_value.as_ref()));
    sensitive.extend_from_slice(&tpm2b(key));
    let sensitive2b = Zeroizing::new(tpm2b(&sensitive));

    // Inner wrapper: TPM2B_DIGEST(H(TPM2B_SENSITIVE || name)) || TPM2B_SENSITIVE, AES-128-CFB.
    let inner_integrity = Sha256::new().chain_update(&*sensitive2b).chain_update(&name).finalize();
    let mut inner = tpm2b(&inner_integrity);
    inner.extend_from_slice(&sensitive2b);
    aes128_cfb(inner_key.as_ref(), &mut inner)?;

    let (duplicate, import_secret) = outer_wrap(&srk, "DUPLICATE\0", &name, inner)?;
    let (credential_blob, credential_secret) = make_credential(&ek, inner_key.as_ref(), srk.name())?;

    let blob = ActivationBlob {
        credential_blob,
        credential_secret,
        duplicate,
        import_secret,
        public,
        encrypted_data: Vec::new(),
    };
    Ok(Activation {
        blob: blob.to_bytes(),
        key: Zeroizing::new(key.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdfa_counter_and_truncation() {
        // KDFa output for 128 bits is the first half of the first HMAC block.
        let k = kdfa_sha256(b"seed", "STORAGE", b"name", &[], 128);
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(b"seed").unwrap();
        mac.update(&[0, 0, 0, 1]);
        mac.update(b"STORAGE\0name");
        mac.update(&128u32.to_be_bytes());
        assert_eq!(&k[..], &mac.finalize().into_bytes()[..16]);
        assert_eq!(kdfa_sha256(b"s", "INTEGRITY", &[], &[], 512).len(), 64);
    }

    #[cfg(feature = "device")]
    #[test]
    fn identity_public_parses_as_hmac_key() {
        let p = hmac_key_public(&[7; 32], &[1; 32]);
        let blob = ActivationBlob {
            credential_blob: vec![1],
            credential_secret: vec![1],
            duplicate: vec![1],
            import_secret: vec![1],
            public: p,
            encrypted_data: vec![],
        };
        blob.identity_public().unwrap();
    }
}
