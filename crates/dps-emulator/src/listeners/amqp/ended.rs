//! How an AMQP connection ends early ([`Ended`]), the frame bound, and accepting a link within a deadline:
//! shared by the DPS (`connection.rs`) and the IoT Hub (`hub.rs`) sides of the listener.

use std::io;

use fe2o3_amqp::acceptor::{LinkAcceptor, LinkEndpoint, ListenerSessionHandle};
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
