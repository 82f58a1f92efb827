//! Private keys on a token, as [`hsm_core::SigningKey`].
//!
//! The message is hashed in Rust and the token signs the digest: `CKM_ECDSA` (raw `r || s`,
//! converted to DER), `CKM_RSA_PKCS` over a DigestInfo, `CKM_RSA_PKCS_PSS` with MGF1 of the
//! same hash and a salt as long as the hash. These raw mechanisms are the ones most tokens have
//! (SoftHSM 2.6 lacks `CKM_ECDSA_SHA256`); a token without one gets the hashing mechanism
//! (`CKM_ECDSA_SHA256`, `CKM_SHA256_RSA_PKCS_PSS`, ...) instead. The schemes offered come from
//! the token's mechanism list.

use std::sync::{Arc, Mutex};

use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use hsm_core::{Error, KeyAlgorithm, Result, SignatureScheme, SigningKey};
use sha2::Digest;

use crate::error::device;
use crate::objects::find_one;
use crate::token::Token;
use crate::uri::{ObjectType, Pkcs11Uri};
use hsm_core::der;

/// A private key on a token.
pub struct Pkcs11Key {
    token: Arc<Token>,
    /// Object attributes of the key (`type=private`).
    uri: Pkcs11Uri,
    algorithm: KeyAlgorithm,
    spki: Vec<u8>,
    /// The schemes offered, each with the mechanism family used for it.
    schemes: Vec<(SignatureScheme, Flavor)>,
    handle: Mutex<Option<(u64, ObjectHandle)>>,
}

/// How a scheme is signed on the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// Hash in Rust, raw mechanism on the token (`CKM_ECDSA`, `CKM_RSA_PKCS`, `CKM_RSA_PKCS_PSS`).
    Raw,
    /// The token hashes too (`CKM_ECDSA_SHA256`, `CKM_SHA256_RSA_PKCS_PSS`, ...): for tokens
    /// that do not offer the raw mechanism.
    Hashed,
}

impl std::fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Key")
            .field("uri", &self.uri.to_token_string())
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn attr_bytes(attrs: &[Attribute], want: AttributeType) -> Option<Vec<u8>> {
    attrs.iter().find_map(|a| match (a, want) {
        (Attribute::EcParams(v), AttributeType::EcParams)
        | (Attribute::EcPoint(v), AttributeType::EcPoint)
        | (Attribute::Modulus(v), AttributeType::Modulus)
        | (Attribute::PublicExponent(v), AttributeType::PublicExponent)
        | (Attribute::Id(v), AttributeType::Id)
        | (Attribute::Label(v), AttributeType::Label)
        | (Attribute::Value(v), AttributeType::Value) => Some(v.clone()),
        _ => None,
    })
}

/// The URI's object attributes with `type=private` (an error if it names another type).
pub(crate) fn private_key_uri(uri: &Pkcs11Uri) -> Result<Pkcs11Uri> {
    let mut u = uri.clone();
    match u.object_type {
        None => u.object_type = Some(ObjectType::Private),
        Some(ObjectType::Private) => {}
        Some(other) => {
            return Err(Error::parse(
                "PKCS#11 URI attribute `type`",
                format!("a signing key must be `type=private`, not `{}`", other.as_str()),
            ));
        }
    }
    if u.object.is_none() && u.id.is_none() {
        return Err(Error::parse(
            "PKCS#11 URI",
            format!("name the key with `object` (label) and/or `id`{}", u.vendor_note()),
        ));
    }
    Ok(u)
}

impl Pkcs11Key {
    /// Open the private key `uri` names on `token`. The public key comes from the private key
    /// (RSA), the public-key object with the same id or label, or `spki_hint` (the
    /// certificate's key) when the token holds no public-key object.
    pub fn open(token: Arc<Token>, uri: &Pkcs11Uri, spki_hint: Option<&[u8]>) -> Result<Self> {
        let uri = private_key_uri(uri)?;
        let (handle, generation, algorithm, spki) = token.run("open private key", |session, generation| {
            let handle = find_one(session, &uri, &token)?;
            let (algorithm, spki) = public_key(session, handle, &uri, spki_hint)?;
            Ok((handle, generation, algorithm, spki))
        })?;
        if let KeyAlgorithm::Rsa { bits } = algorithm {
            if !(2048..=4096).contains(&bits) {
                return Err(Error::unsupported(
                    "the PKCS#11 backend",
                    format!("an RSA key of {bits} bits (2048 to 4096 are supported)"),
                ));
            }
        }
        let mut schemes: Vec<(SignatureScheme, Flavor)> = Vec::new();
        for s in algorithm.schemes() {
            if token.has_mechanism(mechanism_type(*s, Flavor::Raw))? {
                schemes.push((*s, Flavor::Raw));
            } else if token.has_mechanism(mechanism_type(*s, Flavor::Hashed))? {
                schemes.push((*s, Flavor::Hashed));
            }
        }
        if schemes.is_empty() {
            return Err(Error::unsupported(
                format!("token `{}`", token.uri().token_description()),
                format!(
                    "signing with a {algorithm:?} key (neither raw nor hashing ECDSA / RSA mechanisms are offered)"
                ),
            ));
        }
        Ok(Pkcs11Key {
            token,
            uri,
            algorithm,
            spki,
            schemes,
            handle: Mutex::new(Some((generation, handle))),
        })
    }

    /// Sign with the token's hashing mechanisms (`CKM_ECDSA_SHA256`, `CKM_SHA256_RSA_PKCS_PSS`,
    /// ...) wherever the token offers them, instead of hashing in Rust; returns how many
    /// schemes use them now. For tests of that path on tokens that have both.
    #[doc(hidden)]
    pub fn prefer_hashed_mechanisms(&mut self) -> Result<usize> {
        let mut n = 0;
        for (scheme, flavor) in &mut self.schemes {
            if self.token.has_mechanism(mechanism_type(*scheme, Flavor::Hashed))? {
                *flavor = Flavor::Hashed;
                n += 1;
            }
        }
        Ok(n)
    }

    /// The key's URI (object and token attributes, module, pin-source; never pin-value).
    pub fn uri(&self) -> Pkcs11Uri {
        let mut u = self.token.uri().clone();
        u.object = self.uri.object.clone();
        u.id = self.uri.id.clone();
        u.object_type = self.uri.object_type;
        u
    }

    /// The token the key is on.
    pub fn token(&self) -> &Arc<Token> {
        &self.token
    }

    fn handle(&self, session: &Session, generation: u64) -> Result<ObjectHandle> {
        if let Ok(cached) = self.handle.lock() {
            if let Some((g, h)) = *cached {
                if g == generation {
                    return Ok(h);
                }
            }
        }
        let h = find_one(session, &self.uri, &self.token)?;
        // The key must still be the same key (a re-created token may hold another one).
        let (_, spki) = public_key(session, h, &self.uri, Some(&self.spki))?;
        if spki != self.spki {
            return Err(Error::Device {
                origin: hsm_core::Origin::Pkcs11,
                op: "find private key".into(),
                rv: cryptoki_sys::CKR_KEY_CHANGED,
                message: format!(
                    "the key `{}` on the token is not the key this identity was opened with (was the token \
                     re-created?); open the key again to use the new one",
                    self.uri.object_description()
                ),
            });
        }
        if let Ok(mut cached) = self.handle.lock() {
            *cached = Some((generation, h));
        }
        Ok(h)
    }
}

/// Algorithm and SubjectPublicKeyInfo of a private key.
fn public_key(
    session: &Session,
    handle: ObjectHandle,
    uri: &Pkcs11Uri,
    spki_hint: Option<&[u8]>,
) -> Result<(KeyAlgorithm, Vec<u8>)> {
    let attrs = session
        .get_attributes(
            handle,
            &[
                AttributeType::KeyType,
                AttributeType::EcParams,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
                AttributeType::Id,
                AttributeType::Label,
            ],
        )
        .map_err(|e| device("C_GetAttributeValue (private key)", e))?;
    let key_type = attrs.iter().find_map(|a| match a {
        Attribute::KeyType(k) => Some(*k),
        _ => None,
    });
    match key_type {
        Some(KeyType::RSA) => {
            let n = attr_bytes(&attrs, AttributeType::Modulus)
                .ok_or_else(|| Error::parse("RSA private key", "no CKA_MODULUS"))?;
            let e = attr_bytes(&attrs, AttributeType::PublicExponent)
                .ok_or_else(|| Error::parse("RSA private key", "no CKA_PUBLIC_EXPONENT"))?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            let bits = u32::try_from(bits).map_err(|e| Error::parse("RSA modulus", e))?;
            Ok((KeyAlgorithm::Rsa { bits }, der::rsa_spki(&n, &e)))
        }
        Some(KeyType::EC) => {
            let params = attr_bytes(&attrs, AttributeType::EcParams)
                .ok_or_else(|| Error::parse("EC private key", "no CKA_EC_PARAMS"))?;
            let curve = der::curve_from_params("CKA_EC_PARAMS", &params)?;
            let algorithm = KeyAlgorithm::Ec(curve);
            // The public point lives on the public-key object with the same id (or label).
            let mut search = vec![
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::KeyType(KeyType::EC),
            ];
            if let Some(id) = attr_bytes(&attrs, AttributeType::Id).filter(|i| !i.is_empty()) {
                search.push(Attribute::Id(id));
            } else if let Some(label) = attr_bytes(&attrs, AttributeType::Label).filter(|l| !l.is_empty()) {
                search.push(Attribute::Label(label));
            } else {
                search.clear();
            }
            if !search.is_empty() {
                let found = session
                    .find_objects(&search)
                    .map_err(|e| device("C_FindObjects (public key)", e))?;
                if let Some(pubkey) = found.first() {
                    let pattrs = session
                        .get_attributes(*pubkey, &[AttributeType::EcPoint])
                        .map_err(|e| device("C_GetAttributeValue (public key)", e))?;
                    if let Some(point) = attr_bytes(&pattrs, AttributeType::EcPoint) {
                        let point = ec_point_from_attribute(curve, &point)?;
                        return Ok((algorithm, der::ec_spki(curve, &point)?));
                    }
                }
            }
            match spki_hint {
                Some(spki) => {
                    let hinted = hsm_core::pem::key_algorithm_from_spki(spki)?;
                    if hinted != algorithm {
                        return Err(Error::parse(
                            "certificate",
                            format!("its key is {hinted:?} but the token key is {algorithm:?}"),
                        ));
                    }
                    Ok((algorithm, spki.to_vec()))
                }
                None => Err(Error::invalid(
                    "PKCS#11 URI",
                    format!(
                        "no public key object with the same id or label as `{}`: import the public key or give the certificate",
                        uri.object_description()
                    ),
                )),
            }
        }
        _ => Err(Error::unsupported(
            "the PKCS#11 backend",
            format!(
                "the key type of `{}` (EC and RSA keys are supported)",
                uri.object_description()
            ),
        )),
    }
}

fn mechanism_type(s: SignatureScheme, flavor: Flavor) -> MechanismType {
    use SignatureScheme::*;
    match (flavor, s) {
        (Flavor::Raw, EcdsaP256Sha256 | EcdsaP384Sha384) => MechanismType::ECDSA,
        (Flavor::Raw, RsaPssSha256 | RsaPssSha384 | RsaPssSha512) => MechanismType::RSA_PKCS_PSS,
        (Flavor::Raw, _) => MechanismType::RSA_PKCS,
        (Flavor::Hashed, EcdsaP256Sha256) => MechanismType::ECDSA_SHA256,
        (Flavor::Hashed, EcdsaP384Sha384) => MechanismType::ECDSA_SHA384,
        (Flavor::Hashed, RsaPssSha256) => MechanismType::SHA256_RSA_PKCS_PSS,
        (Flavor::Hashed, RsaPssSha384) => MechanismType::SHA384_RSA_PKCS_PSS,
        (Flavor::Hashed, RsaPssSha512) => MechanismType::SHA512_RSA_PKCS_PSS,
        (Flavor::Hashed, RsaPkcs1Sha256) => MechanismType::SHA256_RSA_PKCS,
        (Flavor::Hashed, RsaPkcs1Sha384) => MechanismType::SHA384_RSA_PKCS,
        (Flavor::Hashed, _) => MechanismType::SHA512_RSA_PKCS,
    }
}

fn pss_params(hash: MechanismType, mgf: PkcsMgfType, len: u64) -> PkcsPssParams {
    PkcsPssParams {
        hash_alg: hash,
        mgf,
        s_len: len.into(),
    }
}

/// The mechanism for `scheme` when the token hashes: the whole message goes in.
fn prepare_hashed(scheme: SignatureScheme) -> Result<Mechanism<'static>> {
    use SignatureScheme::*;
    Ok(match scheme {
        EcdsaP256Sha256 => Mechanism::EcdsaSha256,
        EcdsaP384Sha384 => Mechanism::EcdsaSha384,
        RsaPssSha256 => Mechanism::Sha256RsaPkcsPss(pss_params(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32)),
        RsaPssSha384 => Mechanism::Sha384RsaPkcsPss(pss_params(MechanismType::SHA384, PkcsMgfType::MGF1_SHA384, 48)),
        RsaPssSha512 => Mechanism::Sha512RsaPkcsPss(pss_params(MechanismType::SHA512, PkcsMgfType::MGF1_SHA512, 64)),
        RsaPkcs1Sha256 => Mechanism::Sha256RsaPkcs,
        RsaPkcs1Sha384 => Mechanism::Sha384RsaPkcs,
        RsaPkcs1Sha512 => Mechanism::Sha512RsaPkcs,
        other => return Err(Error::unsupported("the PKCS#11 backend", format!("scheme {other}"))),
    })
}

/// What goes to the token for `scheme`: the mechanism and the (prefixed) digest.
fn prepare(scheme: SignatureScheme, message: &[u8]) -> Result<(Mechanism<'static>, Vec<u8>)> {
    use SignatureScheme::*;
    fn pss(hash: MechanismType, mgf: PkcsMgfType, len: u64) -> Mechanism<'static> {
        Mechanism::RsaPkcsPss(pss_params(hash, mgf, len))
    }
    fn pkcs1(prefix: &[u8], digest: &[u8]) -> Vec<u8> {
        [prefix, digest].concat()
    }
    Ok(match scheme {
        EcdsaP256Sha256 => (Mechanism::Ecdsa, sha2::Sha256::digest(message).to_vec()),
        EcdsaP384Sha384 => (Mechanism::Ecdsa, sha2::Sha384::digest(message).to_vec()),
        RsaPssSha256 => (
            pss(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32),
            sha2::Sha256::digest(message).to_vec(),
        ),
        RsaPssSha384 => (
            pss(MechanismType::SHA384, PkcsMgfType::MGF1_SHA384, 48),
            sha2::Sha384::digest(message).to_vec(),
        ),
        RsaPssSha512 => (
            pss(MechanismType::SHA512, PkcsMgfType::MGF1_SHA512, 64),
            sha2::Sha512::digest(message).to_vec(),
        ),
        RsaPkcs1Sha256 => (
            Mechanism::RsaPkcs,
            pkcs1(der::SHA256_DIGEST_INFO, &sha2::Sha256::digest(message)),
        ),
        RsaPkcs1Sha384 => (
            Mechanism::RsaPkcs,
            pkcs1(der::SHA384_DIGEST_INFO, &sha2::Sha384::digest(message)),
        ),
        RsaPkcs1Sha512 => (
            Mechanism::RsaPkcs,
            pkcs1(der::SHA512_DIGEST_INFO, &sha2::Sha512::digest(message)),
        ),
        other => return Err(Error::unsupported("the PKCS#11 backend", format!("scheme {other}"))),
    })
}

impl SigningKey for Pkcs11Key {
    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn public_key_spki(&self) -> Result<Vec<u8>> {
        Ok(self.spki.clone())
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.iter().map(|(s, _)| *s).collect()
    }

    fn sign(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>> {
        let Some((_, flavor)) = self.schemes.iter().find(|(s, _)| *s == scheme) else {
            return Err(Error::unsupported(
                format!("PKCS#11 key `{}` ({:?})", self.uri.object_description(), self.algorithm),
                format!("signature scheme {scheme}"),
            ));
        };
        let (mechanism, data) = match flavor {
            Flavor::Raw => prepare(scheme, message)?,
            Flavor::Hashed => (prepare_hashed(scheme)?, message.to_vec()),
        };
        let raw = self.token.run("sign", |session, generation| {
            let handle = self.handle(session, generation)?;
            session
                .sign(&mechanism, handle, &data)
                .map_err(|e| device(format!("C_Sign ({scheme})"), e))
        })?;
        match self.algorithm {
            KeyAlgorithm::Ec(curve) => der::ecdsa_raw_to_der("CKM_ECDSA signature", curve, &raw),
            _ => Ok(raw),
        }
    }
}

/// The uncompressed point from `CKA_EC_POINT`: DER OCTET STRING wrapped (as the standard says
/// and SoftHSM does) or raw (as some tokens do).
fn ec_point_from_attribute(curve: hsm_core::Curve, v: &[u8]) -> Result<Vec<u8>> {
    let point_len = 1 + 2 * der::curve_len(curve);
    if v.len() == point_len && v[0] == 0x04 {
        return Ok(v.to_vec());
    }
    if v.len() == point_len + 2 && v[0] == 0x04 && usize::from(v[1]) == point_len && v[2] == 0x04 {
        return Ok(v[2..].to_vec());
    }
    Err(Error::parse(
        "CKA_EC_POINT",
        format!(
            "{} bytes; expected an uncompressed {curve:?} point ({point_len} bytes), optionally in an OCTET STRING",
            v.len()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_core::Curve;

    #[test]
    fn ec_points_raw_or_in_an_octet_string() {
        let mut p = vec![4u8; 65];
        p[1] = 63;
        assert_eq!(ec_point_from_attribute(Curve::P256, &p).unwrap(), p);
        let mut wrapped = vec![0x04, 65];
        wrapped.extend_from_slice(&p);
        assert_eq!(ec_point_from_attribute(Curve::P256, &wrapped).unwrap(), p);
        let e = ec_point_from_attribute(Curve::P384, &wrapped).unwrap_err().to_string();
        assert!(e.contains("CKA_EC_POINT") && e.contains("97 bytes"), "{e}");
    }
}
