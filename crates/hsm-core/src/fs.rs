//! The one reader for files a user names (configuration, PEM, PIN, key blob, key file, UDS...):
//! a regular file is required, so a FIFO, a device such as `/dev/zero` or a directory is a
//! clear error instead of a read that blocks forever or eats memory, and each kind of file has
//! a size limit. The file is opened non-blocking, so opening a FIFO with no writer returns at
//! once; every error names the path.

use std::fs::{File, Metadata};
use std::io::Read as _;
use std::path::Path;

use zeroize::Zeroizing;

use crate::{Error, Result};

/// Largest configuration file (TOML).
pub const CONFIG_MAX: u64 = 1024 * 1024;
/// Largest PEM file: a certificate chain, a private key, a CSR.
pub(crate) const PEM_MAX: u64 = 1024 * 1024;
/// Largest file holding a PIN, a symmetric key or another short secret.
pub const SECRET_MAX: u64 = 16 * 1024;
/// Largest key blob (a TPM key's public and private areas with a header).
pub const BLOB_MAX: u64 = 64 * 1024;

fn refused(op: &'static str, path: &Path, reason: String) -> Error {
    Error::io(op, path, std::io::Error::new(std::io::ErrorKind::InvalidInput, reason))
}

fn file_type(meta: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Open `path` for reading without blocking on a FIFO, and require a regular file.
pub fn open_regular(op: &'static str, path: &Path) -> Result<(File, Metadata)> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = options.open(path).map_err(|e| Error::io(op, path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(op, path, e))?;
    if !meta.is_file() {
        return Err(refused(
            op,
            path,
            format!("is {}, not a regular file", file_type(&meta)),
        ));
    }
    Ok((file, meta))
}

/// Read a whole regular file of at most `limit` bytes. The buffer is sized once from the
/// file's length, so a secret is not left behind in reallocated memory; it is zeroized when
/// dropped.
pub fn read_bounded(op: &'static str, path: &Path, limit: u64) -> Result<Zeroizing<Vec<u8>>> {
    let (file, meta) = open_regular(op, path)?;
    let too_large = |size: String| refused(op, path, format!("is {size} bytes, larger than the limit of {limit}"));
    if meta.len() > limit {
        return Err(too_large(meta.len().to_string()));
    }
    let capacity = usize::try_from(meta.len().saturating_add(1)).map_err(|e| Error::Internal(e.to_string()))?;
    let mut buf = Zeroizing::new(Vec::with_capacity(capacity));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(op, path, e))?;
    if buf.len() as u64 > limit {
        return Err(too_large(format!("more than {limit}")));
    }
    Ok(buf)
}

/// [`read_bounded`] for a UTF-8 text file.
pub fn read_bounded_string(op: &'static str, path: &Path, limit: u64) -> Result<Zeroizing<String>> {
    let bytes = read_bounded(op, path, limit)?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_string())),
        Err(e) => Err(Error::io(
            op,
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8: {e}")),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pin.fifo");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(status.success());
        let start = Instant::now();
        let e = read_bounded("read PIN file", &fifo, SECRET_MAX)
            .unwrap_err()
            .to_string();
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(e.contains("is a FIFO, not a regular file"), "{e}");
        assert!(e.contains(&fifo.display().to_string()), "{e}");
        assert!(e.starts_with("read PIN file"), "{e}");
    }

    #[test]
    fn dev_zero_and_a_directory_are_refused() {
        let e = read_bounded("read key blob", Path::new("/dev/zero"), BLOB_MAX)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/dev/zero") && e.contains("is a character device"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = read_bounded_string("read configuration", dir.path(), CONFIG_MAX)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a directory"), "{e}");
    }

    #[test]
    fn a_file_over_the_limit_is_refused_and_one_at_the_limit_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.pem");
        std::fs::write(&p, vec![b'a'; 1025]).unwrap();
        let e = read_bounded("read certificate chain", &p, 1024)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is 1025 bytes, larger than the limit of 1024"), "{e}");
        assert!(e.contains(&p.display().to_string()), "{e}");
        std::fs::write(&p, vec![b'a'; 1024]).unwrap();
        assert_eq!(read_bounded("read certificate chain", &p, 1024).unwrap().len(), 1024);
        let e = read_bounded("read x", &dir.path().join("missing"), 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing"), "{e}");
    }

    #[test]
    fn a_symlink_to_a_regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, "x").unwrap();
        let l = dir.path().join("l");
        std::os::unix::fs::symlink(&p, &l).unwrap();
        assert_eq!(read_bounded_string("read", &l, 10).unwrap().as_str(), "x");
    }

    #[test]
    fn the_readers_of_the_crate_refuse_a_fifo_and_dev_zero() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("hsm.toml");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let start = Instant::now();
        let e = crate::config::Config::from_file(&fifo).unwrap_err().to_string();
        assert!(e.contains("is a FIFO") && e.contains("hsm.toml"), "{e}");
        // A key token `file:/dev/zero` and a certificate chain at /dev/zero.
        let e = crate::file::FileKey::from_file(Path::new("/dev/zero"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/dev/zero") && e.contains("character device"), "{e}");
        let e = crate::pem::read_file("read certificate chain", &fifo)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a FIFO"), "{e}");
        assert!(start.elapsed() < Duration::from_secs(2));
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; CONFIG_MAX as usize + 1]).unwrap();
        let e = crate::config::Config::from_file(&big).unwrap_err().to_string();
        assert!(e.contains("larger than the limit"), "{e}");
    }
}
