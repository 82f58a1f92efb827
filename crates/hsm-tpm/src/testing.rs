//! A swtpm instance for tests and benchmarks (feature `testing`): its own TCP port pair and
//! state directory, stopped (`swtpm_ioctl -s`, then kill) on drop. A missing swtpm is an
//! error, never a skip. [`Tabrmd`] puts the tpm2-abrmd resource manager in front of one.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hsm_core::{Error, Result};

/// A swtpm simulator on a free local port, its state in a temporary directory.
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
        // One start at a time in this process: two tests picking ports at once could get the
        // same free pair, and the second swtpm, failing to bind, would pass for ready because
        // the first one answers on the port: both tests then share one single-connection TPM
        // and stall each other (seen as 60 s command timeouts in the full suite).
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = STARTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
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
                // Ours, not another process's swtpm on the same port: still running.
                return Ok(self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None))));
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

    /// The simulator's state directory.
    pub fn state_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id of the running swtpm (to freeze it with SIGSTOP in tests).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stop the simulator (also done on drop).
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

/// tpm2-abrmd, the TPM2 access broker and resource manager many devices share their TPM
/// through, over a [`Swtpm`] of its own and on a private D-Bus session bus (a `dbus-daemon`
/// started here). Clients reach it with [`Tabrmd::tcti`] once `DBUS_SESSION_BUS_ADDRESS` is
/// [`Tabrmd::bus_address`] in their environment (the TCTI reads it; a process has one session
/// bus, so one `Tabrmd` per process). Needs the packages `tpm2-abrmd`, `libtss2-tcti-tabrmd0`
/// and `dbus-daemon`; a missing one is an error, never a skip. Everything stops on drop.
pub struct Tabrmd {
    abrmd: Option<Child>,
    dbus: Option<Child>,
    address: String,
    swtpm: Swtpm,
}

impl Tabrmd {
    /// Start swtpm, a D-Bus daemon and tpm2-abrmd in front of the simulator; an error when one is missing
    /// or does not come up.
    pub fn start() -> Result<Self> {
        let swtpm = Swtpm::start()?;
        let mut dbus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::io("start dbus-daemon (Debian package dbus-daemon)", "dbus-daemon", e))?;
        let mut address = String::new();
        if let Some(out) = dbus.stdout.take() {
            use std::io::BufRead as _;
            std::io::BufReader::new(out)
                .read_line(&mut address)
                .map_err(|e| Error::io("read the D-Bus address", "dbus-daemon", e))?;
        }
        let address = address.trim().to_string();
        let mut t = Tabrmd {
            abrmd: None,
            dbus: Some(dbus),
            address,
            swtpm,
        };
        if t.address.is_empty() {
            return Err(Error::Internal("dbus-daemon printed no bus address".into()));
        }
        let abrmd = Command::new("tpm2-abrmd")
            // --allow-root: tests run as root in containers; it changes nothing otherwise.
            .args(["--session", "--allow-root", "--flush-all"])
            .arg(format!("--tcti={}", t.swtpm.tcti()))
            .env("DBUS_SESSION_BUS_ADDRESS", &t.address)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io("start tpm2-abrmd (Debian package tpm2-abrmd)", "tpm2-abrmd", e))?;
        t.abrmd = Some(abrmd);
        t.wait_ready()?;
        Ok(t)
    }

    /// Wait until tpm2-abrmd owns its bus name (it exits with a message when it cannot).
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(c) = self.abrmd.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    let mut message = String::new();
                    if let Some(mut err) = c.stderr.take() {
                        use std::io::Read as _;
                        let _ = err.read_to_string(&mut message);
                    }
                    self.abrmd = None;
                    return Err(Error::Internal(format!(
                        "tpm2-abrmd exited ({status}): {}",
                        message.trim()
                    )));
                }
            }
            let owned = Command::new("dbus-send")
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:com.intel.tss2.Tabrmd",
                ])
                .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
                .output()
                .map_err(|e| Error::io("run dbus-send (Debian package dbus-bin)", "dbus-send", e))?;
            if String::from_utf8_lossy(&owned.stdout).contains("boolean true") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(Error::Internal(
            "tpm2-abrmd did not register on the D-Bus within 10 s".into(),
        ))
    }

    /// The TCTI string for clients (with `DBUS_SESSION_BUS_ADDRESS` set to [`Tabrmd::bus_address`]).
    pub fn tcti(&self) -> String {
        "tabrmd:bus_name=com.intel.tss2.Tabrmd,bus_type=session".into()
    }

    /// The private session bus (the value for `DBUS_SESSION_BUS_ADDRESS`).
    pub fn bus_address(&self) -> &str {
        &self.address
    }

    /// The swtpm under the resource manager.
    pub fn swtpm(&mut self) -> &mut Swtpm {
        &mut self.swtpm
    }
}

impl Drop for Tabrmd {
    fn drop(&mut self) {
        for mut child in [self.abrmd.take(), self.dbus.take()].into_iter().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
