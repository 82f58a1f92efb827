//! The options of a [`crate::Tpm`]: from the `[tpm]` configuration section or built in code.

use std::path::PathBuf;
use std::time::Duration;

use hsm_core::config::Section;
use hsm_core::{Error, Result};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::handles::{EK_HANDLE, IDENTITY_HANDLE, SRK_HANDLE, parse_handle};
use crate::templates::EkTemplate;

#[derive(Deserialize)]
#[serde(untagged)]
enum HandleValue {
    Int(i64),
    Str(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    tcti: Option<String>,
    ek_template: Option<EkTemplate>,
    owner_auth: Option<Zeroizing<String>>,
    owner_auth_file: Option<PathBuf>,
    endorsement_auth: Option<Zeroizing<String>>,
    endorsement_auth_file: Option<PathBuf>,
    identity_handle: Option<HandleValue>,
    command_timeout: Option<TimeoutValue>,
}

/// `command_timeout`: seconds, an integer or a fraction.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum TimeoutValue {
    Int(i64),
    Float(f64),
}

impl TimeoutValue {
    /// The timeout, between 1 ms and one hour.
    pub(crate) fn duration(&self) -> std::result::Result<Duration, String> {
        let secs = match *self {
            TimeoutValue::Int(i) => i as f64,
            TimeoutValue::Float(f) => f,
        };
        if secs.is_finite() && (0.001..=3600.0).contains(&secs) {
            Ok(Duration::from_secs_f64(secs))
        } else {
            Err(format!("{secs} s: expected seconds between 0.001 and 3600"))
        }
    }
}

/// Parse an authorization value: `hex:0a1b...` for bytes, `str:...` or plain text for UTF-8.
fn parse_auth(what: &'static str, text: &str) -> Result<Zeroizing<Vec<u8>>> {
    let v = if let Some(hex) = text.strip_prefix("hex:") {
        data_encoding::HEXLOWER_PERMISSIVE
            .decode(hex.trim().as_bytes())
            .map_err(|e| Error::invalid(what, format!("bad hex: {e}")))?
    } else {
        text.strip_prefix("str:").unwrap_or(text).as_bytes().to_vec()
    };
    if v.len() > 64 {
        return Err(Error::invalid(what, "longer than 64 bytes"));
    }
    Ok(Zeroizing::new(v))
}

/// Options of a [`crate::Tpm`], from configuration or built in code.
#[derive(Clone)]
pub struct TpmOptions {
    /// TCTI configuration string, e.g. `swtpm:host=127.0.0.1,port=2321` or `device:/dev/tpmrm0`.
    pub tcti: String,
    /// The EK template used when no EK is persisted.
    pub ek_template: EkTemplate,
    /// The owner hierarchy's authorization value.
    pub owner_auth: Option<Zeroizing<Vec<u8>>>,
    /// The endorsement hierarchy's authorization value.
    pub endorsement_auth: Option<Zeroizing<Vec<u8>>>,
    /// The persistent handle of the DPS identity key.
    pub identity_handle: u32,
    /// Bound of every TPM operation (`TpmConn::set_command_timeout`; key generation gets
    /// twelve times as much).
    pub command_timeout: Duration,
}

impl std::fmt::Debug for TpmOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmOptions")
            .field("tcti", &self.tcti)
            .field("ek_template", &self.ek_template)
            .field("owner_auth", &self.owner_auth.as_ref().map(|_| "<set>"))
            .field("endorsement_auth", &self.endorsement_auth.as_ref().map(|_| "<set>"))
            .field("identity_handle", &format_args!("0x{:08x}", self.identity_handle))
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

impl TpmOptions {
    /// Defaults for `tcti`: SDK EK template, empty hierarchy auth, identity key at 0x81000100.
    pub fn new(tcti: impl Into<String>) -> Self {
        TpmOptions {
            tcti: tcti.into(),
            ek_template: EkTemplate::Sdk,
            owner_auth: None,
            endorsement_auth: None,
            identity_handle: IDENTITY_HANDLE,
            command_timeout: crate::conn::DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// Read the `[tpm]` section (keys: `tcti`, `ek_template`, `owner_auth`/`owner_auth_file`,
    /// `endorsement_auth`/`endorsement_auth_file`, `identity_handle`, `command_timeout`).
    pub fn from_section(section: &Section) -> Result<Self> {
        let p: Params = section.parse()?;
        let auth = |key: &'static str,
                    value: Option<Zeroizing<String>>,
                    file_key: &'static str,
                    file: Option<PathBuf>|
         -> Result<Option<Zeroizing<Vec<u8>>>> {
            match (value, file) {
                (Some(_), Some(_)) => Err(section.error(key, format!("give {key} or {file_key}, not both"))),
                (Some(v), None) => parse_auth(key, &v)
                    .map(Some)
                    .map_err(|e| section.error(key, e.to_string())),
                (None, Some(path)) => {
                    let path = section.path(&path);
                    let text = Zeroizing::new(
                        hsm_core::fs::read_bounded_string("read authorization file", &path, hsm_core::fs::SECRET_MAX)
                            .map_err(|e| section.error(file_key, e.to_string()))?,
                    );
                    parse_auth(file_key, text.trim_end_matches(['\n', '\r']))
                        .map(Some)
                        .map_err(|e| section.error(file_key, e.to_string()))
                }
                (None, None) => Ok(None),
            }
        };
        let identity_handle = match &p.identity_handle {
            None => IDENTITY_HANDLE,
            Some(HandleValue::Int(i)) => u32::try_from(*i)
                .map_err(|_| section.error("identity_handle", format!("{i} is out of range")))
                .and_then(|v| {
                    parse_handle("identity_handle", &v.to_string())
                        .map_err(|e| section.error("identity_handle", e.to_string()))
                })?,
            Some(HandleValue::Str(s)) => {
                parse_handle("identity_handle", s).map_err(|e| section.error("identity_handle", e.to_string()))?
            }
        };
        let command_timeout = match &p.command_timeout {
            None => crate::conn::DEFAULT_COMMAND_TIMEOUT,
            Some(t) => t.duration().map_err(|e| section.error("command_timeout", e))?,
        };
        if [EK_HANDLE, SRK_HANDLE].contains(&identity_handle) {
            return Err(section.error("identity_handle", "must differ from the EK and SRK handles"));
        }
        let tcti = p.tcti.unwrap_or_else(crate::conn::default_tcti);
        if tcti.trim().is_empty() {
            return Err(section.error("tcti", "must not be empty"));
        }
        Ok(TpmOptions {
            tcti,
            ek_template: p.ek_template.unwrap_or_default(),
            owner_auth: auth("owner_auth", p.owner_auth, "owner_auth_file", p.owner_auth_file)?,
            endorsement_auth: auth(
                "endorsement_auth",
                p.endorsement_auth,
                "endorsement_auth_file",
                p.endorsement_auth_file,
            )?,
            identity_handle,
            command_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_and_auth_values() {
        assert_eq!(parse_handle("h", "0x81000200").unwrap(), 0x8100_0200);
        assert_eq!(parse_handle("h", "2164260864").unwrap(), 0x8100_0000);
        assert!(parse_handle("h", "0x80000001").is_err());
        assert!(parse_handle("h", "zz").is_err());
        assert_eq!(*parse_auth("a", "hex:0aff").unwrap(), vec![0x0a, 0xff]);
        assert_eq!(*parse_auth("a", "str:hex:").unwrap(), b"hex:".to_vec());
        assert_eq!(*parse_auth("a", "pw").unwrap(), b"pw".to_vec());
        assert!(parse_auth("a", "hex:0").is_err());
    }
}
