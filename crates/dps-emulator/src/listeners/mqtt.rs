//! The MQTT 3.1.1 adapter: the DPS device API and the IoT Hub credentials endpoints over MQTT, on its own
//! TLS port of 127.0.0.1 and (through `websocket.rs`) over WebSockets on the HTTPS port; packets read and
//! written by rumqttc's `mqttbytes::v4` codec.
//!
//! CONNECT is turned into a session request on the resource its username names: DPS
//! `{idScope}/registrations/{registrationId}/api-version=...` (client id = registration id; the SAS token in the
//! password, else the TLS client chain), or an IoT hub's `{hub}/{deviceId}/?api-version=...` (client id =
//! device id). A refused session is CONNACK 5 (not authorized), 4 for a malformed username or an unknown
//! resource, 2 for a client id that is not the registration (device) id, 3 when the service cannot tell.
//! Publishes become requests: `$dps/registrations/PUT/iotdps-register/?$rid=N` (PUT `.../register`),
//! `$dps/registrations/GET/iotdps-get-operationstatus/?$rid=N&operationId=OP` (GET `.../operations/OP`),
//! answered on `$dps/registrations/res/{status}/?$rid=N[&retry-after=S]`; and
//! `$iothub/credentials/POST/issueCertificate/?$rid=N` (POST `/devices/{id}/credentials/issueCertificate`),
//! answered on `$iothub/credentials/res/{status}/?$rid=N`; the IoT Hub device topics:
//! `devices/{id}/messages/events/{property bag}` (POST `/devices/{id}/messages/events`, no answer but the
//! PUBACK), `$iothub/twin/GET/?$rid=N` (GET `/devices/{id}/twin`) and
//! `$iothub/twin/PATCH/properties/reported/?$rid=N` (PATCH `.../twin/properties/reported`), answered on
//! `$iothub/twin/res/{status}/?$rid=N[&$version=V]`. A hub request the service refuses (an expired token,
//! a topic of another device) closes the connection, as IoT Hub does.

use std::io;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hsm_core::sas::url_encode;
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, Publish, SubAck, SubscribeReasonCode, UnsubAck,
};
use rumqttc::mqttbytes::{self, QoS};
use rustls::ServerConfig;

use crate::listeners::limits::{SessionLimits, Slot};
use crate::listeners::{ByteStream, Names};
use crate::request::{Client, Request, Response, SESSION, Transport, error, query_param};
use crate::services::RequestHandler;

pub(crate) const NAMES: Names = Names {
    thread: "dps-emulator-mqtt",
    connections: "dps-emulator-mqtt",
    binding: "binding the MQTT listener on",
    address: "reading the address of the MQTT listener on",
    spawning: "starting the MQTT listener thread for",
};

/// Largest packet accepted from a device.
const MAX_PACKET: usize = 64 * 1024;
const DPS_TOPICS: &str = "$dps/registrations/res/#";
const REGISTER_PREFIX: &str = "$dps/registrations/PUT/iotdps-register/?";
const STATUS_PREFIX: &str = "$dps/registrations/GET/iotdps-get-operationstatus/?";
/// The filters a hub session may subscribe to (what the device SDKs subscribe to; C2D, methods and desired
/// patches are never sent here).
const HUB_TOPICS: [&str; 4] = [
    "$iothub/credentials/res/#",
    "$iothub/twin/res/#",
    "$iothub/twin/PATCH/properties/desired/#",
    "$iothub/methods/POST/#",
];
const ISSUE_PREFIX: &str = "$iothub/credentials/POST/issueCertificate/?";
const TWIN_GET_PREFIX: &str = "$iothub/twin/GET/?";
const TWIN_PATCH_PREFIX: &str = "$iothub/twin/PATCH/properties/reported/?";

/// Whom a CONNECT opened a session for.
enum Resource {
    /// DPS: the path `/{idScope}/registrations/{registrationId}`.
    Dps { path: String },
    /// An IoT hub: the path `/devices/{deviceId}`, the hub's host name and the device id.
    Hub {
        path: String,
        host: String,
        device_id: String,
    },
}

/// What CONNECT established.
struct Session {
    resource: Resource,
    api_version: String,
    /// The SAS token, sent as `Authorization` with every request.
    password: Option<String>,
    client: Client,
    /// When the session's credentials expire (a hub SAS token): the session closes then.
    expires: Option<Instant>,
}

impl Session {
    fn request(&self, method: &str, path: String, body: &[u8]) -> Request {
        let mut headers: Vec<(String, String)> = Vec::new();
        if let Some(p) = &self.password {
            headers.push(("authorization".into(), p.clone()));
        }
        if let Resource::Hub { host, .. } = &self.resource {
            headers.push(("host".into(), host.clone()));
        }
        Request {
            method: method.to_string(),
            path,
            query: format!("api-version={}", self.api_version),
            headers,
            body: body.to_vec(),
            client: self.client.clone(),
        }
    }

    /// Whether the session may subscribe to `filter`.
    fn may_subscribe(&self, filter: &str) -> bool {
        match &self.resource {
            Resource::Dps { .. } => filter == DPS_TOPICS,
            Resource::Hub { device_id, .. } => {
                HUB_TOPICS.contains(&filter) || filter == format!("devices/{device_id}/messages/devicebound/#")
            }
        }
    }
}

/// Serve one MQTT/TLS connection.
pub(crate) fn serve(
    stream: TcpStream,
    tls_config: Arc<ServerConfig>,
    handler: &RequestHandler,
    request_timeout: Duration,
    slot: &Slot,
) {
    // The TLS handshake and CONNECT must arrive whole within the request deadline, as over HTTPS.
    let Some((mut tls, chain)) = crate::listeners::accept_tls(stream, tls_config, request_timeout) else {
        return;
    };
    let limits = SessionLimits {
        deadline: tls.sock.deadline.clone(),
        request_timeout,
        slot,
    };
    let client = Client {
        transport: Transport::Mqtt,
        chain,
    };
    if let Err(e) = run_session(&mut tls, handler, client, &limits) {
        tracing::debug!(error = %e, "MQTT connection ended");
    }
    tls.sock.set_deadline(Some(Instant::now() + Duration::from_secs(1)));
    tls.conn.send_close_notify();
    let _ = io::Write::flush(&mut tls);
}

/// An MQTT session over `stream`, until the client disconnects or the connection fails.
pub(crate) fn run_session(
    stream: &mut dyn ByteStream,
    handler: &RequestHandler,
    client: Client,
    limits: &SessionLimits<'_>,
) -> io::Result<()> {
    let mut buf = BytesMut::new();
    // CONNECT within the request deadline (already running over TLS; from now over WebSockets).
    if limits.deadline.get().is_none() {
        limits.deadline.set(Some(Instant::now() + limits.request_timeout));
    }
    let Packet::Connect(connect) = read_packet(stream, &mut buf, limits)? else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the first packet is not CONNECT",
        ));
    };
    let session = match accept(handler, &connect, client) {
        Ok(s) => s,
        Err((code, reason)) => {
            tracing::info!(client_id = %connect.client_id, ?code, %reason, "MQTT connection refused");
            write_packet(stream, Packet::ConnAck(ConnAck::new(code, false)))?;
            return Ok(());
        }
    };
    write_packet(stream, Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)))?;
    // MQTT 3.1.1 section 3.1.2.10: with a keep-alive, no packet for 1.5 times it closes the connection;
    // without one, the wait for a packet is bounded by the request deadline, as over HTTPS.
    let window = match connect.keep_alive {
        0 => limits.request_timeout,
        k => Duration::from_millis(u64::from(k) * 1500),
    };
    loop {
        limits.slot.idle(true);
        let wait_until = Instant::now() + window;
        // A hub session ends when its SAS token expires (IoT Hub drops it with 401003; the device
        // reconnects with a fresh token).
        limits
            .deadline
            .set(Some(session.expires.map_or(wait_until, |e| e.min(wait_until))));
        let packet = read_packet(stream, &mut buf, limits)?;
        limits.slot.idle(false);
        match packet {
            Packet::Subscribe(s) => {
                let codes = s
                    .filters
                    .iter()
                    .map(|f| match session.may_subscribe(&f.path) {
                        true => SubscribeReasonCode::Success(match f.qos {
                            QoS::AtMostOnce => QoS::AtMostOnce,
                            _ => QoS::AtLeastOnce,
                        }),
                        false => SubscribeReasonCode::Failure,
                    })
                    .collect();
                write_packet(stream, Packet::SubAck(SubAck::new(s.pkid, codes)))?;
            }
            Packet::Publish(p) => {
                let (answer_prefix, rid, response) = answer(handler, &session, &p.topic, &p.payload);
                if matches!(session.resource, Resource::Hub { .. }) && matches!(response.status, 401 | 403) {
                    // IoT Hub drops a session whose credentials no longer hold (401003) or that publishes
                    // where it may not: no PUBACK, no answer.
                    tracing::info!(reason = %response.error_message(), "IoT Hub session closed");
                    return Ok(());
                }
                if p.qos == QoS::AtLeastOnce {
                    write_packet(stream, Packet::PubAck(PubAck::new(p.pkid)))?;
                }
                if answer_prefix.is_empty() {
                    // Telemetry: the PUBACK is the only answer.
                    continue;
                }
                let mut response = response;
                loop {
                    let later = response.later.take();
                    write_packet(stream, Packet::Publish(publish(answer_prefix, &rid, &response)))?;
                    let Some(later) = later else { break };
                    // The service's own delay between its two answers (IoT Hub credentials: 202, then 200).
                    std::thread::sleep(later.after);
                    response = (later.answer)();
                }
            }
            // Section 3.10.4: the server must answer UNSUBSCRIBE with UNSUBACK (Node's client waits for it).
            Packet::Unsubscribe(u) => write_packet(stream, Packet::UnsubAck(UnsubAck::new(u.pkid)))?,
            Packet::PingReq => write_packet(stream, Packet::PingResp)?,
            Packet::Disconnect => return Ok(()),
            other => tracing::debug!(?other, "ignoring an MQTT packet"),
        }
    }
}

/// Read CONNECT's username (its shape is MQTT's), check the client id, then ask the service for the session.
fn accept(
    handler: &RequestHandler,
    connect: &mqttbytes::v4::Connect,
    client: Client,
) -> Result<Session, (ConnectReturnCode, String)> {
    let bad_user = |m: String| (ConnectReturnCode::BadUserNamePassword, m);
    let login = connect
        .login
        .as_ref()
        .ok_or_else(|| bad_user("no username".to_string()))?;
    let username = login.username.as_str();
    let password = Some(login.password.clone()).filter(|p| !p.is_empty());
    let (resource, id, api_version, password) = if let Some((scope, rest)) = username.split_once("/registrations/") {
        let (registration_id, query) = rest
            .split_once("/api-version=")
            .ok_or_else(|| bad_user(format!("username {username:?} has no api-version")))?;
        let api_version = query.split('&').next().unwrap_or_default();
        if api_version.is_empty() {
            return Err(bad_user("empty api-version in the username".to_string()));
        }
        let path = format!("/{}/registrations/{}", url_encode(scope), url_encode(registration_id));
        (Resource::Dps { path }, registration_id, api_version, password)
    } else {
        // An IoT hub's username: `{hub}/{deviceId}/?api-version=...`.
        let (hub, rest) = username.split_once('/').ok_or_else(|| {
            bad_user(format!(
                "username {username:?} is not {{hub}}/{{deviceId}}/?api-version=..."
            ))
        })?;
        let (device_id, query) = rest
            .split_once("/?")
            .ok_or_else(|| bad_user(format!("username {username:?} has no /?api-version=...")))?;
        let api_version = query_param(query, "api-version")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad_user(format!("username {username:?} has no api-version")))?;
        let path = format!("/devices/{}", url_encode(device_id));
        let host = hub.to_string();
        let resource = Resource::Hub {
            path,
            host,
            device_id: device_id.to_string(),
        };
        (resource, device_id, api_version, password)
    };
    if id != connect.client_id {
        return Err((
            ConnectReturnCode::BadClientId,
            format!("client id '{}' is not the id '{id}' of the username", connect.client_id),
        ));
    }
    let session = Session {
        resource,
        api_version: api_version.to_string(),
        password,
        client,
        expires: None,
    };
    let path = match &session.resource {
        Resource::Dps { path } | Resource::Hub { path, .. } => path.clone(),
    };
    let response = handler.handle(&session.request(SESSION, path, &[]));
    let code = match response.status {
        200..=299 => {
            let mut session = session;
            session.expires = response
                .header(crate::services::iot_hub::SESSION_EXPIRES_HEADER)
                .and_then(|se| se.parse::<u64>().ok())
                .map(instant_of_unix);
            return Ok(session);
        }
        401 | 403 => ConnectReturnCode::NotAuthorized,
        500.. => ConnectReturnCode::ServiceUnavailable,
        _ => ConnectReturnCode::BadUserNamePassword,
    };
    Err((code, response.error_message()))
}

/// The `Instant` of a time in seconds since the epoch (now when it is past).
fn instant_of_unix(seconds: u64) -> Instant {
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Instant::now() + Duration::from_secs(seconds).saturating_sub(now_unix)
}

/// The request a publish names, answered: the answer topic's prefix, the `$rid`, the response.
fn answer(
    handler: &RequestHandler,
    session: &Session,
    topic: &str,
    payload: &[u8],
) -> (&'static str, String, Response) {
    let query = topic.split_once('?').map_or("", |(_, q)| q);
    let rid = query_param(query, "$rid").unwrap_or_default().to_string();
    let response = match &session.resource {
        Resource::Dps { path } => {
            let request = if topic.starts_with(REGISTER_PREFIX) {
                Ok(session.request("PUT", format!("{path}/register"), payload))
            } else if topic.starts_with(STATUS_PREFIX) {
                match query_param(query, "operationId") {
                    Some(op) => Ok(session.request("GET", format!("{path}/operations/{}", url_encode(op)), &[])),
                    None => Err(error(400, 400004, "no operationId in the topic")),
                }
            } else {
                Err(error(404, 404004, format!("no such topic: {topic}")))
            };
            (
                "$dps/registrations/res/",
                request.map_or_else(|r| r, |r| handler.handle(&r)),
            )
        }
        Resource::Hub { path, device_id, .. } => hub_answer(handler, session, path, device_id, topic, &rid, payload),
    };
    (response.0, rid, response.1)
}

/// A hub session's publish as its request, answered: the answer topic's prefix (empty: no answer but the
/// PUBACK) and the response.
fn hub_answer(
    handler: &RequestHandler,
    session: &Session,
    path: &str,
    device_id: &str,
    topic: &str,
    rid: &str,
    payload: &[u8],
) -> (&'static str, Response) {
    let (prefix, method, resource) =
        if let Some(rest) = topic.strip_prefix(&format!("devices/{device_id}/messages/events/")) {
            let mut request = session.request("POST", format!("{path}/messages/events"), payload);
            request
                .headers
                .push((crate::services::iot_hub::PROPERTIES_HEADER.into(), rest.to_string()));
            return ("", handler.handle(&request));
        } else if topic.starts_with("devices/") {
            // Another device's topics, or not a telemetry topic: IoT Hub closes the connection.
            return (
                "",
                error(403, 403001, format!("device '{device_id}' may not publish to {topic}")),
            );
        } else if topic.starts_with(ISSUE_PREFIX) {
            ("$iothub/credentials/res/", "POST", "credentials/issueCertificate")
        } else if topic.starts_with(TWIN_GET_PREFIX) {
            ("$iothub/twin/res/", "GET", "twin")
        } else if topic.starts_with(TWIN_PATCH_PREFIX) {
            ("$iothub/twin/res/", "PATCH", "twin/properties/reported")
        } else {
            return ("", error(403, 403001, format!("no such topic: {topic}")));
        };
    if rid.is_empty() {
        return (prefix, error(400, 400004, "no $rid in the topic"));
    }
    (
        prefix,
        handler.handle(&session.request(method, format!("{path}/{resource}"), payload)),
    )
}

/// The publish of an answer: `{prefix}{status}/?$rid={rid}[&retry-after={seconds}][&$version={v}]`.
fn publish(prefix: &str, rid: &str, response: &Response) -> Publish {
    let mut topic = format!("{prefix}{}/?$rid={rid}", response.status);
    if let Some(retry) = response.header("retry-after") {
        topic.push_str(&format!("&retry-after={retry}"));
    }
    if let Some(version) = response.header("$version") {
        topic.push_str(&format!("&$version={version}"));
    }
    Publish::new(topic, QoS::AtMostOnce, response.body.clone())
}

/// Read one packet. Once its first byte is in, the rest must arrive within the request deadline, so a client
/// sending a byte now and then is cut off as over HTTPS.
fn read_packet(stream: &mut dyn ByteStream, buf: &mut BytesMut, limits: &SessionLimits<'_>) -> io::Result<Packet> {
    let mut started = false;
    loop {
        // Bytes of this packet are in (read now, or left over after the previous packet).
        if !started && !buf.is_empty() {
            started = true;
            let whole_by = Instant::now() + limits.request_timeout;
            limits
                .deadline
                .set(Some(limits.deadline.get().map_or(whole_by, |d| d.min(whole_by))));
        }
        match Packet::read(buf, MAX_PACKET) {
            Ok(p) => return Ok(p),
            Err(mqttbytes::Error::InsufficientBytes(_)) => {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the client closed the connection",
                    ));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad MQTT packet: {e}"),
                ));
            }
        }
    }
}

fn write_packet(stream: &mut dyn ByteStream, packet: Packet) -> io::Result<()> {
    let mut out = BytesMut::new();
    packet
        .write(&mut out, usize::MAX)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("cannot encode an MQTT packet: {e}")))?;
    stream.write_all(&out)?;
    stream.flush()
}
