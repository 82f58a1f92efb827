//! How an AMQP connection ends early ([`Ended`]), the frame bound, accepting a link within a deadline, and
//! waiting on a link no longer than the connection lives ([`unless_closed`]):
//! shared by the DPS (`connection.rs`) and the IoT Hub (`hub.rs`) sides of the listener.

use std::io;

use std::future::Future;

use fe2o3_amqp::acceptor::{LinkAcceptor, LinkEndpoint, ListenerConnectionHandle, ListenerSessionHandle};
use fe2o3_amqp::types::performatives::Attach;
use tokio::time::{Instant, timeout_at};

/// Largest AMQP frame (and message) accepted from a device: a DPS request or a hub message is a few kilobytes
/// at most.
pub(super) const MAX_FRAME: u32 = 64 * 1024;

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Ended {
    #[error("{0} did not complete within the request deadline")]
    Deadline(&'static str),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Refused(String),
}

pub(crate) fn io(what: &'static str) -> impl FnOnce(io::Error) -> Ended {
    move |source| Ended::Io { what, source }
}

/// Accept an incoming attach by `deadline`.
pub(super) async fn accept_link(
    attach: Attach,
    session: &mut ListenerSessionHandle,
    deadline: Instant,
) -> Result<LinkEndpoint, Ended> {
    let acceptor = LinkAcceptor::builder().max_message_size(u64::from(MAX_FRAME)).build();
    timeout_at(deadline, acceptor.accept_incoming_attach(attach, session))
        .await
        .map_err(|_| Ended::Deadline("attaching a link"))?
        .map_err(|e| Ended::Refused(format!("attaching a link: {e}")))
}

/// `step`'s outcome, or `None` once the connection has ended (the peer closed it, or its stream failed)
/// first. A peer may end a connection with `close` alone (AMQP 1.0, 2.4.3 and 2.7.9: the close ends its
/// sessions and links); fe2o3's engine answers that close, but a link waiting for the peer (an unsettled
/// answer's outcome) is not told, so each wait on a link races the connection's end.
pub(super) async fn unless_closed<F: Future>(connection: &mut ListenerConnectionHandle, step: F) -> Option<F::Output> {
    tokio::select! {
        biased;
        out = step => Some(out),
        // Resolves when the connection's engine stops; at once (an error) if it was already seen stopped.
        _ = connection.on_close() => None,
    }
}
