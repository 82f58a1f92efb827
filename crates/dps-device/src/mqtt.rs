//! MQTT 3.1.1 over TLS (rumqttc): client id = registration id, username
//! `{idScope}/registrations/{registrationId}/api-version={ver}&ClientVersion={user agent}`, password = the
//! SAS token (none for x509); requests published on `$dps/registrations/PUT/iotdps-register/?$rid={rid}` and
//! `$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={op}`, answers received on
//! `$dps/registrations/res/{status}/?$rid={rid}&retry-after={s}`.
//!
//! Over WebSockets (rumqttc's `Transport::Wss`, the same rustls config): `wss://{host}:{port}/$iothub/websocket`
//! with the `mqtt` subprotocol, optionally through an HTTP CONNECT proxy (rumqttc's `proxy` feature).

use std::sync::Arc;
use std::time::Duration;

use hsm_core::sas::url_encode;
use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS};

use crate::error::sanitize;
use crate::{Error, MAX_BODY, Proxy, Reply, Transport};

pub(crate) const SUBSCRIBE_TOPIC: &str = "$dps/registrations/res/#";
const RESPONSE_PREFIX: &str = "$dps/registrations/res/";
/// MQTT over TLS.
pub(crate) const DEFAULT_PORT: u16 = 8883;
/// MQTT over WebSockets over TLS.
pub(crate) const DEFAULT_WS_PORT: u16 = 443;
/// Where DPS serves MQTT over WebSockets.
pub(crate) const WS_PATH: &str = "/$iothub/websocket";

pub(crate) struct Mqtt {
    session: MqttSession,
    next_rid: u64,
}

/// An MQTT connection as DPS and IoT Hub (`credentials.rs`) both use it: rumqttc's client and its
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

/// What the caller connects with.
pub(crate) struct Connect<'a> {
    /// `Mqtt` or `MqttWs`.
    pub(crate) transport: Transport,
    pub(crate) proxy: Option<&'a Proxy>,
    pub(crate) endpoint: &'a str,
    pub(crate) id_scope: &'a str,
    pub(crate) registration_id: &'a str,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) password: Option<&'a str>,
    pub(crate) user_agent: &'a str,
    pub(crate) api_version: &'a str,
}

impl Mqtt {
    /// Connect, and subscribe to the response topic.
    pub(crate) async fn connect(c: Connect<'_>) -> Result<Self, Error> {
        let t = c.transport;
        let tls = rumqttc::TlsConfiguration::Rustls(c.tls);
        let mut options = match t {
            Transport::MqttWs => {
                let (host, port) = split_endpoint(c.endpoint, DEFAULT_WS_PORT)?;
                let host = match host.contains(':') {
                    true => format!("[{host}]"),
                    false => host,
                };
                let url = format!("wss://{host}:{port}{WS_PATH}");
                let mut options = MqttOptions::new(c.registration_id, url, port);
                options.set_transport(rumqttc::Transport::wss_with_config(tls));
                options
            }
            _ => {
                let (host, port) = split_endpoint(c.endpoint, DEFAULT_PORT)?;
                let mut options = MqttOptions::new(c.registration_id, host, port);
                options.set_transport(rumqttc::Transport::tls_with_config(tls));
                options
            }
        };
        if let Some(p) = c.proxy {
            options.set_proxy(rumqttc::Proxy {
                ty: rumqttc::ProxyType::Http,
                auth: match &p.credentials {
                    Some((username, password)) => rumqttc::ProxyAuth::Basic {
                        username: username.clone(),
                        password: password.clone(),
                    },
                    None => rumqttc::ProxyAuth::None,
                },
                addr: p.host.clone(),
                port: p.port,
            });
        }
        options
            .set_keep_alive(Duration::from_secs(60))
            .set_clean_session(true)
            .set_max_packet_size(MAX_BODY + 1024, MAX_BODY + 1024)
            .set_credentials(
                username(c.id_scope, c.registration_id, c.api_version, c.user_agent),
                c.password.unwrap_or(""),
            );
        Ok(Mqtt {
            session: MqttSession::open(options, t, SUBSCRIBE_TOPIC, "server").await?,
            next_rid: 1,
        })
    }

    pub(crate) async fn register(&mut self, body: &dps_wire::device::DeviceRegistration) -> Result<Reply, Error> {
        let rid = self.rid();
        let payload = crate::https::encode(body)?;
        self.request(
            format!("$dps/registrations/PUT/iotdps-register/?$rid={rid}"),
            rid,
            payload,
        )
        .await
    }

    pub(crate) fn transport(&self) -> Transport {
        self.session.transport
    }

    pub(crate) async fn operation(&mut self, operation_id: &str) -> Result<Reply, Error> {
        let rid = self.rid();
        let topic = format!(
            "$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={}",
            url_encode(operation_id)
        );
        self.request(topic, rid, Vec::new()).await
    }

    fn rid(&mut self) -> u64 {
        let rid = self.next_rid;
        self.next_rid += 1;
        rid
    }

    async fn request(&mut self, topic: String, rid: u64, payload: Vec<u8>) -> Result<Reply, Error> {
        let t = self.session.transport;
        self.session
            .client
            .publish(topic, QoS::AtMostOnce, false, payload)
            .await
            .map_err(|e| client_error(e, t))?;
        loop {
            let Packet::Publish(p) = self.session.next_packet().await? else {
                continue;
            };
            let Some(response) = parse_response_topic(&p.topic, t) else {
                tracing::debug!(topic = %sanitize(&p.topic), "ignoring a message on another topic");
                continue;
            };
            let (status, answer_rid, retry_after) = response?;
            if answer_rid != Some(rid) {
                tracing::debug!(?answer_rid, rid, "ignoring an answer to another request");
                continue;
            }
            return Ok(Reply {
                status,
                body: p.payload.to_vec(),
                retry_after,
            });
        }
    }
}

/// The DPS MQTT username; the user agent is URL-encoded.
pub(crate) fn username(id_scope: &str, registration_id: &str, api_version: &str, user_agent: &str) -> String {
    format!(
        "{id_scope}/registrations/{registration_id}/api-version={}&ClientVersion={}",
        url_encode(api_version),
        url_encode(user_agent)
    )
}

/// Status, `$rid` and `retry-after` of a response topic.
type ResponseTopic = (u16, Option<u64>, Option<u64>);

/// `$dps/registrations/res/{status}/?$rid={rid}&retry-after={s}`: None for another topic, an error for a
/// response topic that does not parse.
pub(crate) fn parse_response_topic(topic: &str, t: Transport) -> Option<Result<ResponseTopic, Error>> {
    let rest = topic.strip_prefix(RESPONSE_PREFIX)?;
    let bad = || Error::Protocol {
        transport: t,
        message: format!("malformed response topic {:?}", sanitize(topic)),
    };
    let (status, query) = rest.split_once("/?").unwrap_or((rest.trim_end_matches('/'), ""));
    let Ok(status) = status.parse::<u16>() else {
        return Some(Err(bad()));
    };
    let mut rid = None;
    let mut retry_after = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("$rid", v)) => rid = v.parse::<u64>().ok(),
            Some(("retry-after", v)) => retry_after = v.trim().parse::<u64>().ok(),
            _ => {}
        }
    }
    Some(Ok((status, rid, retry_after)))
}

pub(crate) fn split_endpoint(endpoint: &str, default_port: u16) -> Result<(String, u16), Error> {
    match endpoint.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => port
            .parse::<u16>()
            .map(|p| (host.to_string(), p))
            .map_err(|_| Error::InvalidRequest(format!("endpoint {endpoint:?}: the port is not a number"))),
        Some(_) => Err(Error::InvalidRequest(format!("endpoint {endpoint:?} has no host"))),
        None if endpoint.is_empty() => Err(Error::InvalidRequest("the endpoint is empty".into())),
        None => Ok((endpoint.to_string(), default_port)),
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
        ConnectionError::Websocket(ws) => websocket_error(ws, t),
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

fn websocket_error(e: tungstenite::Error, t: Transport) -> Error {
    use tungstenite::Error as Ws;
    match e {
        Ws::Http(response) => {
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            Error::Transport {
                transport: t,
                message: sanitize(&format!(
                    "the server refused the WebSocket upgrade to {WS_PATH}: HTTP {} {body}",
                    response.status().as_u16()
                )),
            }
        }
        Ws::Tls(tls) => Error::Tls {
            transport: t,
            message: sanitize(&tls.to_string()),
        },
        Ws::Io(io) => io_error(&io, t),
        other => Error::Transport {
            transport: t,
            message: sanitize(&format!("WebSocket: {other}")),
        },
    }
}

/// An I/O error of the connection: a TLS error when rustls is what failed under it.
fn io_error(io: &std::io::Error, t: Transport) -> Error {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_topics_parse() {
        let (s, rid, retry) = parse_response_topic("$dps/registrations/res/202/?$rid=3&retry-after=2", Transport::Mqtt)
            .unwrap()
            .unwrap();
        assert_eq!((s, rid, retry), (202, Some(3), Some(2)));
        let (s, rid, retry) = parse_response_topic("$dps/registrations/res/200/?$rid=9", Transport::Mqtt)
            .unwrap()
            .unwrap();
        assert_eq!((s, rid, retry), (200, Some(9), None));
        assert!(parse_response_topic("other/topic", Transport::Mqtt).is_none());
        assert!(
            parse_response_topic("$dps/registrations/res/abc/?$rid=1", Transport::Mqtt)
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn username_has_the_api_version_and_the_encoded_agent() {
        assert_eq!(
            username("0ne00000A0A", "dev-1", "2021-06-01", "dps-device/0.1.0 (linux)"),
            "0ne00000A0A/registrations/dev-1/api-version=2021-06-01&ClientVersion=dps-device%2f0.1.0%20(linux)"
        );
    }

    #[test]
    fn endpoints_split() {
        assert_eq!(split_endpoint("h.example", 8883).unwrap(), ("h.example".into(), 8883));
        assert_eq!(
            split_endpoint("127.0.0.1:1234", 8883).unwrap(),
            ("127.0.0.1".into(), 1234)
        );
        assert!(split_endpoint("h:x", 1).is_err());
        assert!(split_endpoint("", 1).is_err());
    }
}
