//! Test fixture: one swtpm per test, on its own TCP port pair, state in a temp dir, stopped
//! (swtpm_ioctl -s, then kill) on Drop. A missing swtpm fails the test.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Swtpm {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

fn free_port_pair() -> u16 {
    loop {
        let a = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = a.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

impl Swtpm {
    pub fn start() -> Self {
        for _ in 0..10 {
            let mut s = Swtpm {
                dir: tempfile::tempdir().expect("temp dir"),
                port: free_port_pair(),
                child: None,
            };
            if s.spawn() {
                return s;
            }
        }
        panic!("could not start swtpm on a free port pair");
    }

    fn spawn(&mut self) -> bool {
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
            .unwrap_or_else(|e| panic!("swtpm is required for these tests (Debian package swtpm): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    self.child = None;
                    return false;
                }
            }
            if TcpStream::connect(("127.0.0.1", self.port + 1)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }

    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
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
    pub fn restart(&mut self) {
        self.stop();
        for _ in 0..50 {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("swtpm did not restart on port {}", self.port);
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}
