//! Waiting on an event with a deadline: the one way tests wait for something to happen.
//!
//! [`until`] checks a condition again and again (first at once, then every few milliseconds, up to
//! 20 ms apart) and panics, naming what it waited for, when the deadline passes. The events tests
//! wait on have helpers: a port that accepts or refuses, a listener that took its connections, a file
//! that appears, a line from a child, a child's exit, a socket the peer closed.

use std::io::{BufRead, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// The deadline most waits use: long enough for a loaded CI machine, short enough to fail a hung test.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Check `ready` until it gives a value; panic with `what` after `limit`.
pub fn until<T>(what: &str, limit: Duration, mut ready: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(value) = ready() {
            return value;
        }
        let elapsed = started.elapsed();
        assert!(elapsed < limit, "waited {elapsed:?} for {what}");
        std::thread::sleep(pause.min(limit - elapsed));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Until `ready` is true.
pub fn until_true(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    until(what, limit, || ready().then_some(()))
}

fn address(addr: impl ToSocketAddrs) -> SocketAddr {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .expect("a socket address")
}

/// Until a TCP connection to `addr` succeeds.
pub fn accepts(addr: impl ToSocketAddrs) {
    let addr = address(addr);
    until_true(&format!("{addr} to accept connections"), DEADLINE, || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
    });
}

/// Until a TCP connection to `addr` is refused (the listener is gone).
pub fn refuses(addr: impl ToSocketAddrs) {
    let addr = address(addr);
    until_true(&format!("{addr} to refuse connections"), DEADLINE, || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err()
    });
}

/// The accept queue of the IPv4 listener on `port` (the kernel's `/proc/net/tcp`: for a listening
/// socket, `rx_queue` counts connections the application has not accepted yet).
pub fn accept_queue(port: u16) -> Option<usize> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let local = format!(":{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl, local_address, rem_address, st (0A = LISTEN), tx_queue:rx_queue, ...
        let (address, state, queues) = (fields.get(1)?, fields.get(3)?, fields.get(4)?);
        if !address.ends_with(&local) || *state != "0A" {
            return None;
        }
        usize::from_str_radix(queues.split_once(':')?.1, 16).ok()
    })
}

/// The port of `addr` (for [`accept_queue`]).
pub fn accept_queue_port(addr: impl ToSocketAddrs) -> u16 {
    address(addr).port()
}

/// The bytes received and not yet read on the established IPv4 connections whose local port is
/// `port` (`/proc/net/tcp`): what a stopped server (a SIGSTOPped swtpm) has been sent.
pub fn unread(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (address, state, queues) = (fields.get(1)?, fields.get(3)?, fields.get(4)?);
            if !address.ends_with(&local) || *state == "0A" {
                return None;
            }
            usize::from_str_radix(queues.split_once(':')?.1, 16).ok()
        })
        .sum()
}

/// Until the listener on `addr` has accepted every connection made to it so far.
pub fn accepted(addr: impl ToSocketAddrs) {
    let port = address(addr).port();
    until_true(
        &format!("the listener on port {port} to accept its connections"),
        DEADLINE,
        || accept_queue(port) == Some(0),
    );
}

/// Until `path` exists.
pub fn file(path: &Path) {
    until_true(&format!("{} to appear", path.display()), DEADLINE, || path.exists());
}

/// Read lines from `reader` until one satisfies `wanted`; that line. Panics at end of input or
/// after `limit` (the read happens on a thread of its own, so a silent peer cannot hang the test).
pub fn line<R: Read + Send + 'static>(
    reader: R,
    limit: Duration,
    wanted: impl Fn(&str) -> bool + Send + 'static,
) -> (String, std::io::BufReader<R>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(reader);
        let mut seen = Vec::new();
        loop {
            let mut l = String::new();
            match reader.read_line(&mut l) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Err(seen));
                    return;
                }
                Ok(_) if wanted(&l) => {
                    let _ = tx.send(Ok((l, reader)));
                    return;
                }
                Ok(_) => seen.push(l),
            }
        }
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(found)) => found,
        Ok(Err(seen)) => panic!("the stream ended without the line awaited; it said: {seen:?}"),
        Err(_) => panic!("no line awaited within {limit:?}"),
    }
}

/// Until `child` exits; its status.
pub fn exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let pid = child.id();
    until(&format!("process {pid} to exit"), limit, || {
        child.try_wait().expect("query the child's status")
    })
}

/// Until the peer closes `stream` (end of stream or reset); how long that took.
pub fn closed(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        assert!(!left.is_zero(), "still open after {limit:?}");
        stream.set_read_timeout(Some(left)).expect("set a read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return started.elapsed(),
        }
    }
}
