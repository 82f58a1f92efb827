//! Key templates: the EK (the SDK's and the TCG default), the SRK, HMAC and ECC P-256 keys.

use hsm_core::{Error, Result};
use serde::Deserialize;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::structures::{
    Digest, EccPoint, EccScheme, HashScheme, KeyDerivationFunctionScheme, Public, PublicBuilder,
    PublicEccParametersBuilder, PublicKeyRsa, PublicRsaParametersBuilder, RsaExponent, RsaScheme,
    SymmetricDefinitionObject,
};
use tss_esapi::traits::Marshall;

/// TPM2_PolicySecret(TPM_RH_ENDORSEMENT): the policy of the TCG EK templates.
pub(crate) const EK_POLICY: [u8; 32] = [
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7,
    0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
];

/// Which template a missing EK is created from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EkTemplate {
    /// The Azure IoT SDK's template: `unique` left empty (default).
    #[default]
    Sdk,
    /// The TCG default template (EK Credential Profile, template L-1): 256 zero bytes of `unique`.
    Tcg,
}

impl EkTemplate {
    /// Every template.
    pub const ALL: [EkTemplate; 2] = [EkTemplate::Sdk, EkTemplate::Tcg];

    /// The template's name as configuration spells it.
    pub fn name(self) -> &'static str {
        match self {
            EkTemplate::Sdk => "sdk",
            EkTemplate::Tcg => "tcg",
        }
    }
}

impl std::str::FromStr for EkTemplate {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sdk" => Ok(EkTemplate::Sdk),
            "tcg" => Ok(EkTemplate::Tcg),
            other => Err(Error::invalid(
                "ek_template",
                format!("`{other}`: expected \"sdk\" or \"tcg\""),
            )),
        }
    }
}

fn build(op: &'static str, r: tss_esapi::Result<Public>) -> Result<Public> {
    r.map_err(|e| Error::Internal(format!("{op} template: {e}")))
}

fn storage_parameters() -> tss_esapi::Result<tss_esapi::structures::PublicRsaParameters> {
    PublicRsaParametersBuilder::new()
        .with_symmetric(SymmetricDefinitionObject::AES_128_CFB)
        .with_scheme(RsaScheme::Null)
        .with_key_bits(RsaKeyBits::Rsa2048)
        .with_exponent(RsaExponent::default())
        .with_is_decryption_key(true)
        .with_restricted(true)
        .build()
}

/// The RSA-2048 EK template: the SDK's leaves `unique` empty, the TCG default has 256 zero bytes.
pub fn ek_template(which: EkTemplate) -> Result<Public> {
    build(
        "EK",
        (|| {
            let attributes = ObjectAttributesBuilder::new()
                .with_fixed_tpm(true)
                .with_fixed_parent(true)
                .with_sensitive_data_origin(true)
                .with_admin_with_policy(true)
                .with_restricted(true)
                .with_decrypt(true)
                .build()?;
            let unique = match which {
                EkTemplate::Sdk => PublicKeyRsa::default(),
                EkTemplate::Tcg => PublicKeyRsa::new_empty_with_size(RsaKeyBits::Rsa2048),
            };
            PublicBuilder::new()
                .with_public_algorithm(PublicAlgorithm::Rsa)
                .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
                .with_object_attributes(attributes)
                .with_auth_policy(Digest::try_from(EK_POLICY.as_slice())?)
                .with_rsa_parameters(storage_parameters()?)
                .with_rsa_unique_identifier(unique)
                .build()
        })(),
    )
}

/// The SDK's SRK template: RSA-2048 storage key, AES-128-CFB, empty auth, no DA.
pub(crate) fn srk_template() -> Result<Public> {
    build(
        "SRK",
        (|| {
            let attributes = ObjectAttributesBuilder::new()
                .with_fixed_tpm(true)
                .with_fixed_parent(true)
                .with_sensitive_data_origin(true)
                .with_user_with_auth(true)
                .with_no_da(true)
                .with_restricted(true)
                .with_decrypt(true)
                .build()?;
            PublicBuilder::new()
                .with_public_algorithm(PublicAlgorithm::Rsa)
                .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
                .with_object_attributes(attributes)
                .with_rsa_parameters(storage_parameters()?)
                .with_rsa_unique_identifier(PublicKeyRsa::default())
                .build()
        })(),
    )
}

/// An unrestricted ECDSA signing key, created in the TPM (never exported): P-256 with SHA-256
/// or P-384 with SHA-384.
pub(crate) fn ecc_signing_template(curve: hsm_core::Curve) -> Result<Public> {
    let (tpm_curve, hash) = match curve {
        hsm_core::Curve::P256 => (EccCurve::NistP256, HashingAlgorithm::Sha256),
        hsm_core::Curve::P384 => (EccCurve::NistP384, HashingAlgorithm::Sha384),
        other => return Err(Error::unsupported("the TPM backend", format!("curve {other:?}"))),
    };
    build(
        "ECC signing key",
        (|| {
            let attributes = ObjectAttributesBuilder::new()
                .with_fixed_tpm(true)
                .with_fixed_parent(true)
                .with_sensitive_data_origin(true)
                .with_user_with_auth(true)
                .with_no_da(true)
                .with_sign_encrypt(true)
                .build()?;
            PublicBuilder::new()
                .with_public_algorithm(PublicAlgorithm::Ecc)
                .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
                .with_object_attributes(attributes)
                .with_ecc_parameters(
                    PublicEccParametersBuilder::new()
                        .with_ecc_scheme(EccScheme::EcDsa(HashScheme::new(hash)))
                        .with_curve(tpm_curve)
                        .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
                        .with_is_signing_key(true)
                        .with_is_decryption_key(false)
                        .with_restricted(false)
                        .build()?,
                )
                .with_ecc_unique_identifier(EccPoint::default())
                .build()
        })(),
    )
}

/// Marshalled `TPM2B_PUBLIC` (2-byte big-endian size, then the `TPMT_PUBLIC`), as the SDK's
/// `get_ek` / `get_srk` return it.
pub(crate) fn tpm2b_public(public: &Public) -> Result<Vec<u8>> {
    let body = public
        .marshall()
        .map_err(|e| Error::Internal(format!("marshal TPMT_PUBLIC: {e}")))?;
    let size = u16::try_from(body.len()).map_err(|_| Error::Internal("TPMT_PUBLIC larger than 64 KiB".into()))?;
    let mut out = Vec::with_capacity(body.len() + 2);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Parse a marshalled `TPM2B_PUBLIC`; the size must cover the rest exactly.
pub(crate) fn parse_tpm2b_public(what: &str, bytes: &[u8]) -> Result<Public> {
    use tss_esapi::traits::UnMarshall;
    let (size, body) = bytes
        .split_first_chunk::<2>()
        .ok_or_else(|| Error::parse(what, "shorter than its 2-byte size"))?;
    if usize::from(u16::from_be_bytes(*size)) != body.len() {
        return Err(Error::parse(
            what,
            format!(
                "size field {} but {} bytes follow",
                u16::from_be_bytes(*size),
                body.len()
            ),
        ));
    }
    Public::unmarshall(body).map_err(|e| Error::parse(what, format!("not a TPMT_PUBLIC: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ek_templates_differ_only_in_unique() {
        let sdk = tpm2b_public(&ek_template(EkTemplate::Sdk).unwrap()).unwrap();
        let tcg = tpm2b_public(&ek_template(EkTemplate::Tcg).unwrap()).unwrap();
        // SDK: unique is a zero-length TPM2B; TCG: 256 zero bytes.
        assert_eq!(tcg.len(), sdk.len() + 256);
        assert_eq!(&sdk[2..sdk.len() - 2], &tcg[2..sdk.len() - 2]);
        assert_eq!(&sdk[sdk.len() - 2..], &[0, 0]);
        assert_eq!(&tcg[sdk.len() - 2..sdk.len()], &[1, 0]);
        // type RSA, nameAlg SHA-256, attributes 0x000300b2
        assert_eq!(&sdk[2..10], &[0x00, 0x01, 0x00, 0x0b, 0x00, 0x03, 0x00, 0xb2]);
        let back = parse_tpm2b_public("EK", &sdk).unwrap();
        assert_eq!(tpm2b_public(&back).unwrap(), sdk);
        assert!(parse_tpm2b_public("EK", &sdk[..sdk.len() - 1]).is_err());
    }

    #[test]
    fn srk_attributes() {
        let srk = tpm2b_public(&srk_template().unwrap()).unwrap();
        // fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|noDA|restricted|decrypt
        assert_eq!(&srk[6..10], &[0x00, 0x03, 0x04, 0x72]);
    }
}
