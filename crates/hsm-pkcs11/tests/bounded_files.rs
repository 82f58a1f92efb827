//! A PIN file that is a FIFO, a device or too large is refused at once with its path (issue 12).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use hsm_pkcs11::read_pin_file;

#[test]
fn a_pin_file_that_is_a_fifo_or_dev_zero_or_huge_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pin");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // On a thread, so a reader that blocks on the FIFO fails this test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || tx.send(read_pin_file(&path).map(|_| ()).unwrap_err().to_string()));
    let e = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("reading a FIFO as a PIN file blocked");
    assert!(
        e.contains("is a FIFO") && e.contains(&fifo.display().to_string()),
        "{e}"
    );
    let e = read_pin_file(Path::new("/dev/zero")).unwrap_err().to_string();
    assert!(e.contains("/dev/zero") && e.contains("character device"), "{e}");
    let big = dir.path().join("big-pin");
    std::fs::write(&big, vec![b'1'; 1 << 20]).unwrap();
    let e = read_pin_file(&big).unwrap_err().to_string();
    assert!(e.contains("larger than the limit"), "{e}");
}
