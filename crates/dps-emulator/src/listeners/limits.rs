//! What every listener of the emulator shares: one bound on the connections open at once (over all
//! listeners), one thread per connection, and the deadline that each read waits no later than.
//!
//! A listener hands [`accept_loop`] its socket and a function serving one connection; the function gets a
//! [`Slot`] to say when the connection waits for its client (then it may be closed to make room) and a
//! [`DeadlineStream`] whose reads fail once the current deadline has passed.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The open connections of every listener, so that shutdown can close them and a full server can close the
/// one idle the longest.
#[derive(Default)]
pub(crate) struct Limiter {
    max: usize,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Connection>>,
    closed: Condvar,
}

struct Connection {
    stream: TcpStream,
    /// Since when it has been waiting for its client; `None` while a request is handled or after it was closed.
    idle_since: Option<Instant>,
}

impl Limiter {
    /// At most `max` connections at once (at least one).
    pub(crate) fn new(max: usize) -> Arc<Limiter> {
        Arc::new(Limiter {
            max: max.max(1),
            ..Limiter::default()
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Connection>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, stream: &TcpStream) -> Option<u64> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let stream = stream.try_clone().ok()?;
        self.lock().insert(
            id,
            Connection {
                stream,
                idle_since: Some(Instant::now()),
            },
        );
        Some(id)
    }

    fn set_idle(&self, id: u64, idle: bool) {
        if let Some(c) = self.lock().get_mut(&id) {
            c.idle_since = idle.then(Instant::now);
        }
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
        self.closed.notify_all();
    }

    /// Wait until fewer than `max` connections are open, closing the one idle the longest while none is free.
    fn make_room(&self, stop: &AtomicBool) {
        let mut open = self.lock();
        while open.len() >= self.max && !stop.load(Ordering::SeqCst) {
            let oldest = open
                .iter_mut()
                .filter(|(_, c)| c.idle_since.is_some())
                .min_by_key(|(_, c)| c.idle_since);
            if let Some((id, c)) = oldest {
                tracing::info!(
                    connection = id,
                    "connection limit reached: closing the longest idle connection"
                );
                let _ = c.stream.shutdown(Shutdown::Both);
                c.idle_since = None;
            }
            open = self
                .closed
                .wait_timeout(open, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn close(&self, ids: &[u64]) {
        let open = self.lock();
        for id in ids {
            if let Some(c) = open.get(id) {
                let _ = c.stream.shutdown(Shutdown::Both);
            }
        }
    }
}

/// One connection's place in the [`Limiter`].
pub(crate) struct Slot {
    limiter: Arc<Limiter>,
    id: u64,
}

impl Slot {
    /// `true` when the connection starts waiting for its client, `false` while it handles a request.
    pub(crate) fn idle(&self, idle: bool) {
        self.limiter.set_idle(self.id, idle);
    }
}

/// The deadline of a connection's reads, shared by the layers over it (TLS, HTTP, WebSocket, MQTT).
pub(crate) type Deadline = Rc<Cell<Option<Instant>>>;

/// The socket under TLS: each read waits no later than the current deadline; after it, reads fail.
pub(crate) struct DeadlineStream {
    pub(crate) stream: TcpStream,
    pub(crate) deadline: Deadline,
}

impl DeadlineStream {
    pub(crate) fn new(stream: TcpStream, deadline: Option<Instant>) -> Self {
        DeadlineStream {
            stream,
            deadline: Rc::new(Cell::new(deadline)),
        }
    }

    pub(crate) fn set_deadline(&self, deadline: Option<Instant>) {
        self.deadline.set(deadline);
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(deadline) = self.deadline.get() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "the deadline passed"));
            }
            self.stream.set_read_timeout(Some(left))?;
        } else {
            self.stream.set_read_timeout(None)?;
        }
        self.stream.read(buf)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// Accept on `listener` until `stop` is set (then wake it with a connection), serving each connection on a
/// thread of its own with `serve`, within the bound of `limiter`. At the end, closes this listener's
/// connections and joins their threads.
pub(crate) fn accept_loop<F>(listener: TcpListener, limiter: Arc<Limiter>, stop: &AtomicBool, name: &str, serve: F)
where
    F: Fn(TcpStream, &Slot) + Send + Sync + 'static,
{
    let serve = Arc::new(serve);
    let mut workers: Vec<(u64, JoinHandle<()>)> = Vec::new();
    for incoming in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match incoming {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, listener = name, "accept failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        workers.retain(|(_, w)| !w.is_finished());
        limiter.make_room(stop);
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Some(id) = limiter.add(&stream) else {
            tracing::warn!(listener = name, "cannot track a connection; closing it");
            continue;
        };
        let slot = Slot {
            limiter: limiter.clone(),
            id,
        };
        let serve = serve.clone();
        let spawned = std::thread::Builder::new().name(format!("{name}-{id}")).spawn(move || {
            serve(stream, &slot);
            slot.limiter.remove(slot.id);
        });
        match spawned {
            Ok(handle) => workers.push((id, handle)),
            Err(e) => {
                tracing::warn!(error = %e, listener = name, "cannot start a connection thread");
                limiter.remove(id);
            }
        }
    }
    drop(listener);
    let ids: Vec<u64> = workers.iter().map(|(id, _)| *id).collect();
    limiter.close(&ids);
    for (_, w) in workers {
        let _ = w.join();
    }
}

/// The deadlines of a session that outlives one request (MQTT, over TLS or WebSockets): the connection's read
/// deadline, the server's request timeout, and the connection's place in the limiter.
pub(crate) struct SessionLimits<'a> {
    pub(crate) deadline: Deadline,
    pub(crate) request_timeout: Duration,
    pub(crate) slot: &'a Slot,
}
