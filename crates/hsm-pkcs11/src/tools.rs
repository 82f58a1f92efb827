//! Token tools, all addressed by URI: generate a key pair, make a CSR signed on the token,
//! import a certificate, list objects, import or generate an HMAC secret.
//!
//! URIs given to the tools may carry `pin-value` (a command line is not an alias-key token);
//! the URIs they return never do.

use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, CertificateType, KeyType, ObjectClass};
use cryptoki::session::Session;
use hsm_core::{Curve, Error, KeyAlgorithm, Result, pem};
use sha2::Digest;

use crate::error::device;
use crate::key::Pkcs11Key;
use crate::objects::template;
use crate::token::Token;
use crate::uri::{ObjectType, Pkcs11Uri};
use hsm_core::der;

fn object_uri(token: &Token, label: Option<&[u8]>, id: Option<&[u8]>, ty: ObjectType) -> Pkcs11Uri {
    let mut u = token.uri().clone();
    u.object = label.map(|l| String::from_utf8_lossy(l).into_owned());
    u.id = id.filter(|i| !i.is_empty()).map(<[u8]>::to_vec);
    u.object_type = Some(ty);
    u
}

fn exists(session: &Session, class: ObjectClass, uri: &Pkcs11Uri) -> Result<bool> {
    let mut probe = uri.clone();
    probe.object_type = None;
    let mut t = template(&probe);
    t.push(Attribute::Class(class));
    Ok(!session
        .find_objects(&t)
        .map_err(|e| device("C_FindObjects", e))?
        .is_empty())
}

fn new_id(session: &Session, label: &str) -> Vec<u8> {
    match session.generate_random_vec(8) {
        Ok(v) => v,
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            let mut h = sha2::Sha256::new();
            h.update(label.as_bytes());
            h.update(nanos.to_le_bytes());
            h.update(std::process::id().to_le_bytes());
            h.finalize()[..8].to_vec()
        }
    }
}

/// Refuse, before asking the token and naming it, what it cannot do: `mechanism` missing from
/// its mechanism list or, for an RSA key pair, `bits` outside the key sizes it reports (tokens
/// answer a plain `CKR_ATTRIBUTE_VALUE_INVALID` or `CKR_MECHANISM_INVALID` otherwise).
fn require_mechanism(token: &Token, mechanism: MechanismType, what: &str, rsa_bits: Option<u32>) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::unsupported(
            format!("token `{}`", token.uri().token_description()),
            format!("{what} ({why})"),
        ))
    };
    // Find the token first, re-initializing the module if it must (a token created after
    // the module was initialized), as every other operation does.
    token.run("find token", |_, _| Ok(()))?;
    if !token.has_mechanism(mechanism)? {
        return refuse(format!("the token does not offer {mechanism}"));
    }
    if let Some(bits) = rsa_bits {
        let info = token.mechanism_info(mechanism)?;
        let (min, max) = (info.min_key_size(), info.max_key_size());
        let bits = bits as usize;
        if max > 0 && !(min..=max).contains(&bits) {
            return refuse(format!("its {mechanism} makes keys of {min} to {max} bits"));
        }
    }
    Ok(())
}

fn require_label(uri: &Pkcs11Uri, what: &str) -> Result<String> {
    uri.object.clone().ok_or_else(|| {
        Error::parse(
            "PKCS#11 URI attribute `object`",
            format!("{what} needs a label (`object=`)"),
        )
    })
}

/// Generate a key pair on the token (EC P-256 / P-384, RSA 2048-4096). The URI names the
/// token and the label (`object`); `id` is optional (random if absent). Returns the private
/// key's URI.
pub fn generate_key_pair(uri: &str, algorithm: KeyAlgorithm) -> Result<Pkcs11Uri> {
    let uri = Pkcs11Uri::parse(uri)?;
    let label = require_label(&uri, "a new key pair")?;
    let (mechanism, mut public, mut private) = match algorithm {
        KeyAlgorithm::Ec(curve @ (Curve::P256 | Curve::P384)) => (
            Mechanism::EccKeyPairGen,
            vec![Attribute::EcParams(der::curve_params(curve).to_vec())],
            vec![],
        ),
        KeyAlgorithm::Rsa { bits } if (2048..=4096).contains(&bits) && bits % 8 == 0 => (
            Mechanism::RsaPkcsKeyPairGen,
            vec![
                Attribute::ModulusBits(u64::from(bits).into()),
                Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
            ],
            vec![],
        ),
        other => {
            return Err(Error::invalid(
                "key algorithm",
                format!("{other:?}: EC P-256, P-384 or RSA 2048 to 4096 bits are supported"),
            ));
        }
    };
    let token = Token::open(&uri, None)?;
    let rsa_bits = match algorithm {
        KeyAlgorithm::Rsa { bits } => Some(bits),
        _ => None,
    };
    require_mechanism(
        &token,
        mechanism.mechanism_type(),
        &match algorithm {
            KeyAlgorithm::Rsa { bits } => format!("generating a {bits}-bit RSA key pair"),
            other => format!("generating a {other:?} key pair"),
        },
        rsa_bits,
    )?;
    let (label, id) = token.run_rw(|session| {
        if exists(session, ObjectClass::PRIVATE_KEY, &uri)? {
            return Err(Error::invalid(
                "PKCS#11 URI",
                format!(
                    "a private key `{}` already exists on the token",
                    uri.object_description()
                ),
            ));
        }
        let id = uri.id.clone().unwrap_or_else(|| new_id(session, &label));
        let common = [
            Attribute::Token(true),
            Attribute::Id(id.clone()),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        public.extend(common.iter().cloned());
        public.extend([Attribute::Verify(true), Attribute::Private(false)]);
        private.extend(common.iter().cloned());
        private.extend([
            Attribute::Sign(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
        ]);
        session
            .generate_key_pair(&mechanism, &public, &private)
            .map_err(|e| device(format!("C_GenerateKeyPair ({algorithm:?})"), e))?;
        Ok((label.clone(), id))
    })?;
    Ok(object_uri(
        &token,
        Some(label.as_bytes()),
        Some(&id),
        ObjectType::Private,
    ))
}

/// A PKCS#10 CSR (PEM) with subject `CN=common_name`, signed by the token key `uri` names
/// (ECDSA with SHA-256/384 for P-256/P-384, RSA PKCS#1 v1.5 SHA-256 for RSA).
pub fn make_csr(uri: &str, common_name: &str) -> Result<String> {
    let uri = Pkcs11Uri::parse(uri)?;
    let token = Token::open(&uri, None)?;
    let key = Pkcs11Key::open(token, &uri, None)?;
    hsm_core::csr::request_pem(&key, common_name)
}

/// Import one certificate (PEM or DER) as a CKO_CERTIFICATE object with the URI's label and
/// id. Without `id`, the id of the private key with the same label is used. Returns its URI.
pub fn import_certificate(uri: &str, data: &[u8]) -> Result<Pkcs11Uri> {
    let uri = Pkcs11Uri::parse(uri)?;
    let label = require_label(&uri, "an imported certificate")?;
    let der = if data.trim_ascii_start().starts_with(b"-----BEGIN") {
        let mut chain = pem::parse_certificates("certificate", data)?;
        if chain.len() != 1 {
            return Err(Error::parse(
                "certificate",
                format!(
                    "{} certificates given; import the leaf only (give the chain as certificate_file)",
                    chain.len()
                ),
            ));
        }
        chain.remove(0).as_ref().to_vec()
    } else {
        data.to_vec()
    };
    let cert = hsm_core::x509::parse("certificate (DER)", &der)?;
    fn encode(v: &impl ::der::Encode) -> Result<Vec<u8>> {
        v.to_der()
            .map_err(|e| Error::Internal(format!("a parsed certificate part does not encode: {e}")))
    }
    let subject = encode(&cert.tbs_certificate.subject)?;
    let issuer = encode(&cert.tbs_certificate.issuer)?;
    let serial = encode(&cert.tbs_certificate.serial_number)?;
    let token = Token::open(&uri, None)?;
    let id = token.run_rw(|session| {
        let cert_uri = Pkcs11Uri {
            object_type: Some(ObjectType::Cert),
            ..uri.clone()
        };
        if exists(session, ObjectClass::CERTIFICATE, &cert_uri)? {
            return Err(Error::invalid(
                "PKCS#11 URI",
                format!(
                    "a certificate `{}` already exists on the token",
                    cert_uri.object_description()
                ),
            ));
        }
        let id = match &uri.id {
            Some(id) => id.clone(),
            None => {
                let keys = session
                    .find_objects(&[
                        Attribute::Class(ObjectClass::PRIVATE_KEY),
                        Attribute::Label(label.as_bytes().to_vec()),
                    ])
                    .map_err(|e| device("C_FindObjects", e))?;
                match keys.first() {
                    Some(k) => session
                        .get_attributes(*k, &[AttributeType::Id])
                        .map_err(|e| device("C_GetAttributeValue", e))?
                        .into_iter()
                        .find_map(|a| match a {
                            Attribute::Id(id) => Some(id),
                            _ => None,
                        })
                        .unwrap_or_default(),
                    None => Vec::new(),
                }
            }
        };
        session
            .create_object(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::CertificateType(CertificateType::X_509),
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.clone()),
                Attribute::Subject(subject.clone()),
                Attribute::Issuer(issuer.clone()),
                Attribute::SerialNumber(serial.clone()),
                Attribute::Value(der.clone()),
            ])
            .map_err(|e| device("C_CreateObject (certificate)", e))?;
        Ok(id)
    })?;
    Ok(object_uri(&token, Some(label.as_bytes()), Some(&id), ObjectType::Cert))
}

fn secret_template(label: &str, id: &[u8]) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Verify(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
    ]
}

/// Import an HMAC key (CKK_GENERIC_SECRET, sensitive, not extractable). Returns its URI.
pub fn import_secret(uri: &str, key: &[u8]) -> Result<Pkcs11Uri> {
    if key.is_empty() {
        return Err(Error::invalid("secret", "empty key"));
    }
    store_secret(uri, Some(key), 0)
}

/// Generate an HMAC key of `len` bytes on the token (CKM_GENERIC_SECRET_KEY_GEN).
pub fn generate_secret(uri: &str, len: usize) -> Result<Pkcs11Uri> {
    if !(16..=128).contains(&len) {
        return Err(Error::invalid(
            "secret length",
            format!("{len} bytes; 16 to 128 are supported"),
        ));
    }
    store_secret(uri, None, len)
}

fn store_secret(uri: &str, key: Option<&[u8]>, len: usize) -> Result<Pkcs11Uri> {
    let uri = Pkcs11Uri::parse(uri)?;
    let label = require_label(&uri, "a secret key")?;
    let token = Token::open(&uri, None)?;
    if key.is_none() {
        require_mechanism(
            &token,
            MechanismType::GENERIC_SECRET_KEY_GEN,
            "generating an HMAC key",
            None,
        )?;
    }
    let id = token.run_rw(|session| {
        if exists(session, ObjectClass::SECRET_KEY, &uri)? {
            return Err(Error::invalid(
                "PKCS#11 URI",
                format!(
                    "a secret key `{}` already exists on the token",
                    uri.object_description()
                ),
            ));
        }
        let id = uri.id.clone().unwrap_or_else(|| new_id(session, &label));
        let mut t = secret_template(&label, &id);
        match key {
            Some(k) => {
                t.push(Attribute::Value(k.to_vec()));
                let created = session.create_object(&t);
                for a in &mut t {
                    if let Attribute::Value(v) = a {
                        zeroize::Zeroize::zeroize(v);
                    }
                }
                created.map_err(|e| device("C_CreateObject (secret key)", e))?;
            }
            None => {
                t.retain(|a| !matches!(a, Attribute::Class(_) | Attribute::KeyType(_)));
                t.push(Attribute::ValueLen((len as u64).into()));
                session
                    .generate_key(&Mechanism::GenericSecretKeyGen, &t)
                    .map_err(|e| device("C_GenerateKey (generic secret)", e))?;
            }
        }
        Ok(id)
    })?;
    Ok(object_uri(
        &token,
        Some(label.as_bytes()),
        Some(&id),
        ObjectType::SecretKey,
    ))
}

/// Destroy every object `uri` matches (it must name one by label or id, so a bare token URI
/// never empties a token); returns how many were destroyed, 0 when none matched.
pub fn destroy_objects(uri: &str) -> Result<usize> {
    let uri = Pkcs11Uri::parse(uri)?;
    if uri.object.is_none() && uri.id.is_none() {
        return Err(Error::parse(
            "PKCS#11 URI",
            "destroying objects needs a label (`object=`) or an `id=`",
        ));
    }
    let token = Token::open(&uri, None)?;
    token.run_rw(|session| {
        let found = session
            .find_objects(&template(&uri))
            .map_err(|e| device("C_FindObjects", e))?;
        for h in &found {
            session
                .destroy_object(*h)
                .map_err(|e| device(format!("C_DestroyObject ({})", uri.object_description()), e))?;
        }
        Ok(found.len())
    })
}

/// The URIs of the objects matching `uri` (all objects of the token when it names none).
pub fn list_objects(uri: &str) -> Result<Vec<String>> {
    let uri = Pkcs11Uri::parse(uri)?;
    let token = Token::open(&uri, None)?;
    token.run("list objects", |session, _| {
        let slot = session
            .get_session_info()
            .map_err(|e| device("C_GetSessionInfo", e))?
            .slot_id();
        let info = token
            .module()
            .context()
            .get_token_info(slot)
            .map_err(|e| device("C_GetTokenInfo", e))?;
        let mut base = token.uri().clone();
        base.token = Some(info.label().trim_end().to_string());
        base.manufacturer = Some(info.manufacturer_id().trim_end().to_string());
        base.serial = Some(info.serial_number().trim_end().to_string());
        base.model = Some(info.model().trim_end().to_string());
        base.slot_id = None;
        let found = session
            .find_objects(&template(&uri))
            .map_err(|e| device("C_FindObjects", e))?;
        let mut out = Vec::new();
        for h in found {
            let attrs = session
                .get_attributes(h, &[AttributeType::Class, AttributeType::Label, AttributeType::Id])
                .map_err(|e| device("C_GetAttributeValue", e))?;
            let mut u = base.clone();
            for a in attrs {
                match a {
                    Attribute::Class(c) => {
                        u.object_type = match c {
                            ObjectClass::PRIVATE_KEY => Some(ObjectType::Private),
                            ObjectClass::PUBLIC_KEY => Some(ObjectType::Public),
                            ObjectClass::CERTIFICATE => Some(ObjectType::Cert),
                            ObjectClass::SECRET_KEY => Some(ObjectType::SecretKey),
                            ObjectClass::DATA => Some(ObjectType::Data),
                            _ => None,
                        }
                    }
                    Attribute::Label(l) if !l.is_empty() => u.object = Some(String::from_utf8_lossy(&l).into_owned()),
                    Attribute::Id(id) if !id.is_empty() => u.id = Some(id),
                    _ => {}
                }
            }
            out.push(u.to_token_string());
        }
        out.sort();
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn destroying_needs_a_label_or_an_id() {
        // Refused before any module is loaded: a bare token URI never empties a token.
        let e = super::destroy_objects("pkcs11:token=device?module-path=/nonexistent/module.so")
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs a label"), "{e}");
    }
}
