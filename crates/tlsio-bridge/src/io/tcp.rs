//! The bridge's own transport: a non-blocking TCP socket. An IP address connects at once
//! (non-blocking `connect`); a host name is resolved on a short-lived thread so that neither
//! `open` nor `dowork` ever waits for DNS.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::transport::Transport;

/// How long resolving and connecting may take before `open` fails.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

enum State {
    Idle,
    Resolving {
        rx: mpsc::Receiver<io::Result<Vec<SocketAddr>>>,
        started: Instant,
    },
    Connecting {
        socket: Socket,
        rest: Vec<SocketAddr>,
        started: Instant,
    },
    Connected(TcpStream),
}

/// A non-blocking TCP client socket.
pub struct TcpTransport {
    state: State,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self.state {
            State::Idle => "idle",
            State::Resolving { .. } => "resolving",
            State::Connecting { .. } => "connecting",
            State::Connected(_) => "connected",
        };
        f.debug_struct("TcpTransport").field("state", &s).finish()
    }
}

impl Default for TcpTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl TcpTransport {
    /// A transport with no socket yet (`open` makes one).
    pub fn new() -> Self {
        TcpTransport { state: State::Idle }
    }

    /// Start a non-blocking connect to the first of `addrs`, keeping the others to try next.
    fn connect_next(mut addrs: Vec<SocketAddr>, started: Instant, last: Option<io::Error>) -> io::Result<State> {
        if addrs.is_empty() {
            return Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address to connect to")));
        }
        let addr = addrs.remove(0);
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        socket.set_nodelay(true)?;
        match socket.connect(&SockAddr::from(addr)) {
            Ok(()) => Ok(State::Connected(socket.into())),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) || e.kind() == io::ErrorKind::WouldBlock => {
                Ok(State::Connecting {
                    socket,
                    rest: addrs,
                    started,
                })
            }
            Err(e) => Self::connect_next(addrs, started, Some(e)),
        }
    }

    fn stream(&mut self) -> io::Result<&mut TcpStream> {
        match &mut self.state {
            State::Connected(s) => Ok(s),
            _ => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the TCP socket is not connected",
            )),
        }
    }
}

fn timed_out(started: Instant) -> bool {
    started.elapsed() > CONNECT_TIMEOUT
}

impl Transport for TcpTransport {
    fn open(&mut self, host: &str, port: u16) -> io::Result<()> {
        let started = Instant::now();
        self.state = if let Ok(ip) = host.parse::<IpAddr>() {
            Self::connect_next(vec![SocketAddr::new(ip, port)], started, None)?
        } else {
            let (tx, rx) = mpsc::channel();
            let name = host.to_string();
            std::thread::Builder::new().name("tlsio-dns".into()).spawn(move || {
                let r = (name.as_str(), port).to_socket_addrs().map(|a| a.collect::<Vec<_>>());
                // The IO may have been closed meanwhile: nobody listens any more.
                let _ = tx.send(r);
            })?;
            State::Resolving { rx, started }
        };
        Ok(())
    }

    fn poll_open(&mut self) -> io::Result<bool> {
        loop {
            match &mut self.state {
                State::Idle => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        "the TCP socket was not opened",
                    ));
                }
                State::Connected(_) => return Ok(true),
                State::Resolving { rx, started } => match rx.try_recv() {
                    Ok(Ok(addrs)) => {
                        let started = *started;
                        self.state = Self::connect_next(addrs, started, None)?;
                    }
                    Ok(Err(e)) => return Err(io::Error::new(e.kind(), format!("resolving the host name: {e}"))),
                    Err(mpsc::TryRecvError::Empty) if timed_out(*started) => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "resolving the host name timed out",
                        ));
                    }
                    Err(mpsc::TryRecvError::Empty) => return Ok(false),
                    Err(mpsc::TryRecvError::Disconnected) => {
                        return Err(io::Error::other("the resolver thread ended without an answer"));
                    }
                },
                State::Connecting { socket, rest, started } => {
                    if let Some(e) = socket.take_error()? {
                        let (rest, started) = (std::mem::take(rest), *started);
                        self.state = Self::connect_next(rest, started, Some(e))?;
                        continue;
                    }
                    match socket.peer_addr() {
                        Ok(_) => {
                            let State::Connecting { socket, .. } = std::mem::replace(&mut self.state, State::Idle)
                            else {
                                return Err(io::Error::other("TCP transport state changed unexpectedly"));
                            };
                            self.state = State::Connected(socket.into());
                            return Ok(true);
                        }
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                            if timed_out(*started) {
                                return Err(io::Error::new(io::ErrorKind::TimedOut, "connecting timed out"));
                            }
                            return Ok(false);
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream()?.read(buf)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream()?.write(buf)
    }

    fn close(&mut self) {
        if let State::Connected(s) = &self.state {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.state = State::Idle;
    }
}
