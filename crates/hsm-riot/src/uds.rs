//! The Unique Device Secret: loading it from a file (with its permissions checked) and
//! creating one with the operating system's random number generator.

use std::io::Write as _;
use std::path::Path;

use hsm_core::{Error, Result};
use zeroize::Zeroizing;

/// Fewest bytes a UDS may have.
pub(crate) const UDS_MIN_LEN: usize = 32;
/// Most bytes a UDS file may have (anything longer is not a UDS file).
pub(crate) const UDS_MAX_LEN: usize = 4096;
/// Size of the UDS [`create_uds_file`] writes.
pub const UDS_NEW_LEN: usize = 32;

/// A Unique Device Secret. Zeroized on drop; `Debug` prints only its length.
pub struct Uds(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Uds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Uds(<{} secret bytes>)", self.0.len())
    }
}

impl Uds {
    /// A UDS from bytes: at least `UDS_MIN_LEN` of them, not all the same value.
    pub fn from_bytes(bytes: Zeroizing<Vec<u8>>) -> Result<Self> {
        check_bytes("UDS", &bytes)?;
        Ok(Uds(bytes))
    }

    /// Read a UDS file. The file must be a regular file that only its owner can read or
    /// write (mode 0600 or stricter), hold `UDS_MIN_LEN` to `UDS_MAX_LEN` bytes, and not
    /// be a constant fill (an all-zero file is a mistake, not a secret).
    pub fn from_file(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io("read UDS file", path, e))?;
        if !meta.is_file() {
            return Err(Error::parse(
                format!("UDS file {}", path.display()),
                "not a regular file",
            ));
        }
        check_mode(path, &meta)?;
        if meta.len() > UDS_MAX_LEN as u64 {
            return Err(Error::parse(
                format!("UDS file {}", path.display()),
                format!("{} bytes; a UDS has {UDS_MIN_LEN} to {UDS_MAX_LEN} bytes", meta.len()),
            ));
        }
        let bytes = hsm_core::fs::read_bounded("read UDS file", path, UDS_MAX_LEN as u64)?;
        check_bytes(&format!("UDS file {}", path.display()), &bytes)?;
        Ok(Uds(bytes))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

fn check_bytes(what: &str, bytes: &[u8]) -> Result<()> {
    if bytes.len() < UDS_MIN_LEN {
        return Err(Error::parse(
            what,
            format!(
                "{} bytes; a UDS needs at least {UDS_MIN_LEN} (create one with `hsmctl dice init`)",
                bytes.len()
            ),
        ));
    }
    if bytes.len() > UDS_MAX_LEN {
        return Err(Error::parse(
            what,
            format!("{} bytes; a UDS has at most {UDS_MAX_LEN}", bytes.len()),
        ));
    }
    if bytes.iter().all(|b| *b == bytes[0]) {
        return Err(Error::parse(
            what,
            format!("every byte is 0x{:02x}: that is a fill pattern, not a secret", bytes[0]),
        ));
    }
    Ok(())
}

#[cfg(unix)]
fn check_mode(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::parse(
            format!("UDS file {}", path.display()),
            format!("mode {mode:04o} lets others read or write the secret; it must be 0600 or stricter (chmod 600)"),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_path: &Path, _meta: &std::fs::Metadata) -> Result<()> {
    Ok(())
}

/// Create a new UDS file of [`UDS_NEW_LEN`] bytes from the OS random number generator,
/// with mode 0600. An existing file is never overwritten.
pub fn create_uds_file(path: &Path) -> Result<()> {
    use ring::rand::SecureRandom as _;
    let mut bytes = Zeroizing::new([0u8; UDS_NEW_LEN]);
    ring::rand::SystemRandom::new()
        .fill(&mut bytes[..])
        .map_err(|_| Error::Crypto {
            op: "draw a UDS from the OS random number generator",
            reason: "the generator failed".into(),
        })?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| Error::io("create UDS file", path, e))?;
    let written = (|| {
        // The umask can only remove bits, but the file may sit on a file system that ignores
        // modes: check before the secret goes in.
        let meta = file.metadata().map_err(|e| Error::io("create UDS file", path, e))?;
        check_mode(path, &meta)?;
        file.write_all(&bytes[..])
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io("write UDS file", path, e))
    })();
    if written.is_err() {
        // Leave no empty or partial UDS behind: the next run would refuse it or, worse, use it.
        let _ = std::fs::remove_file(path);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_short_and_constant_secrets() {
        let e = Uds::from_bytes(Zeroizing::new(vec![7u8; 31])).unwrap_err().to_string();
        assert!(e.contains("31 bytes") && e.contains("at least 32"), "{e}");
        let e = Uds::from_bytes(Zeroizing::new(vec![0u8; 32])).unwrap_err().to_string();
        assert!(e.contains("fill pattern"), "{e}");
        let mut v = vec![0u8; 32];
        v[5] = 1;
        assert!(Uds::from_bytes(Zeroizing::new(v)).is_ok());
    }

    #[test]
    fn created_files_are_private_random_and_never_replaced() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        create_uds_file(&a).unwrap();
        create_uds_file(&b).unwrap();
        assert_eq!(std::fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o600);
        let (ua, ub) = (Uds::from_file(&a).unwrap(), Uds::from_file(&b).unwrap());
        assert_eq!(ua.as_bytes().len(), UDS_NEW_LEN);
        assert_ne!(ua.as_bytes(), ub.as_bytes());
        let before = std::fs::read(&a).unwrap();
        let e = create_uds_file(&a).unwrap_err().to_string();
        assert!(e.contains("create UDS file") && e.contains("exists"), "{e}");
        assert_eq!(std::fs::read(&a).unwrap(), before, "an existing UDS is kept");
        let e = create_uds_file(&dir.path().join("no/such/dir/uds"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no/such/dir"), "{e}");
    }

    #[test]
    fn debug_hides_the_secret() {
        let uds = Uds::from_bytes(Zeroizing::new((0u8..32).collect())).unwrap();
        assert_eq!(format!("{uds:?}"), "Uds(<32 secret bytes>)");
    }
}
