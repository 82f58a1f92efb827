//! The registration id of a TPM identity, derived from its EK (pure Rust, no TPM needed).

/// The registration id the SDK derives from an EK: lowercase RFC 4648 base32 of
/// SHA-256(`TPM2B_PUBLIC` bytes as `get_ek` returns them), without `=` padding.
pub fn registration_id(ek_tpm2b_public: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(ek_tpm2b_public);
    data_encoding::BASE32_NOPAD.encode(&digest).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    #[test]
    fn registration_id_matches_the_shared_vector() {
        let ek: Vec<u8> = (0u8..0x40).collect();
        assert_eq!(
            super::registration_id(&ek),
            "7xvltlhtoebwfpjgldg4tiu6r6ohk76ptaiwaoumir6ndwivceea"
        );
    }
}
