//! Secrets read from a file, standard input or the environment, never echoed; and the warnings for
//! secrets given on the command line, where every user sees them.

use std::path::Path;

use zeroize::Zeroizing;

use crate::CliError;

/// A key from a file, or from standard input when `path` is `-`.
pub fn read_secret(path: &Path) -> Result<Zeroizing<String>, CliError> {
    let text = if path == Path::new("-") {
        use std::io::Read as _;
        let mut buf = Zeroizing::new(Vec::with_capacity(1024));
        std::io::stdin()
            .lock()
            .take(hsm_core::fs::SECRET_MAX + 1)
            .read_to_end(&mut buf)
            .map_err(|e| hsm_core::Error::io("read key from standard input", path, e))?;
        if buf.len() as u64 > hsm_core::fs::SECRET_MAX {
            return Err(CliError::Usage(format!(
                "the key on standard input is longer than {} bytes",
                hsm_core::fs::SECRET_MAX
            )));
        }
        Zeroizing::new(
            String::from_utf8(std::mem::take(&mut *buf))
                .map_err(|_| CliError::Usage("the key on standard input is not UTF-8".into()))?,
        )
    } else {
        hsm_core::fs::read_bounded_string("read key file", path, hsm_core::fs::SECRET_MAX)?
    };
    Ok(Zeroizing::new(text.trim().to_string()))
}

/// A key from the environment variable `name`.
pub fn env_secret(name: &str) -> Result<Zeroizing<String>, CliError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(Zeroizing::new(v.trim().to_string())),
        _ => Err(CliError::Usage(format!(
            "environment variable {name} is not set or empty"
        ))),
    }
}

/// Warnings for secrets given on the command line, where every user sees them in
/// /proc/PID/cmdline. They name the option, never its value.
pub fn command_line_secret_warnings(args: &[String]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for a in args {
        let flag = a.split('=').next().unwrap_or_default();
        let w = match flag {
            "--key" => {
                "warning: --key puts the key on the command line, visible to other users; use --key-file \
                        PATH, --key-file - (standard input) or --key-env NAME"
            }
            "--group-key" => {
                "warning: --group-key puts the key on the command line, visible to other users; use \
                              --group-key-file PATH, --group-key-file - (standard input) or --group-key-env NAME"
            }
            "--connection-string" => {
                "warning: --connection-string puts the service key on the command line, visible to other \
                 users; use --connection-string-file PATH, --connection-string-file - (standard input) or \
                 $DPS_SERVICE_CONNECTION_STRING"
            }
            _ if a.contains("pin-value=") => {
                "warning: a PKCS#11 URI with pin-value puts the PIN on the command \
                 line, visible to other users; use pin-source=file:PATH (a file readable only by you)"
            }
            _ => continue,
        };
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}
