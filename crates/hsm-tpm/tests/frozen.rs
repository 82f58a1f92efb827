#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Issue 21, item 2: a TPM that freezes while we connect fails after about its command
//! timeout and does not hold up the open of another, healthy TPM in the same process.

mod common;

use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Swtpm;
use hsm_tpm::{HierarchyAuth, Tpm, TpmConn, TpmOptions};

/// A TPM endpoint that accepts connections (on the command port and the control port, as
/// swtpm has them) and never answers. Each accepted connection is reported on the channel and
/// kept open until the listener's threads end with the process.
fn silent_tpm() -> (String, mpsc::Receiver<u16>) {
    let (tx, rx) = mpsc::channel();
    let (a, port) = loop {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if port < u16::MAX {
            break (a, port);
        }
    };
    let b = match TcpListener::bind(("127.0.0.1", port + 1)) {
        Ok(b) => b,
        Err(_) => return silent_tpm(),
    };
    for l in [a, b] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for s in l.incoming() {
                let Ok(s) = s else { break };
                let _ = tx.send(s.local_addr().map(|a| a.port()).unwrap_or(0));
                held.push(s);
            }
        });
    }
    (format!("swtpm:host=127.0.0.1,port={port}"), rx)
}

#[test]
fn a_tpm_frozen_while_connecting_fails_in_its_timeout_and_blocks_no_other_tpm() {
    let healthy = Swtpm::start();
    let (frozen_tcti, accepted) = silent_tpm();

    let mut frozen = TpmOptions::new(frozen_tcti.clone());
    frozen.command_timeout = Duration::from_millis(1500);
    let started = Instant::now();
    let frozen_open = std::thread::spawn(move || {
        let r = Tpm::open(frozen);
        (r.err().map(|e| e.to_string()), started.elapsed())
    });
    // The frozen open is under way once the TCTI has connected to the silent endpoint.
    accepted
        .recv_timeout(Duration::from_secs(10))
        .expect("the TCTI connected to the silent TPM");

    let t0 = Instant::now();
    let conn = TpmConn::connect(&healthy.tcti(), HierarchyAuth::default(), Duration::from_secs(5)).unwrap();
    let healthy_took = t0.elapsed();
    assert_eq!(
        conn.with_context(|ctx| ctx.get_random(8).map(|r| r.len()))
            .unwrap()
            .unwrap(),
        8
    );

    let (e, frozen_took) = frozen_open.join().unwrap();
    let e = e.expect("opening a TPM that never answers fails");
    assert!(
        healthy_took < Duration::from_millis(1500),
        "the healthy TPM waited {healthy_took:?} for the frozen one"
    );
    assert!(
        frozen_took >= Duration::from_millis(1400) && frozen_took < Duration::from_millis(4000),
        "the frozen TPM failed after {frozen_took:?}, not about its command timeout: {e}"
    );
    assert!(
        e.contains(&frozen_tcti) && e.contains("1500 ms") && e.contains("command_timeout"),
        "{e}"
    );
}

/// The same with a real swtpm stopped with SIGSTOP before it is opened: the open fails after
/// about the command timeout, and a healthy swtpm opened meanwhile is not held up.
#[test]
fn a_stopped_swtpm_fails_the_open_within_the_command_timeout() {
    let healthy = Swtpm::start();
    let stopped = Swtpm::start();
    stopped.signal("STOP");

    let mut o = TpmOptions::new(stopped.tcti());
    o.command_timeout = Duration::from_millis(1000);
    let started = Instant::now();
    let opening = std::thread::spawn(move || {
        let r = Tpm::open(o);
        (r.err().map(|e| e.to_string()), started.elapsed())
    });
    let t0 = Instant::now();
    TpmConn::connect(&healthy.tcti(), HierarchyAuth::default(), Duration::from_secs(5)).unwrap();
    let healthy_took = t0.elapsed();
    let (e, took) = opening.join().unwrap();
    // Killed, not continued: a graceful stop (swtpm_ioctl -s) of a swtpm that was stopped
    // mid-connect takes about 20 s.
    stopped.signal("KILL");
    let e = e.expect("opening a stopped swtpm fails");
    assert!(healthy_took < Duration::from_millis(1000), "{healthy_took:?}");
    assert!(took < Duration::from_millis(3000), "{took:?}: {e}");
    assert!(e.contains(&stopped.tcti()) && e.contains("1000 ms"), "{e}");
}
