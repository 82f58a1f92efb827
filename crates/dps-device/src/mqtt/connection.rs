//! An MQTT connection as DPS (`mqtt/mod.rs`) and IoT Hub (`hub_renewal.rs`) both use it: rumqttc's
//! client and event loop, the CONNACK and SUBACK awaited, and rumqttc's errors read into ours (TLS,
//! refused connection, proxy, WebSocket upgrade, oversized or garbage packets).

use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::time::Instant;

use crate::error::{Source, sanitize};
use crate::{Error, MAX_BODY, Transport};

/// An MQTT connection as DPS and IoT Hub (`hub_renewal.rs`) both use it: rumqttc's client and its
/// event loop, polled by whoever waits for an answer.
pub(crate) struct MqttSession {
    pub(crate) transport: Transport,
    pub(crate) client: AsyncClient,
    events: EventLoop,
    /// The connection ended: the error, until the packets read before it have been handed out.
    ended: Option<Error>,
    /// The connection ended (rumqttc would connect again on the next poll: it is not polled any more).
    gone: bool,
}

impl MqttSession {
    /// Connect with `options`, wait for the CONNACK, subscribe to `topic` and wait for its SUBACK;
    /// `server` names the peer in the error of a refused subscription.
    pub(crate) async fn open(
        options: MqttOptions,
        transport: Transport,
        topic: &str,
        server: &str,
    ) -> Result<MqttSession, Error> {
        let (client, events) = AsyncClient::new(options, 8);
        let mut session = MqttSession {
            transport,
            client,
            events,
            ended: None,
            gone: false,
        };
        loop {
            if let Packet::ConnAck(_) = session.next_packet().await? {
                break;
            }
        }
        session
            .client
            .subscribe(topic, QoS::AtLeastOnce)
            .await
            .map_err(|e| client_error(e, transport))?;
        loop {
            if let Packet::SubAck(ack) = session.next_packet().await? {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    return Err(Error::Protocol {
                        transport,
                        message: format!("the {server} refused the subscription to {topic}"),
                    });
                }
                return Ok(session);
            }
        }
    }

    /// Send DISCONNECT and wait until rumqttc has written and flushed it, or `deadline` passes.
    pub(crate) async fn close(&mut self, deadline: Instant) -> Result<(), Error> {
        let t = self.transport;
        if self.gone {
            // Nothing to say goodbye on.
            return Ok(());
        }
        self.client.disconnect().await.map_err(|e| client_error(e, t))?;
        let sent = async {
            loop {
                match self.events.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => {
                        self.gone = true;
                        return Err(connection_error(e, t));
                    }
                }
            }
        };
        match tokio::time::timeout_at(deadline, sent).await {
            Ok(result) => result,
            Err(_) => Err(Error::transport(t, "the DISCONNECT was not sent in time")),
        }
    }

    /// The next packet the server sent (what the client sent is skipped).
    pub(crate) async fn next_packet(&mut self) -> Result<Packet, Error> {
        loop {
            if self.gone {
                // rumqttc keeps the packets it read in the same go as the end of the connection in its
                // queue (the answer and the close come together): those first, then the error.
                while let Some(event) = self.events.state.events.pop_front() {
                    if let Event::Incoming(p) = event {
                        return Ok(p);
                    }
                }
                return Err(self
                    .ended
                    .take()
                    .unwrap_or_else(|| Error::transport(self.transport, "the connection had already ended")));
            }
            match self.events.poll().await {
                Ok(Event::Incoming(p)) => return Ok(p),
                Ok(Event::Outgoing(_)) => {}
                Err(e) => {
                    self.ended = Some(connection_error(e, self.transport));
                    self.gone = true;
                }
            }
        }
    }
}

pub(crate) fn client_error(e: rumqttc::ClientError, t: Transport) -> Error {
    Error::transport_from(t, format!("the MQTT event loop is gone: {e}"), e)
}

/// rumqttc's connection error read into ours; a transport or TLS error keeps it as its source.
pub(crate) fn connection_error(e: ConnectionError, t: Transport) -> Error {
    use rumqttc::StateError::Deserialization;
    use rumqttc::mqttbytes::Error as Codec;
    let message = match &e {
        ConnectionError::ConnectionRefused(code) => {
            let (n, reason) = match code {
                ConnectReturnCode::Success => (0, "success"),
                ConnectReturnCode::RefusedProtocolVersion => (1, "unacceptable protocol version"),
                ConnectReturnCode::BadClientId => (2, "identifier rejected"),
                ConnectReturnCode::ServiceUnavailable => (3, "server unavailable"),
                ConnectReturnCode::BadUserNamePassword => (4, "bad user name or password"),
                ConnectReturnCode::NotAuthorized => (5, "not authorized"),
            };
            return Error::ConnectionRefused {
                transport: t,
                code: n,
                reason: reason.to_string(),
                source: Some(Box::new(e)),
            };
        }
        ConnectionError::Tls(tls) => return Error::tls_from(t, sanitize(&tls.to_string()), e),
        ConnectionError::Io(io) => {
            let failure = io_failure(io);
            return failure.into_error(t, e);
        }
        // The connection failed under the packet reader (closed, reset): the transport, not the
        // server's packets, is what went wrong.
        ConnectionError::MqttState(Deserialization(Codec::Io(io))) => {
            sanitize(&format!("the connection failed while reading from the server: {io}"))
        }
        ConnectionError::MqttState(Deserialization(Codec::PayloadSizeLimitExceeded(size))) => {
            return Error::Protocol {
                transport: t,
                message: format!(
                    "the server sent a message of {size} bytes: more than the {MAX_BODY} bytes (and the topic) \
                     this client accepts"
                ),
            };
        }
        ConnectionError::MqttState(Deserialization(d)) => {
            return Error::Protocol {
                transport: t,
                message: sanitize(&format!("cannot read a packet from the server: {d}")),
            };
        }
        ConnectionError::Websocket(ws) => {
            let failure = websocket_failure(ws, t);
            return failure.into_error(t, e);
        }
        ConnectionError::ResponseValidation(v) => {
            return Error::Protocol {
                transport: t,
                message: sanitize(&format!("the WebSocket upgrade answer: {v}")),
            };
        }
        ConnectionError::Proxy(p)
            if matches!(
                std::error::Error::source(p).and_then(|s| s.downcast_ref::<async_http_proxy::HttpError>()),
                Some(async_http_proxy::HttpError::HttpCode200(401 | 407))
            ) =>
        {
            "the proxy refused the CONNECT: proxy authentication required (missing or wrong proxy credentials)"
                .to_string()
        }
        ConnectionError::Proxy(p) => sanitize(&format!("the proxy did not open a tunnel: {p}")),
        other => sanitize(&other.to_string()),
    };
    Error::transport_from(t, message, e)
}

/// What failed under a connection error: TLS or the transport, and the text to show.
enum Failure {
    Tls(String),
    Transport(String),
}

impl Failure {
    /// The error of `t`, with `source` (the error the failure came in) as its source.
    fn into_error(self, t: Transport, source: impl Into<Source>) -> Error {
        match self {
            Failure::Tls(message) => Error::tls_from(t, message, source),
            Failure::Transport(message) => Error::transport_from(t, message, source),
        }
    }
}

/// An I/O error of the connection: TLS when rustls is what failed under it.
fn io_failure(io: &std::io::Error) -> Failure {
    match io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(tls) => Failure::Tls(sanitize(&tls.to_string())),
        None => Failure::Transport(sanitize(&io.to_string())),
    }
}

/// A failed WebSocket connection: a refused upgrade names the path and the HTTP status.
fn websocket_failure(e: &tungstenite::Error, t: Transport) -> Failure {
    use tungstenite::Error as Ws;
    match e {
        Ws::Http(response) => {
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            Failure::Transport(sanitize(&format!(
                "the server refused the WebSocket upgrade to {}: HTTP {} {body}",
                t.path().unwrap_or("/"),
                response.status().as_u16()
            )))
        }
        Ws::Tls(tls) => Failure::Tls(sanitize(&tls.to_string())),
        Ws::Io(io) => io_failure(io),
        other => Failure::Transport(sanitize(&format!("WebSocket: {other}"))),
    }
}
