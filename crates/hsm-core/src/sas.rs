//! Shared access signature (SAS) tokens for DPS and IoT Hub, and group-key derivation.
//!
//! DPS: the resource `{idScope}/registrations/{registrationId}` is URL-encoded (lowercase
//! hex), the string to sign is `encoded + "\n" + expiry`, and the token carries
//! `skn=registration`. IoT Hub through the TPM-shaped path signs the scope as given.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 in software.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    #[allow(clippy::expect_used)]
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// URL-encode as the Azure SDKs do: unreserved `A-Z a-z 0-9 ! ( ) * - . _`, everything
/// else `%xx` with lowercase hex (`crate::pct::SAS`).
pub fn url_encode(s: &str) -> String {
    crate::pct::SAS.encode_str(s)
}

/// Decode `%xx` escapes (either case); `+` is left as it is.
pub fn url_decode(s: &str) -> Result<String> {
    crate::pct::decode_utf8("URL-encoded value", s)
}

/// Decode a base64 symmetric key, naming `what` in the error.
pub fn decode_key(what: &str, b64: &str) -> Result<Zeroizing<Vec<u8>>> {
    let key = B64
        .decode(b64.trim())
        .map_err(|e| Error::parse(what, format!("not valid base64: {e}")))?;
    if key.is_empty() {
        return Err(Error::parse(what, "the key is empty"));
    }
    Ok(Zeroizing::new(key))
}

/// Group enrollment: device key = HMAC-SHA256(base64_decode(group key), registration id).
/// Returns the raw derived key; [`encode_key`] gives its base64 form.
pub fn derive_device_key(group_key_b64: &str, registration_id: &str) -> Result<Zeroizing<Vec<u8>>> {
    let group = decode_key("group key", group_key_b64)?;
    Ok(Zeroizing::new(hmac_sha256(&group, registration_id.as_bytes()).to_vec()))
}

/// The base64 form of a raw key (as the portal shows it); zeroized when dropped.
pub fn encode_key(key: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(B64.encode(key))
}

/// The DPS resource URI for a registration, before encoding.
pub fn dps_resource(id_scope: &str, registration_id: &str) -> String {
    format!("{id_scope}/registrations/{registration_id}")
}

/// What a SAS token is for: it decides how the resource is written and whether `skn` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// DPS registration: resource URL-encoded, `skn=registration`.
    Dps {
        /// The DPS id scope.
        id_scope: String,
        /// The registration id.
        registration_id: String,
    },
    /// IoT Hub device: `{host}/devices/{deviceId}` signed and sent as given, no `skn`
    /// (what the C SDK's TPM path does).
    Hub {
        /// The hub's host name.
        host: String,
        /// The device id.
        device_id: String,
    },
}

impl Audience {
    /// The `sr` value as it appears in the token.
    pub fn resource(&self) -> String {
        match self {
            Audience::Dps {
                id_scope,
                registration_id,
            } => url_encode(&dps_resource(id_scope, registration_id)),
            Audience::Hub { host, device_id } => format!("{host}/devices/{device_id}"),
        }
    }

    /// The exact bytes to sign for an expiry (seconds since the epoch).
    pub fn string_to_sign(&self, expiry: u64) -> String {
        format!("{}\n{expiry}", self.resource())
    }

    /// Assemble the token from a raw HMAC over [`Self::string_to_sign`].
    pub fn token(&self, signature: &[u8], expiry: u64) -> String {
        let sig = url_encode(&B64.encode(signature));
        let mut t = format!("SharedAccessSignature sr={}&sig={sig}&se={expiry}", self.resource());
        if matches!(self, Audience::Dps { .. }) {
            t.push_str("&skn=registration");
        }
        t
    }

    /// Sign in software with a raw key.
    pub fn sign_with_key(&self, key: &[u8], expiry: u64) -> String {
        self.token(&hmac_sha256(key, self.string_to_sign(expiry).as_bytes()), expiry)
    }
}

/// A parsed `SharedAccessSignature ...` token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SasToken {
    /// `sr` exactly as it appears (still encoded).
    pub resource: String,
    /// The decoded signature bytes.
    pub signature: Vec<u8>,
    /// `se`: seconds since the epoch.
    pub expiry: u64,
    /// `skn`, when present.
    pub key_name: Option<String>,
}

impl SasToken {
    /// Parse a token, strictly: every field once, `sr`, `sig` and `se` present.
    pub fn parse(token: &str) -> Result<Self> {
        let rest = token
            .trim()
            .strip_prefix("SharedAccessSignature ")
            .ok_or_else(|| Error::parse("SAS token", "it must start with `SharedAccessSignature `"))?;
        let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
        for field in rest.split('&') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| Error::parse("SAS token", format!("field {field:?} has no `=`")))?;
            let slot = match k {
                "sr" => &mut sr,
                "sig" => &mut sig,
                "se" => &mut se,
                "skn" => &mut skn,
                other => {
                    return Err(Error::parse("SAS token", format!("unknown field {other:?}")));
                }
            };
            if slot.replace(v.to_string()).is_some() {
                return Err(Error::parse("SAS token", format!("field {k:?} appears twice")));
            }
        }
        let missing = |f: &str| Error::parse("SAS token", format!("field {f:?} is missing"));
        let sig = sig.ok_or_else(|| missing("sig"))?;
        let signature = B64
            .decode(url_decode(&sig)?)
            .map_err(|e| Error::parse("SAS token", format!("sig is not base64: {e}")))?;
        let expiry = se
            .ok_or_else(|| missing("se"))?
            .parse()
            .map_err(|e| Error::parse("SAS token", format!("se is not a number: {e}")))?;
        Ok(SasToken {
            resource: sr.ok_or_else(|| missing("sr"))?,
            signature,
            expiry,
            key_name: skn,
        })
    }

    /// The bytes the signature covers.
    pub fn string_to_sign(&self) -> String {
        format!("{}\n{}", self.resource, self.expiry)
    }

    /// Check the signature against `key` in constant time.
    pub fn verify(&self, key: &[u8]) -> bool {
        let mut mac = match HmacSha256::new_from_slice(key) {
            Ok(m) => m,
            Err(_) => return false,
        };
        mac.update(self.string_to_sign().as_bytes());
        mac.verify_slice(&self.signature).is_ok()
    }
}

/// Seconds since the epoch, `ttl` from now.
pub fn expiry_in(ttl: std::time::Duration) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    now.saturating_add(ttl.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Independently computed values from shared/test-vectors.md.
    const GROUP: &str = "9okJC6lKhmgI33KikQOMre4DvF+vacd9NUl2ATGVC44YeJfOCvzyC1C6KzfcqEqVG3BG8p7Vq5TwEGGfadbhiQ==";
    const DEVICE_KEY: &str = "GRPTH+dyLH5yQZctR5eMNCRGWfZXuw/fZzAhRArVPkQ=";
    const TOKEN: &str = "SharedAccessSignature sr=0ne00000A0A%2fregistrations%2fdevice-0001&sig=sWSjFs4E5KYQNTTlI1ZWkgs5AaRrTQvh2QKwI5650IA%3d&se=1767225600&skn=registration";

    #[test]
    fn group_key_derivation_matches_vector() {
        let k = derive_device_key(GROUP, "device-0001").unwrap();
        assert_eq!(encode_key(&k).as_str(), DEVICE_KEY);
    }

    #[test]
    fn dps_token_matches_vector() {
        let aud = Audience::Dps {
            id_scope: "0ne00000A0A".into(),
            registration_id: "device-0001".into(),
        };
        assert_eq!(aud.resource(), "0ne00000A0A%2fregistrations%2fdevice-0001");
        assert_eq!(
            aud.string_to_sign(1767225600),
            "0ne00000A0A%2fregistrations%2fdevice-0001\n1767225600"
        );
        let key = decode_key("device key", DEVICE_KEY).unwrap();
        assert_eq!(aud.sign_with_key(&key, 1767225600), TOKEN);
    }

    #[test]
    fn parse_and_verify() {
        let t = SasToken::parse(TOKEN).unwrap();
        assert_eq!(t.expiry, 1767225600);
        assert_eq!(t.key_name.as_deref(), Some("registration"));
        let key = decode_key("device key", DEVICE_KEY).unwrap();
        assert!(t.verify(&key));
        assert!(!t.verify(b"wrong key"));
    }

    #[test]
    fn parse_rejects_bad_tokens() {
        for bad in [
            "sr=a&sig=b&se=1",
            "SharedAccessSignature sr=a&se=1",
            "SharedAccessSignature sr=a&sig=AA%3d%3d&se=x",
            "SharedAccessSignature sr=a&sr=b&sig=AA%3d%3d&se=1",
            "SharedAccessSignature sr=a&sig=AA%3d%3d&se=1&foo=1",
            "SharedAccessSignature sr=a&sig=%zz&se=1",
        ] {
            assert!(SasToken::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hub_token_has_no_skn_and_raw_scope() {
        let aud = Audience::Hub {
            host: "hub.example.net".into(),
            device_id: "dev1".into(),
        };
        let t = aud.sign_with_key(b"k", 10);
        assert!(t.starts_with("SharedAccessSignature sr=hub.example.net/devices/dev1&sig="));
        assert!(!t.contains("skn="));
    }

    #[test]
    fn url_encoding_is_lowercase_and_round_trips() {
        assert_eq!(url_encode("a/b c+=~"), "a%2fb%20c%2b%3d%7e");
        assert_eq!(url_decode("a%2Fb%2f").unwrap(), "a/b/");
    }
}
