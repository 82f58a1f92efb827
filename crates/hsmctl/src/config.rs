//! The library configuration a command reads: the file of `--config`, else `$HSM_ABI_CONFIG`.

use std::path::Path;

use hsm_core::config::Config;

use crate::CliError;

/// The configuration of `--config` (`path`), else the one `$HSM_ABI_CONFIG` names.
pub fn load_config(path: Option<&Path>) -> Result<Config, CliError> {
    Ok(match path {
        Some(p) => Config::from_file(p)?,
        None => Config::from_env()?,
    })
}
