//! An MQTT connection as DPS (`mqtt/mod.rs`) and IoT Hub (`hub_renewal.rs`) both use it: rumqttc's
//! client and event loop, the CONNACK and SUBACK awaited, and rumqttc's errors read into ours (TLS,
//! refused connection, proxy, WebSocket upgrade, oversized or garbage packets).

use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::time::Instant;

use crate::error::sanitize;
use crate::{Error, MAX_BODY, Transport};

/// An MQTT connection as DPS and IoT Hub (`hub_renewal.rs`) both use it: rumqttc's client and its
/// event loop, polled by whoever waits for an answer.
pub(crate) struct MqttSession {
    pub(crate) transport: Transport,
    pub(crate) client: AsyncClient,
    events: EventLoop,
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
        self.client.disconnect().await.map_err(|e| client_error(e, t))?;
        let sent = async {
            loop {
                match self.events.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(connection_error(e, t)),
                }
            }
        };
        match tokio::time::timeout_at(deadline, sent).await {
            Ok(result) => result,
            Err(_) => Err(Error::Transport {
                transport: t,
                message: "the DISCONNECT was not sent in time".to_string(),
            }),
        }
    }

    /// The next packet the server sent (what the client sent is skipped).
    pub(crate) async fn next_packet(&mut self) -> Result<Packet, Error> {
        loop {
            match self.events.poll().await {
                Ok(Event::Incoming(p)) => return Ok(p),
                Ok(Event::Outgoing(_)) => {}
                Err(e) => return Err(connection_error(e, self.transport)),
            }
        }
    }
}

pub(crate) fn client_error(e: rumqttc::ClientError, t: Transport) -> Error {
    Error::Transport {
        transport: t,
        message: format!("the MQTT event loop is gone: {e}"),
    }
}

pub(crate) fn connection_error(e: ConnectionError, t: Transport) -> Error {
    match e {
        ConnectionError::ConnectionRefused(code) => {
            let (n, reason) = match code {
                ConnectReturnCode::Success => (0, "success"),
                ConnectReturnCode::RefusedProtocolVersion => (1, "unacceptable protocol version"),
                ConnectReturnCode::BadClientId => (2, "identifier rejected"),
                ConnectReturnCode::ServiceUnavailable => (3, "server unavailable"),
                ConnectReturnCode::BadUserNamePassword => (4, "bad user name or password"),
                ConnectReturnCode::NotAuthorized => (5, "not authorized"),
            };
            Error::ConnectionRefused {
                transport: t,
                code: n,
                reason: reason.to_string(),
            }
        }
        ConnectionError::Tls(e) => Error::Tls {
            transport: t,
            message: sanitize(&e.to_string()),
        },
        ConnectionError::Io(io) => io_error(&io, t),
        // The connection failed under the packet reader (closed, reset): the transport, not the
        // server's packets, is what went wrong.
        ConnectionError::MqttState(rumqttc::StateError::Deserialization(rumqttc::mqttbytes::Error::Io(io))) => {
            Error::Transport {
                transport: t,
                message: sanitize(&format!("the connection failed while reading from the server: {io}")),
            }
        }
        ConnectionError::MqttState(rumqttc::StateError::Deserialization(
            rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(size),
        )) => Error::Protocol {
            transport: t,
            message: format!(
                "the server sent a message of {size} bytes: more than the {MAX_BODY} bytes (and the topic) this \
                 client accepts"
            ),
        },
        ConnectionError::MqttState(rumqttc::StateError::Deserialization(d)) => Error::Protocol {
            transport: t,
            message: sanitize(&format!("cannot read a packet from the server: {d}")),
        },
        ConnectionError::Websocket(ws) => super::websocket::error(ws, t),
        ConnectionError::ResponseValidation(v) => Error::Protocol {
            transport: t,
            message: sanitize(&format!("the WebSocket upgrade answer: {v}")),
        },
        ConnectionError::Proxy(p)
            if matches!(
                std::error::Error::source(&p).and_then(|s| s.downcast_ref::<async_http_proxy::HttpError>()),
                Some(async_http_proxy::HttpError::HttpCode200(401 | 407))
            ) =>
        {
            Error::Transport {
                transport: t,
                message: "the proxy refused the CONNECT: proxy authentication required (missing or wrong proxy \
                          credentials)"
                    .to_string(),
            }
        }
        ConnectionError::Proxy(p) => Error::Transport {
            transport: t,
            message: sanitize(&format!("the proxy did not open a tunnel: {p}")),
        },
        other => Error::Transport {
            transport: t,
            message: sanitize(&other.to_string()),
        },
    }
}

/// An I/O error of the connection: a TLS error when rustls is what failed under it.
pub(super) fn io_error(io: &std::io::Error, t: Transport) -> Error {
    match io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(tls) => Error::Tls {
            transport: t,
            message: sanitize(&tls.to_string()),
        },
        None => Error::Transport {
            transport: t,
            message: sanitize(&io.to_string()),
        },
    }
}
