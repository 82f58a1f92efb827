//! The DPS device API over MQTT 3.1.1 and TLS, on its own port of 127.0.0.1: one thread per connection,
//! packets read and written by rumqttc's `mqttbytes::v4` codec.
//!
//! CONNECT is authenticated as DPS does: client id = registration id, username
//! `{idScope}/registrations/{registrationId}/api-version=...`, then the same checks as HTTPS (the SAS token
//! in the password, else the TLS client chain). TPM registrations are refused (DPS takes them over HTTPS and
//! AMQP only). Requests on `$dps/registrations/PUT/iotdps-register/?$rid=N` and
//! `$dps/registrations/GET/iotdps-get-operationstatus/?$rid=N&operationId=OP` go to the HTTPS service logic;
//! answers are published on `$dps/registrations/res/{status}/?$rid=N[&retry-after=S]`.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, Publish, SubAck, SubscribeReasonCode, UnsubAck,
};
use rumqttc::mqttbytes::{self, QoS};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use rustls_pki_types::CertificateDer;

use crate::Error;
use crate::auth::Denied;
use crate::http::{Request, Response};
use crate::limits::{Deadline, DeadlineStream, Limiter, Slot};
use crate::service::Service;

/// Largest packet accepted from a device.
const MAX_PACKET: usize = 64 * 1024;
const SUBSCRIBE_TOPIC: &str = "$dps/registrations/res/#";
const REGISTER_PREFIX: &str = "$dps/registrations/PUT/iotdps-register/?";
const STATUS_PREFIX: &str = "$dps/registrations/GET/iotdps-get-operationstatus/?";

/// The MQTT listener; dropping it closes the listener and every connection and joins the threads.
pub(crate) struct MqttListener {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MqttListener {
    /// Listen on 127.0.0.1:`port` (0: any free port), within the connection bound of `limiter` (shared with
    /// the HTTPS listener) and with the request deadline of HTTPS.
    pub(crate) fn start(
        port: u16,
        tls: Arc<ServerConfig>,
        service: Arc<Service>,
        limiter: Arc<Limiter>,
        request_timeout: Duration,
    ) -> Result<Self, Error> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).map_err(|source| Error::Socket {
            op: "binding the MQTT listener on",
            port,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| Error::Socket {
            op: "reading the address of the MQTT listener on",
            port,
            source,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("dps-emulator-mqtt".to_string())
            .spawn(move || {
                crate::limits::accept_loop(
                    listener,
                    limiter,
                    &thread_stop,
                    "dps-emulator-mqtt",
                    move |stream, slot| serve(stream, tls.clone(), &service, request_timeout, slot),
                )
            })
            .map_err(|source| Error::Socket {
                op: "starting the MQTT listener thread for",
                port: addr.port(),
                source,
            })?;
        tracing::info!(%addr, "DPS emulator MQTT listening");
        Ok(MqttListener {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MqttListener {
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2));
        if thread.join().is_err() {
            tracing::error!("the DPS emulator MQTT listener thread panicked");
        }
    }
}

/// The deadlines of an MQTT session: the connection's read deadline, the request deadline of the server,
/// and the connection's place in the limiter.
pub(crate) struct Limits<'a> {
    pub(crate) deadline: Deadline,
    pub(crate) request_timeout: Duration,
    pub(crate) slot: &'a Slot,
}

/// What CONNECT established.
struct Session {
    id_scope: String,
    registration_id: String,
    api_version: String,
    password: Option<String>,
    /// An IoT Hub (`$iothub/credentials`) session rather than DPS; `registration_id` is the device id.
    hub: bool,
}

fn serve(stream: TcpStream, tls: Arc<ServerConfig>, service: &Service, request_timeout: Duration, slot: &Slot) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(crate::server::WRITE_TIMEOUT));
    // The TLS handshake and CONNECT must arrive whole within the request deadline, as over HTTPS.
    let stream = DeadlineStream::new(stream, Some(Instant::now() + request_timeout));
    let Ok(conn) = ServerConnection::new(tls) else {
        return;
    };
    let mut tls = StreamOwned::new(conn, stream);
    while tls.conn.is_handshaking() {
        if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
            tracing::debug!(error = %e, "MQTT TLS handshake failed");
            let _ = tls.conn.write_tls(&mut tls.sock);
            return;
        }
    }
    let peer_chain = tls.conn.peer_certificates().map(<[_]>::to_vec);
    let limits = Limits {
        deadline: tls.sock.deadline.clone(),
        request_timeout,
        slot,
    };
    if let Err(e) = run(&mut tls, service, peer_chain.as_deref(), &limits) {
        tracing::debug!(error = %e, "MQTT connection ended");
    }
    tls.sock.set_deadline(Some(Instant::now() + Duration::from_secs(1)));
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

pub(crate) fn run<S: Read + Write>(
    stream: &mut S,
    service: &Service,
    peer_chain: Option<&[CertificateDer<'static>]>,
    limits: &Limits<'_>,
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
    let session = match accept(service, &connect, peer_chain) {
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
        limits.deadline.set(Some(Instant::now() + window));
        let packet = read_packet(stream, &mut buf, limits)?;
        limits.slot.idle(false);
        match packet {
            Packet::Subscribe(s) => {
                let codes = s
                    .filters
                    .iter()
                    .map(|f| match f.path == session_topic(&session) {
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
                if p.qos == QoS::AtLeastOnce {
                    write_packet(stream, Packet::PubAck(PubAck::new(p.pkid)))?;
                }
                if session.hub {
                    crate::credentials::serve(service, &session.registration_id, &p.topic, &p.payload, &mut |a| {
                        write_packet(stream, Packet::Publish(a))
                    })?;
                    continue;
                }
                let answer = answer(service, &session, peer_chain, &p.topic, &p.payload);
                write_packet(stream, Packet::Publish(answer))?;
            }
            // Section 3.10.4: the server must answer UNSUBSCRIBE with UNSUBACK (Node's client waits for it).
            Packet::Unsubscribe(u) => write_packet(stream, Packet::UnsubAck(UnsubAck::new(u.pkid)))?,
            Packet::PingReq => write_packet(stream, Packet::PingResp)?,
            Packet::Disconnect => return Ok(()),
            other => tracing::debug!(?other, "ignoring an MQTT packet"),
        }
    }
}

/// Check CONNECT: the username's shape, the client id, then the credentials as over HTTPS.
fn accept(
    service: &Service,
    connect: &mqttbytes::v4::Connect,
    peer_chain: Option<&[CertificateDer<'static>]>,
) -> Result<Session, (ConnectReturnCode, String)> {
    let bad_user = |m: String| (ConnectReturnCode::BadUserNamePassword, m);
    let login = connect
        .login
        .as_ref()
        .ok_or_else(|| bad_user("no username".to_string()))?;
    if crate::credentials::is_hub_username(&login.username) {
        let device_id = crate::credentials::accept(service, connect, peer_chain)?;
        return Ok(Session {
            id_scope: String::new(),
            registration_id: device_id,
            api_version: String::new(),
            password: None,
            hub: true,
        });
    }
    let (scope, rest) = login.username.split_once("/registrations/").ok_or_else(|| {
        bad_user(format!(
            "username {:?} is not {{idScope}}/registrations/...",
            login.username
        ))
    })?;
    let (registration_id, query) = rest
        .split_once("/api-version=")
        .ok_or_else(|| bad_user(format!("username {:?} has no api-version", login.username)))?;
    let api_version = query.split('&').next().unwrap_or_default();
    if api_version.is_empty() {
        return Err(bad_user("empty api-version in the username".to_string()));
    }
    if registration_id != connect.client_id {
        return Err((
            ConnectReturnCode::BadClientId,
            format!(
                "client id '{}' is not the registration id '{registration_id}'",
                connect.client_id
            ),
        ));
    }
    let live = service.live().map_err(|m| (ConnectReturnCode::ServiceUnavailable, m))?;
    if live.trust.tpm.is_enrolled(registration_id) {
        return Err((
            ConnectReturnCode::NotAuthorized,
            "TPM attestation is not supported over MQTT (use HTTPS)".to_string(),
        ));
    }
    let password = Some(login.password.clone()).filter(|p| !p.is_empty());
    live.trust
        .authenticate(registration_id, password.as_deref(), peer_chain)
        .map_err(|Denied(m)| (ConnectReturnCode::NotAuthorized, m))?;
    Ok(Session {
        id_scope: scope.to_string(),
        registration_id: registration_id.to_string(),
        api_version: api_version.to_string(),
        password,
        hub: false,
    })
}

fn session_topic(session: &Session) -> &'static str {
    match session.hub {
        true => crate::credentials::SUBSCRIBE_TOPIC,
        false => SUBSCRIBE_TOPIC,
    }
}

/// Answer one request publish with the HTTPS service logic.
fn answer(
    service: &Service,
    session: &Session,
    peer_chain: Option<&[CertificateDer<'static>]>,
    topic: &str,
    payload: &[u8],
) -> Publish {
    let (query, request) = if let Some(q) = topic.strip_prefix(REGISTER_PREFIX) {
        let tpm =
            serde_json::from_slice::<dps_wire::device::DeviceRegistration>(payload).is_ok_and(|r| r.tpm.is_some());
        let request = match tpm {
            true => Err(error(400, "TPM attestation is not supported over MQTT (use HTTPS)")),
            false => Ok(request(session, "PUT", "register".to_string(), payload)),
        };
        (q, request)
    } else if let Some(q) = topic.strip_prefix(STATUS_PREFIX) {
        let request = match param(q, "operationId") {
            Some(op) => Ok(request(
                session,
                "GET",
                format!("operations/{}", hsm_core::sas::url_encode(op)),
                &[],
            )),
            None => Err(error(400, "no operationId in the topic")),
        };
        (q, request)
    } else {
        let q = topic.split_once('?').map_or("", |(_, q)| q);
        (q, Err(error(404, &format!("no such topic: {topic}"))))
    };
    let response = match request {
        Ok(r) => service.handle(&r, peer_chain),
        Err(response) => response,
    };
    let mut topic = format!(
        "$dps/registrations/res/{}/?$rid={}",
        response.status,
        param(query, "$rid").unwrap_or_default()
    );
    if let Some((_, retry)) = response
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("retry-after"))
    {
        topic.push_str(&format!("&retry-after={retry}"));
    }
    Publish::new(topic, QoS::AtMostOnce, response.body)
}

/// An HTTP request as the HTTPS listener would have parsed it: the SAS token (the password) as the
/// Authorization header, so the service authenticates each request as over HTTPS.
fn request(session: &Session, method: &str, tail: String, body: &[u8]) -> Request {
    Request {
        method: method.to_string(),
        target: format!(
            "/{}/registrations/{}/{tail}?api-version={}",
            hsm_core::sas::url_encode(&session.id_scope),
            hsm_core::sas::url_encode(&session.registration_id),
            session.api_version
        ),
        headers: session
            .password
            .iter()
            .map(|p| ("authorization".to_string(), p.clone()))
            .collect(),
        body: body.to_vec(),
        keep_alive: true,
        upgrade_head: None,
    }
}

pub(crate) fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|p| p.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
}

fn error(status: u16, message: &str) -> Response {
    crate::service::error(status, u32::from(status) * 1000 + 4, message)
}

/// Read one packet. Once its first byte is in, the rest must arrive within the request deadline, so a client
/// sending a byte now and then is cut off as over HTTPS.
fn read_packet<R: Read>(stream: &mut R, buf: &mut BytesMut, limits: &Limits<'_>) -> io::Result<Packet> {
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

fn write_packet<W: Write>(stream: &mut W, packet: Packet) -> io::Result<()> {
    let mut out = BytesMut::new();
    packet
        .write(&mut out, usize::MAX)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("cannot encode an MQTT packet: {e}")))?;
    stream.write_all(&out)?;
    stream.flush()
}

impl crate::Emulator {
    /// `127.0.0.1:PORT` of the MQTT listener (same server certificate and enrollments as HTTPS).
    pub fn mqtt_endpoint(&self) -> String {
        self.mqtt.addr().to_string()
    }
}
