//! The service connection string and the service SAS token made from it.
//!
//! `HostName=..;SharedAccessKeyName=..;SharedAccessKey=..` (any order, each once). The token is
//! `SharedAccessSignature sr={enc(lowercase host)}&sig={enc(b64(HMAC-SHA256(key, sr + "\n" + se)))}&se={se}&skn={policy}`,
//! with hsm-core's URL encoding and HMAC (the same codec the device tokens use).

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hsm_core::sas;
use zeroize::Zeroizing;

use crate::{Error, Result};

/// A parsed connection string. `Debug` never shows the key.
#[derive(Clone)]
pub struct ConnectionString {
    /// `HostName` as given (a real DPS: `{name}.azure-devices-provisioning.net`; may carry `:port`).
    pub host: String,
    /// `SharedAccessKeyName`: the policy (e.g. `provisioningserviceowner`).
    pub policy: String,
    key: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("host", &self.host)
            .field("policy", &self.policy)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl ConnectionString {
    /// Parse strictly: the three fields present, each once, no unknown field, the key base64.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |m: String| Error::ConnectionString(m);
        let (mut host, mut policy, mut key) = (None, None, None::<Zeroizing<String>>);
        for part in s.trim().split(';').filter(|p| !p.trim().is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("part {:?} has no `=`", part.split('=').next().unwrap_or(""))))?;
            let name = name.trim();
            let dup = match name {
                "HostName" => host.replace(value.trim().to_string()).is_some(),
                "SharedAccessKeyName" => policy.replace(value.trim().to_string()).is_some(),
                "SharedAccessKey" => key.replace(Zeroizing::new(value.trim().to_string())).is_some(),
                other => {
                    return Err(bad(format!(
                        "unknown field {other:?} (expected HostName, SharedAccessKeyName, SharedAccessKey)"
                    )));
                }
            };
            if dup {
                return Err(bad(format!("field {name} appears twice")));
            }
        }
        let missing = |f: &str| bad(format!("field {f} is missing"));
        let host = host.filter(|h| !h.is_empty()).ok_or_else(|| missing("HostName"))?;
        let policy = policy
            .filter(|p| !p.is_empty())
            .ok_or_else(|| missing("SharedAccessKeyName"))?;
        let key = key.ok_or_else(|| missing("SharedAccessKey"))?;
        let key = sas::decode_key("SharedAccessKey", &key).map_err(|e| bad(e.to_string()))?;
        Ok(ConnectionString { host, policy, key })
    }

    /// A service SAS token valid until `expiry` (seconds since the epoch).
    pub fn sas_token(&self, expiry: u64) -> String {
        service_sas(&self.host, &self.policy, &self.key, expiry)
    }

    /// A service SAS token valid for `ttl` from now.
    pub fn sas_token_for(&self, ttl: Duration) -> String {
        self.sas_token(sas::expiry_in(ttl))
    }
}

impl std::str::FromStr for ConnectionString {
    type Err = Error;

    /// [`ConnectionString::parse`].
    fn from_str(s: &str) -> Result<Self> {
        ConnectionString::parse(s)
    }
}

/// The service SAS token for `host` signed with a raw `key` of `policy`.
pub fn service_sas(host: &str, policy: &str, key: &[u8], expiry: u64) -> String {
    let sr = sas::url_encode(&host.to_ascii_lowercase());
    let sig = sas::hmac_sha256(key, format!("{sr}\n{expiry}").as_bytes());
    format!(
        "SharedAccessSignature sr={sr}&sig={}&se={expiry}&skn={}",
        sas::url_encode(&B64.encode(sig)),
        sas::url_encode(policy)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const KEY: &str = "c2VydmljZS1rZXktZm9yLXRlc3RzLW9ubHktMDEyMzQ1Njc4OQ==";

    #[test]
    fn parses_and_signs_a_token_hsm_core_verifies() {
        let cs = ConnectionString::parse(&format!(
            "HostName=My-Dps.Azure-Devices-Provisioning.net;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey={KEY}"
        ))
        .unwrap();
        assert_eq!(cs.policy, "provisioningserviceowner");
        let t = cs.sas_token(1767225600);
        assert!(
            t.starts_with("SharedAccessSignature sr=my-dps.azure-devices-provisioning.net&sig="),
            "{t}"
        );
        assert!(t.ends_with("&se=1767225600&skn=provisioningserviceowner"), "{t}");
        // The device side's parser and verifier accept it: one codec for both.
        let parsed = sas::SasToken::parse(&t).unwrap();
        assert_eq!(parsed.key_name.as_deref(), Some("provisioningserviceowner"));
        assert!(parsed.verify(&B64.decode(KEY).unwrap()));
        assert!(!format!("{cs:?}").contains(KEY));
    }

    #[test]
    fn the_host_with_a_port_is_encoded() {
        let t = service_sas("LocalHost:8443", "p", b"k", 1);
        assert!(t.starts_with("SharedAccessSignature sr=localhost%3a8443&sig="), "{t}");
    }

    #[test]
    fn rejects_bad_strings_naming_the_field_never_the_key() {
        for (s, needle) in [
            ("SharedAccessKeyName=p;SharedAccessKey=a2V5", "HostName is missing"),
            ("HostName=h;SharedAccessKey=a2V5", "SharedAccessKeyName is missing"),
            ("HostName=h;SharedAccessKeyName=p", "SharedAccessKey is missing"),
            (
                "HostName=h;HostName=g;SharedAccessKeyName=p;SharedAccessKey=a2V5",
                "appears twice",
            ),
            (
                "HostName=h;SharedAccessKeyName=p;SharedAccessKey=a2V5;Foo=1",
                "unknown field \"Foo\"",
            ),
            (
                "HostName=h;SharedAccessKeyName=p;SharedAccessKey=not*base64",
                "not valid base64",
            ),
            ("HostName=h;SharedAccessKeyName=p;garbage", "has no `=`"),
        ] {
            let e = ConnectionString::parse(s).unwrap_err().to_string();
            assert!(e.contains(needle), "{s}: {e}");
            assert!(!e.contains("not*base64"), "{e}");
        }
    }
}
