//! A swtpm instance for tests and benchmarks (feature `testing`): its own TCP port pair and
//! state directory, stopped (`swtpm_ioctl -s`, then kill) on drop. A missing swtpm is an
//! error, never a skip.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hsm_core::{Error, Result};

pub struct Swtpm {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

fn free_port_pair() -> Result<u16> {
    for _ in 0..100 {
        let a = TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("bind a free port", "127.0.0.1:0", e))?;
        let port = a
            .local_addr()
            .map_err(|e| Error::io("read the bound port", "127.0.0.1:0", e))?
            .port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return Ok(port);
        }
    }
    Err(Error::Internal("no free TCP port pair on 127.0.0.1".into()))
}

impl Swtpm {
    /// Start a fresh swtpm (empty state) on a free port pair.
    pub fn start() -> Result<Self> {
        for _ in 0..10 {
            let mut s = Swtpm {
                dir: tempfile::tempdir().map_err(|e| Error::io("create a temp dir", std::env::temp_dir(), e))?,
                port: free_port_pair()?,
                child: None,
            };
            if s.spawn()? {
                return Ok(s);
            }
        }
        Err(Error::Internal("could not start swtpm on a free port pair".into()))
    }

    fn spawn(&mut self) -> Result<bool> {
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--server"])
            .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", self.port))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", self.port + 1))
            .arg("--tpmstate")
            .arg(format!("dir={}", self.dir.path().display()))
            .args(["--flags", "not-need-init,startup-clear"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::io("start swtpm (Debian package swtpm)", "swtpm", e))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    self.child = None;
                    return Ok(false);
                }
            }
            if TcpStream::connect(("127.0.0.1", self.port + 1)).is_ok() {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        Ok(false)
    }

    /// The TCTI string of this instance.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    pub fn state_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("swtpm_ioctl")
                .args(["--tcp", &format!("127.0.0.1:{}", self.port + 1), "-s"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    _ if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }

    /// Stop and start again on the same ports with the same state (persistent keys survive).
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        for _ in 0..50 {
            if self.spawn()? {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(Error::Internal(format!("swtpm did not restart on port {}", self.port)))
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}
