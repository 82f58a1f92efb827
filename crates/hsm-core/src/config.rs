//! Configuration: one TOML file that maps each SDK interface to a backend.
//!
//! ```toml
//! [x509]                     # the SDK's x509 (and riot) interface
//! backend = "file"
//! certificate = "device-chain.pem"
//! private_key = "device-key.pem"
//!
//! [symmetric_key]            # the SDK's key interface
//! backend = "file"
//! registration_id = "device-0001"
//! symmetric_key = "base64..."
//!
//! [tpm]                      # the SDK's TPM (sastoken) interface
//! backend = "tpm"
//! ```
//!
//! Each section has a `backend` and that backend's own keys; the backend parses them
//! strictly with [`Section::parse`]. Relative paths are relative to the file's directory.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// The environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "HSM_ABI_CONFIG";

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from: a file path or `<inline>`.
    pub source: String,
    /// `[x509]`: the TLS client identity (certificate chain and key).
    pub x509: Option<Section>,
    /// `[symmetric_key]`: a registration id and the key that signs its SAS tokens.
    pub symmetric_key: Option<Section>,
    /// `[tpm]`: TPM attestation (endorsement and storage root keys, the activated identity key).
    pub tpm: Option<Section>,
}

/// One section: a backend name and its parameters.
#[derive(Debug, Clone)]
pub struct Section {
    /// `x509`, `symmetric_key` or `tpm`.
    pub name: &'static str,
    /// The `backend` key: `file`, `pkcs11`, `tpm`, `dice`, `vendor`, `issued`.
    pub backend: String,
    params: toml::Table,
    source: String,
    base_dir: PathBuf,
}

const SECTIONS: [&str; 3] = ["x509", "symmetric_key", "tpm"];

impl Config {
    /// Read and parse a configuration file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::fs::read_bounded_string("read configuration", path, crate::fs::CONFIG_MAX)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_toml(&text, &path.display().to_string(), &base)
    }

    /// Parse TOML text; `source` names it in errors, `base_dir` anchors relative paths.
    pub fn from_toml(text: &str, source: &str, base_dir: &Path) -> Result<Self> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| Error::config(source, "(syntax)", crate::redact::toml_error(text, &e)))?;
        for key in table.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                return Err(Error::config(
                    source,
                    key,
                    format!("unknown section; expected one of {}", SECTIONS.join(", ")),
                ));
            }
        }
        let mut cfg = Config {
            source: source.to_string(),
            x509: None,
            symmetric_key: None,
            tpm: None,
        };
        for name in SECTIONS {
            let Some(value) = table.get(name) else {
                continue;
            };
            let mut params = value
                .as_table()
                .cloned()
                .ok_or_else(|| Error::config(source, name, "expected a table ([section])"))?;
            let backend = match params.remove("backend") {
                Some(toml::Value::String(b)) => b,
                Some(_) => {
                    return Err(Error::config(source, format!("{name}.backend"), "expected a string"));
                }
                None => {
                    return Err(Error::config(
                        source,
                        format!("{name}.backend"),
                        "missing; name the backend",
                    ));
                }
            };
            let section = Section {
                name,
                backend,
                params,
                source: source.to_string(),
                base_dir: base_dir.to_path_buf(),
            };
            match name {
                "x509" => cfg.x509 = Some(section),
                "symmetric_key" => cfg.symmetric_key = Some(section),
                _ => cfg.tpm = Some(section),
            }
        }
        if cfg.x509.is_none() && cfg.symmetric_key.is_none() && cfg.tpm.is_none() {
            return Err(Error::config(
                source,
                "(document)",
                format!(
                    "no section: the configuration is empty or incomplete (being rewritten?); expected one of {}",
                    SECTIONS.join(", ")
                ),
            ));
        }
        Ok(cfg)
    }

    /// Load from the file named by `HSM_ABI_CONFIG`.
    pub fn from_env() -> Result<Self> {
        match std::env::var_os(CONFIG_ENV) {
            Some(p) if !p.is_empty() => Self::from_file(Path::new(&p)),
            _ => Err(Error::NotConfigured(format!(
                "set {CONFIG_ENV} to a configuration file, or configure the library before use"
            ))),
        }
    }

    /// The section for an interface, or a clear error when it is absent.
    pub fn section(&self, name: &str) -> Result<&Section> {
        let s = match name {
            "x509" => &self.x509,
            "symmetric_key" => &self.symmetric_key,
            "tpm" => &self.tpm,
            _ => &None,
        };
        s.as_ref()
            .ok_or_else(|| Error::config(&self.source, name, format!("section [{name}] is missing")))
    }
}

impl Section {
    /// Deserialize the backend's parameters (without `backend`) strictly.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(toml::Value::Table(self.params.clone())).map_err(|e| {
            Error::config(
                &self.source,
                self.name,
                format!(
                    "backend \"{}\": {}",
                    self.backend,
                    crate::redact::message(e.to_string().trim_end())
                ),
            )
        })
    }

    /// An error about `key` of this section.
    pub fn error(&self, key: &str, message: impl Into<String>) -> Error {
        Error::config(&self.source, format!("{}.{key}", self.name), message)
    }

    /// An error that opening what `key` of this section names ran into. A device's error stays a
    /// device error, its origin and return code kept (C callers act on them through
    /// `hsm_abi_last_error_rv`), with this key named in its operation; any other error becomes a
    /// configuration error about `key`, as [`Section::error`] makes.
    pub fn context(&self, key: &str, e: Error) -> Error {
        match e {
            Error::Device {
                origin,
                op,
                rv,
                message,
            } => Error::Device {
                origin,
                op: format!("configuration {}: {}.{key}: {op}", self.source, self.name),
                rv,
                message,
            },
            other => self.error(key, other.to_string()),
        }
    }

    /// Resolve a path relative to the configuration file.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct P {
        path: PathBuf,
    }

    #[test]
    fn sections_and_paths() {
        let c = Config::from_toml(
            "[x509]\nbackend = \"file\"\npath = \"a.pem\"\n",
            "t.toml",
            Path::new("/etc/x"),
        )
        .unwrap();
        let s = c.section("x509").unwrap();
        assert_eq!(s.backend, "file");
        let p: P = s.parse().unwrap();
        assert_eq!(s.path(&p.path), Path::new("/etc/x/a.pem"));
        let e = c.section("tpm").unwrap_err().to_string();
        assert!(e.contains("t.toml") && e.contains("[tpm] is missing"), "{e}");
    }

    #[test]
    fn an_empty_document_is_an_error() {
        for text in ["", "\n", "# only a comment\n"] {
            let e = Config::from_toml(text, "c.toml", Path::new(""))
                .unwrap_err()
                .to_string();
            assert!(e.contains("c.toml") && e.contains("empty or incomplete"), "{e}");
        }
    }

    /// Issue 21, item 6: neither a syntax error nor a value of the wrong type shows the value.
    #[test]
    fn no_configuration_error_shows_a_secret() {
        let secret = "c2VjcmV0LWtleS1mb3ItdGVzdHM=";
        let text = format!("[symmetric_key]\nbackend = \"file\"\nsymmetric_key = \"{secret}\n");
        let e = Config::from_toml(&text, "c.toml", Path::new(""))
            .unwrap_err()
            .to_string();
        assert!(!e.contains(secret), "{e}");
        assert!(
            e.contains("c.toml") && e.contains("line 3") && e.contains("symmetric_key = <hidden>"),
            "{e}"
        );

        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Pin {
            pin: u32,
        }
        let c = Config::from_toml(
            &format!("[x509]\nbackend = \"pkcs11\"\npin = \"{secret}\"\n"),
            "c.toml",
            Path::new(""),
        )
        .unwrap();
        let e = c.section("x509").unwrap().parse::<Pin>().unwrap_err().to_string();
        assert!(
            !e.contains(secret) && e.contains("invalid type: string <hidden>"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let e = Config::from_toml("[x509]\npath = 1\n", "c.toml", Path::new(""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.toml") && e.contains("x509.backend"), "{e}");
        let e = Config::from_toml("[x590]\nbackend = \"file\"\n", "c.toml", Path::new(""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("x590") && e.contains("unknown section"), "{e}");
        let e = Config::from_toml("[x509\n", "c.toml", Path::new(""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.toml"), "{e}");
        let c = Config::from_toml("[x509]\nbackend = \"file\"\npth = \"a\"\n", "c.toml", Path::new("")).unwrap();
        let e = c.section("x509").unwrap().parse::<P>().unwrap_err().to_string();
        assert!(e.contains("pth"), "{e}");
    }
}
