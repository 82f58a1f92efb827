use crate::{Error, Result};

/// Elliptic curves a key may be on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Curve {
    /// NIST P-256 (secp256r1).
    P256,
    /// NIST P-384 (secp384r1): the only curve DPS issues certificates to.
    P384,
}

/// What kind of key a [`crate::SigningKey`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// ECDSA on this curve.
    Ec(Curve),
    /// RSA with a modulus of `bits` bits.
    Rsa {
        /// The modulus size (2048 to 4096 for the file backend).
        bits: u32,
    },
}

impl KeyAlgorithm {
    /// The schemes a key of this algorithm can sign with.
    pub fn schemes(self) -> &'static [SignatureScheme] {
        use SignatureScheme::*;
        match self {
            KeyAlgorithm::Ec(Curve::P256) => &[EcdsaP256Sha256],
            KeyAlgorithm::Ec(Curve::P384) => &[EcdsaP384Sha384],
            KeyAlgorithm::Rsa { .. } => &[
                RsaPssSha256,
                RsaPssSha384,
                RsaPssSha512,
                RsaPkcs1Sha256,
                RsaPkcs1Sha384,
                RsaPkcs1Sha512,
            ],
        }
    }
}

/// A signature scheme: the whole message goes in, the key's hashing and padding are implied.
///
/// ECDSA signatures are DER-encoded `Ecdsa-Sig-Value` (as TLS and X.509 want them); RSA-PSS
/// uses MGF1 with the same hash and a salt as long as the hash. The numeric values are the
/// TLS `SignatureScheme` code points and are part of the C ABI: never renumbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u32)]
pub enum SignatureScheme {
    /// `rsa_pkcs1_sha256`: RSASSA-PKCS1-v1_5 with SHA-256.
    RsaPkcs1Sha256 = 0x0401,
    /// `rsa_pkcs1_sha384`.
    RsaPkcs1Sha384 = 0x0501,
    /// `rsa_pkcs1_sha512`.
    RsaPkcs1Sha512 = 0x0601,
    /// `ecdsa_secp256r1_sha256`.
    EcdsaP256Sha256 = 0x0403,
    /// `ecdsa_secp384r1_sha384`.
    EcdsaP384Sha384 = 0x0503,
    /// `rsa_pss_rsae_sha256`: RSASSA-PSS with SHA-256, MGF1-SHA-256, a 32-byte salt.
    RsaPssSha256 = 0x0804,
    /// `rsa_pss_rsae_sha384`.
    RsaPssSha384 = 0x0805,
    /// `rsa_pss_rsae_sha512`.
    RsaPssSha512 = 0x0806,
}

impl SignatureScheme {
    /// Every scheme this crate knows.
    pub const ALL: [SignatureScheme; 8] = [
        SignatureScheme::RsaPkcs1Sha256,
        SignatureScheme::RsaPkcs1Sha384,
        SignatureScheme::RsaPkcs1Sha512,
        SignatureScheme::EcdsaP256Sha256,
        SignatureScheme::EcdsaP384Sha384,
        SignatureScheme::RsaPssSha256,
        SignatureScheme::RsaPssSha384,
        SignatureScheme::RsaPssSha512,
    ];

    /// The TLS `SignatureScheme` code point (also the C ABI's value).
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The TLS name of the scheme (`ecdsa_secp256r1_sha256`).
    pub fn name(self) -> &'static str {
        match self {
            SignatureScheme::RsaPkcs1Sha256 => "rsa_pkcs1_sha256",
            SignatureScheme::RsaPkcs1Sha384 => "rsa_pkcs1_sha384",
            SignatureScheme::RsaPkcs1Sha512 => "rsa_pkcs1_sha512",
            SignatureScheme::EcdsaP256Sha256 => "ecdsa_secp256r1_sha256",
            SignatureScheme::EcdsaP384Sha384 => "ecdsa_secp384r1_sha384",
            SignatureScheme::RsaPssSha256 => "rsa_pss_rsae_sha256",
            SignatureScheme::RsaPssSha384 => "rsa_pss_rsae_sha384",
            SignatureScheme::RsaPssSha512 => "rsa_pss_rsae_sha512",
        }
    }

    /// The rustls code point of this scheme.
    pub fn to_rustls(self) -> rustls::SignatureScheme {
        rustls::SignatureScheme::from(self as u16)
    }
}

impl TryFrom<u32> for SignatureScheme {
    type Error = Error;
    fn try_from(v: u32) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.code() == v)
            .ok_or_else(|| Error::invalid("scheme", format!("unknown signature scheme 0x{v:04x}")))
    }
}

impl std::fmt::Display for SignatureScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_match_rustls() {
        for s in SignatureScheme::ALL {
            assert_eq!(SignatureScheme::try_from(s.code()).unwrap(), s);
            assert_eq!(
                SignatureScheme::try_from(u32::from(u16::from(s.to_rustls()))).unwrap(),
                s
            );
        }
        assert_eq!(
            SignatureScheme::EcdsaP256Sha256.to_rustls(),
            rustls::SignatureScheme::ECDSA_NISTP256_SHA256
        );
        assert_eq!(
            SignatureScheme::RsaPssSha256.to_rustls(),
            rustls::SignatureScheme::RSA_PSS_SHA256
        );
        assert!(SignatureScheme::try_from(0x0807).is_err());
    }
}
