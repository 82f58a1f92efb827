//! Where a PIN comes from: the file a `pin-source` names, read with its trailing newline removed.

use std::path::{Path, PathBuf};

use hsm_core::{Error, Result};
use zeroize::Zeroizing;

use super::error::uri_error;

/// The file a `pin-source` names: `file:/path`, `file:///path` or a plain path.
pub(crate) fn pin_source_path(source: &str) -> Result<PathBuf> {
    let path = if let Some(rest) = source.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err(uri_error(
                "pin-source",
                "`file://` must be followed by an absolute path",
            ));
        }
        rest
    } else if let Some(rest) = source.strip_prefix("file:") {
        rest
    } else if source.contains(':') && !source.starts_with('/') && !source.starts_with('.') {
        return Err(uri_error(
            "pin-source",
            format!("`{source}`: only files are supported (`file:/path` or a path)"),
        ));
    } else {
        source
    };
    if path.is_empty() {
        return Err(uri_error("pin-source", "empty file name"));
    }
    Ok(PathBuf::from(path))
}

/// Read a PIN file; one trailing newline is removed.
pub fn read_pin_file(path: &Path) -> Result<Zeroizing<String>> {
    let bytes = hsm_core::fs::read_bounded("read PIN file", path, hsm_core::fs::SECRET_MAX)?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| Error::parse(format!("PIN file {}", path.display()), "not UTF-8"))?;
    let pin = text.strip_suffix('\n').unwrap_or(text);
    let pin = pin.strip_suffix('\r').unwrap_or(pin);
    if pin.is_empty() {
        return Err(Error::parse(
            format!("PIN file {}", path.display()),
            "the file is empty",
        ));
    }
    Ok(Zeroizing::new(pin.to_string()))
}
