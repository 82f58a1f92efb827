//! DPS over MQTT 3.1.1 (rumqttc), over TLS or over WebSockets (`websocket.rs`): client id =
//! registration id, username `{idScope}/registrations/{registrationId}/api-version={ver}&ClientVersion={user
//! agent}`, password = the SAS token (none for x509); requests published on
//! `$dps/registrations/PUT/iotdps-register/?$rid={rid}` and
//! `$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={op}`, answers received on
//! `$dps/registrations/res/{status}/?$rid={rid}&retry-after={s}`. The connection itself (CONNACK, SUBACK,
//! errors) is `connection.rs`, shared with the IoT Hub certificate renewal.
//!
//! The transport's properties ([`Transport::default_port`], [`Transport::websocket`],
//! [`Transport::path`]) choose the port and the stream; an HTTP CONNECT proxy (rumqttc's `proxy`
//! feature) is set when the options have one (the client refuses a proxy for a transport without
//! [`Transport::supports_proxy`] before connecting).

mod connection;
mod websocket;

use std::time::Duration;

use hsm_core::sas::url_encode;
use rumqttc::{MqttOptions, Packet, QoS};
use tokio::time::Instant;

pub(crate) use connection::{MqttSession, client_error};

use crate::error::sanitize;
use crate::session::{Call, Connect, Connection};
use crate::{Error, MAX_BODY, Reply, Transport};

pub(crate) const SUBSCRIBE_TOPIC: &str = "$dps/registrations/res/#";
const RESPONSE_PREFIX: &str = "$dps/registrations/res/";

pub(crate) struct Mqtt {
    session: MqttSession,
    next_rid: u64,
}

impl Mqtt {
    /// Connect, and subscribe to the response topic.
    pub(crate) async fn connect(c: &Connect<'_>) -> Result<Self, Error> {
        let t = c.transport;
        let (host, port) = split_endpoint(c.endpoint, t.default_port())?;
        let mut options = match t.websocket() {
            Some(_) => websocket::options(t, c.registration_id, &host, port, c.tls.clone()),
            None => {
                let mut options = MqttOptions::new(c.registration_id, host, port);
                options.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(
                    c.tls.clone(),
                )));
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

    async fn register(&mut self, body: &dps_wire::device::DeviceRegistration) -> Result<Reply, Error> {
        let rid = self.rid();
        let payload = crate::https::encode(body)?;
        self.request(
            format!("$dps/registrations/PUT/iotdps-register/?$rid={rid}"),
            rid,
            payload,
        )
        .await
    }

    async fn operation(&mut self, operation_id: &str) -> Result<Reply, Error> {
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

impl Connection for Mqtt {
    /// MQTT authenticates once, at CONNECT: `auth` is not sent again. An answer is read until the
    /// caller's deadline ends the registration.
    async fn call(&mut self, call: Call<'_>, _auth: Option<&str>, _deadline: Instant) -> Result<Reply, Error> {
        match call {
            Call::Register(body) => self.register(body).await,
            Call::Operation(op) => self.operation(op).await,
            Call::Status(_) => Err(Error::InvalidRequest(format!(
                "the registration status lookup is an HTTPS call: DPS has none over {}",
                self.session.transport
            ))),
        }
    }

    /// DISCONNECT, written and flushed (rumqttc reports it sent), within `deadline`.
    async fn close(mut self, deadline: Instant) -> Result<(), Error> {
        self.session.close(deadline).await
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
