//! The DPS device API over AMQP 1.0 and TLS (issue 23), on its own port of 127.0.0.1 (DPS: 5671), with
//! fe2o3-amqp's acceptor for the protocol and our rustls `ServerConfig` (the HTTPS one) for TLS.
//!
//! As the C SDK (`prov_transport_amqp_common.c`) and the Node SDK (`azure-iot-provisioning-device-amqp`)
//! speak it: after TLS, SASL PLAIN with authcid `{idScope}/registrations/{registrationId}` and the SAS token
//! as password (symmetric keys), or no SASL at all (or ANONYMOUS) with a TLS client certificate (x509); one
//! session; a sender and a receiver link on `amqps://{host}/{idScope}/registrations/{registrationId}` with
//! the link property `com.microsoft:api-version`. Requests are messages with the application properties
//! `iotdps-operation-type` (`iotdps-register`, `iotdps-get-operationstatus`) and `iotdps-operation-id`, the
//! body the JSON of HTTPS; each goes to the HTTPS service logic (`Service::handle`), and its answer comes back
//! on the receiver link with the request's `correlation-id` (else its `message-id`), the JSON body as a data
//! section, and the application property `retry-after` (seconds) when HTTPS would send `Retry-After`.
//!
//! Each connection has a thread of its own within the shared connection bound (`limits.rs`), running a
//! current-thread tokio runtime; TLS, SASL, open, begin and both attaches must complete within the request
//! deadline, and so must each next request.

mod connection;
mod prefixed;
mod sasl;
pub(crate) mod ws;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::ServerConfig;

use crate::Error;
use crate::limits::Limiter;
use crate::service::Service;

/// Largest AMQP frame (and message) accepted from a device: a DPS request is a few kilobytes at most.
pub(crate) const MAX_FRAME: u32 = 64 * 1024;

/// The AMQP listener; dropping it closes the listener and every connection and joins the threads.
pub(crate) struct AmqpListener {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AmqpListener {
    /// Listen on 127.0.0.1:`port` (0: any free port), within the connection bound of `limiter` (shared with
    /// the other listeners) and with the request deadline of HTTPS.
    pub(crate) fn start(
        port: u16,
        tls: Arc<ServerConfig>,
        service: Arc<Service>,
        limiter: Arc<Limiter>,
        request_timeout: Duration,
    ) -> Result<Self, Error> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).map_err(|source| Error::Socket {
            op: "binding the AMQP listener on",
            port,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| Error::Socket {
            op: "reading the address of the AMQP listener on",
            port,
            source,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("dps-emulator-amqp".to_string())
            .spawn(move || {
                crate::limits::accept_loop(
                    listener,
                    limiter,
                    &thread_stop,
                    "dps-emulator-amqp",
                    move |stream, slot| {
                        connection::serve_tcp(stream, tls.clone(), service.clone(), request_timeout, slot)
                    },
                )
            })
            .map_err(|source| Error::Socket {
                op: "starting the AMQP listener thread for",
                port: addr.port(),
                source,
            })?;
        tracing::info!(%addr, "DPS emulator AMQP listening");
        Ok(AmqpListener {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for AmqpListener {
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2));
        if thread.join().is_err() {
            tracing::error!("the DPS emulator AMQP listener thread panicked");
        }
    }
}

impl crate::Emulator {
    /// `127.0.0.1:PORT` of the AMQP listener (same server certificate and enrollments as HTTPS).
    pub fn amqp_endpoint(&self) -> String {
        self.amqp.addr().to_string()
    }
}
