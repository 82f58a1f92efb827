//! An issued chain checked against the key it was issued for: the leaf's key and common name,
//! its validity now, and every link (issuer name, signature verified with ring).

use hsm_core::x509::{self, Certificate, oid};
use hsm_core::{Curve, Error, KeyAlgorithm, Result, SigningKey};
use ring::signature::{self, VerificationAlgorithm};
use rustls_pki_types::CertificateDer;

const WHAT: &str = "issued certificate chain";

/// The ring algorithm for a certificate signature algorithm and the issuer's key.
fn algorithm(sig: &der::asn1::ObjectIdentifier, key: KeyAlgorithm) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match (*sig, key) {
        (oid::ECDSA_SHA256, KeyAlgorithm::Ec(Curve::P256)) => &signature::ECDSA_P256_SHA256_ASN1,
        (oid::ECDSA_SHA384, KeyAlgorithm::Ec(Curve::P256)) => &signature::ECDSA_P256_SHA384_ASN1,
        (oid::ECDSA_SHA256, KeyAlgorithm::Ec(Curve::P384)) => &signature::ECDSA_P384_SHA256_ASN1,
        (oid::ECDSA_SHA384, KeyAlgorithm::Ec(Curve::P384)) => &signature::ECDSA_P384_SHA384_ASN1,
        (oid::RSA_SHA256, KeyAlgorithm::Rsa { .. }) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (oid::RSA_SHA384, KeyAlgorithm::Rsa { .. }) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (oid::RSA_SHA512, KeyAlgorithm::Rsa { .. }) => &signature::RSA_PKCS1_2048_8192_SHA512,
        _ => return None,
    })
}

/// Whether `child` (DER) is signed by the key of `issuer`.
fn verify_signature(child: &[u8], issuer: &Certificate) -> std::result::Result<(), String> {
    let (tbs, alg, sig) = x509::signed_parts("certificate", child).map_err(|e| e.to_string())?;
    let spki = x509::spki_der(issuer).map_err(|e| e.to_string())?;
    let key = hsm_core::pem::key_algorithm_from_spki(&spki).map_err(|e| e.to_string())?;
    let verifier = algorithm(&alg.oid, key)
        .ok_or_else(|| format!("signature algorithm {} with a {key:?} key is not supported", alg.oid))?;
    let bits = hsm_core::der::spki_public_key_bits(&spki).map_err(|e| e.to_string())?;
    signature::UnparsedPublicKey::new(verifier, bits)
        .verify(tbs, &sig)
        .map_err(|_| "the signature does not verify".to_string())
}

/// A chain checked against the key it was issued for.
pub(crate) fn verify_chain(chain: &[CertificateDer<'_>], key: &dyn SigningKey, registration_id: &str) -> Result<()> {
    let leaf = chain.first().ok_or_else(|| Error::parse(WHAT, "the chain is empty"))?;
    if hsm_core::pem::public_key_spki(leaf)? != key.public_key_spki()? {
        return Err(Error::parse(
            WHAT,
            "the leaf certificate is for another key than the one the request was made with",
        ));
    }
    let cn = hsm_core::pem::common_name(leaf)?;
    if cn != registration_id {
        return Err(Error::parse(
            WHAT,
            format!("the leaf's common name is `{cn}`, not the registration id `{registration_id}`"),
        ));
    }
    let parsed = chain
        .iter()
        .enumerate()
        .map(|(i, c)| x509::parse(&format!("issued certificate {}", i + 1), c))
        .collect::<Result<Vec<_>>>()?;
    let validity = &parsed[0].tbs_certificate.validity;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    if now < x509::unix_time(&validity.not_before) || now > x509::unix_time(&validity.not_after) {
        return Err(Error::parse(
            WHAT,
            format!(
                "the leaf is not valid now (valid from {} to {})",
                validity.not_before.to_date_time(),
                validity.not_after.to_date_time()
            ),
        ));
    }
    for (i, pair) in parsed.windows(2).enumerate() {
        let (child, issuer) = (&pair[0], &pair[1]);
        if child.tbs_certificate.issuer != issuer.tbs_certificate.subject {
            return Err(Error::parse(
                WHAT,
                format!(
                    "certificate {} was issued by `{}`, but certificate {} is `{}`",
                    i + 1,
                    x509::name_to_string(&child.tbs_certificate.issuer),
                    i + 2,
                    x509::name_to_string(&issuer.tbs_certificate.subject)
                ),
            ));
        }
        verify_signature(&chain[i], issuer).map_err(|e| {
            Error::parse(
                WHAT,
                format!("certificate {} is not signed by certificate {}: {e}", i + 1, i + 2),
            )
        })?;
    }
    Ok(())
}
