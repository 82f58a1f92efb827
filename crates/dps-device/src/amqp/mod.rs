//! AMQP 1.0 over TLS (issue 23), with fe2o3-amqp's client over our own TLS stream (tokio-rustls with the
//! tlsio-bridge `ClientConfig`, so an x509 key signs in its backend).
//!
//! As the C SDK (`prov_transport_amqp_common.c`) and the Node SDK speak it to DPS: TLS to port 5671; SASL
//! PLAIN with authcid `{idScope}/registrations/{registrationId}` and the SAS token as password for a symmetric
//! key, no SASL for x509 (the TLS client certificate); one session; a sender link (target) and a receiver link
//! (source) on `amqps://{host}/{idScope}/registrations/{registrationId}` with the link property
//! `com.microsoft:api-version`; requests carry the application properties `iotdps-operation-type`
//! (`iotdps-register`, `iotdps-get-operationstatus`) and `iotdps-operation-id`, the JSON body of HTTPS as a data
//! section, and a `correlation-id` that the answer carries back with its JSON body, `iotdps-status` and
//! `retry-after`.

//! DPS over AMQP 1.0, over TLS or over WebSockets (`websocket.rs`), with fe2o3-amqp's client over our
//! own TLS stream (tokio-rustls with the tlsio-bridge `ClientConfig`, so an x509 key signs in its
//! backend).
//!
//! As the C SDK (`prov_transport_amqp_common.c`) and the Node SDK speak it to DPS: SASL PLAIN with
//! authcid `{idScope}/registrations/{registrationId}` and the SAS token as password for a symmetric key,
//! no SASL for x509 (the TLS client certificate); one session; a sender link (target) and a receiver link
//! (source) on `amqps://{host}/{idScope}/registrations/{registrationId}` with the link property
//! `com.microsoft:api-version`; requests carry the application properties `iotdps-operation-type`
//! (`iotdps-register`, `iotdps-get-operationstatus`) and `iotdps-operation-id`, the JSON body of HTTPS as
//! a data section, and a `correlation-id` that the answer carries back with its JSON body,
//! `iotdps-status` and `retry-after`.
//!
//! The transport's properties choose the port ([`Transport::default_port`]) and the stream
//! ([`Transport::websocket`]: the WebSocket upgrade, through the proxy when there is one).

mod hangup;
mod refusal;
mod sasl_tpm;
mod websocket;

pub(crate) use sasl_tpm::TpmSasl;

use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::Fields;
use fe2o3_amqp::types::messaging::{ApplicationProperties, Body, Message, MessageId, Properties};
use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Symbol, Value};
use fe2o3_amqp::{Receiver, Sender};
use rustls::pki_types::ServerName;
use tokio::time::Instant;

use crate::error::sanitize;
use crate::mqtt::split_endpoint;
use crate::session::{Call, Connect, Connection};
use crate::{Error, MAX_BODY, Reply, Transport};
use refusal::sasl_refused;
use websocket::{io_error, transport_error};

const API_VERSION: &str = "com.microsoft:api-version";

/// How long the refusal of a link already detached by the server may take to be read, once the
/// connection is known to have closed.
const DETACH_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The connection's largest frame (our open's `max-frame-size`; the emulator and DPS take it).
const MAX_FRAME: usize = MAX_BODY + 1024;

/// An open AMQP connection to DPS: its session and the two links.
pub(crate) struct Amqp {
    transport: Transport,
    /// The client's handle on the connection's stream, for the close (`hangup.rs`).
    stream: hangup::Shared,
    connection: ConnectionHandle<()>,
    session: SessionHandle<()>,
    sender: Sender,
    receiver: Receiver,
    next_id: u64,
    /// The SAS token SASL `TPM` was admitted with (TPM attestation).
    tpm_token: Option<String>,
}

impl Amqp {
    /// Connect: TCP (or the proxy's tunnel), TLS, the WebSocket upgrade for a WebSocket transport,
    /// then SASL (symmetric key), open, begin, attach both links.
    pub(crate) async fn connect(c: &Connect<'_>) -> Result<Self, Error> {
        let t = c.transport;
        let (host, port) = split_endpoint(c.endpoint, t.default_port())?;
        let tcp = websocket::tcp(t, &host, port, c.proxy).await?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(host.clone())
            .map_err(|e| Error::InvalidRequest(format!("server name {host:?}: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(c.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| io_error(t, "the TLS handshake", e))?;
        match t.websocket() {
            Some(subprotocol) => {
                let ws = websocket::upgrade(t, &host, port, subprotocol, tls).await?;
                Self::open(c, &host, ws).await
            }
            None => Self::open(c, &host, tls).await,
        }
    }

    /// SASL (symmetric key), open, begin, attach both links over `stream`.
    async fn open<S>(c: &Connect<'_>, host: &str, stream: S) -> Result<Self, Error>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + std::fmt::Debug + Send + Unpin + 'static,
    {
        let t = c.transport;
        let (stream, tpm_token) = match &c.tpm {
            Some(login) => {
                let (s, token) = sasl_tpm::authenticate(t, stream, login, c.id_scope, c.registration_id).await?;
                (s, Some(token))
            }
            None => (ws_stream::Prefixed::new(Vec::new(), stream), None),
        };
        let (engine_stream, client_stream) = hangup::Shared::new(stream);
        let mut builder = fe2o3_amqp::Connection::builder()
            .container_id(format!("dps-device-{}", c.registration_id))
            .hostname(host)
            .max_frame_size(u32::try_from(MAX_FRAME).unwrap_or(u32::MAX));
        let username = format!("{}/registrations/{}", c.id_scope, c.registration_id);
        if let Some(token) = c.password {
            builder = builder.sasl_profile(SaslProfile::Plain {
                username: username.clone(),
                password: token.to_string(),
            });
        }
        let mut connection = builder
            .open_with_stream(engine_stream)
            .await
            .map_err(|e| open_error(t, e))?;
        let mut session = fe2o3_amqp::Session::begin(&mut connection)
            .await
            .map_err(|e| transport_error(t, "beginning the AMQP session", e))?;
        let address = format!("amqps://{host}/{username}");
        let properties = || {
            let mut fields = Fields::new();
            fields.insert(Symbol::from(API_VERSION), Value::String(c.api_version.to_string()));
            fields
        };
        let mut sender = Sender::builder()
            .name("sender_link")
            .source("remote_endpoint")
            .target(address.as_str())
            .properties(properties())
            .attach(&mut session)
            .await
            .map_err(|e| attach_error(t, "the sender link", e))?;
        let receiver = Receiver::builder()
            .name("recv_link")
            .source(address.as_str())
            .target("local_endpoint")
            .max_message_size(u64::try_from(MAX_BODY).unwrap_or(u64::MAX))
            .properties(properties())
            .attach(&mut session)
            .await;
        let receiver = match receiver {
            Ok(r) => r,
            Err(e) if refusal(&e).is_some() => return Err(attach_error(t, "the receiver link", e)),
            // A server may admit the first link, then detach it with its refusal and close: the refusal
            // is the sender link's detach, already received when the connection closed.
            Err(e) => {
                let detached = tokio::time::timeout(DETACH_WAIT, sender.on_detach()).await;
                return Err(match detached {
                    Ok(d) if refusal(&d).is_some() => attach_error(t, "the sender link", d),
                    _ => attach_error(t, "the receiver link", e),
                });
            }
        };
        Ok(Amqp {
            transport: t,
            stream: client_stream,
            connection,
            session,
            sender,
            receiver,
            next_id: 1,
            tpm_token,
        })
    }

    /// The SAS token the SASL `TPM` exchange signed with the activated key, when it ran.
    pub(crate) fn tpm_token(&self) -> Option<&str> {
        self.tpm_token.as_deref()
    }

    async fn register(&mut self, body: &dps_wire::device::DeviceRegistration) -> Result<Reply, Error> {
        let payload = crate::https::encode(body)?;
        self.request("iotdps-register", None, payload).await
    }

    async fn operation(&mut self, operation_id: &str) -> Result<Reply, Error> {
        self.request("iotdps-get-operationstatus", Some(operation_id), Vec::new())
            .await
    }

    async fn request(&mut self, kind: &str, operation_id: Option<&str>, payload: Vec<u8>) -> Result<Reply, Error> {
        let id = format!("dps-device-{}", self.next_id);
        self.next_id += 1;
        let mut application = ApplicationProperties::builder().insert("iotdps-operation-type", kind.to_string());
        if let Some(op) = operation_id {
            application = application.insert("iotdps-operation-id", op.to_string());
        }
        let message = Message::builder()
            .properties(
                Properties::builder()
                    .message_id(id.clone())
                    .correlation_id(id.clone())
                    .build(),
            )
            .application_properties(application.build())
            .data(Binary::from(payload))
            .build();
        // The request's outcome (the server's disposition) and its answer are awaited together, as the
        // C SDK reads the answer without waiting for the outcome: a refused request ends the wait.
        let t = self.transport;
        let sent = async {
            self.sender
                .send(message)
                .await
                .map_err(|e| transport_error(t, "sending a request", e))
        };
        let (_, reply) = tokio::try_join!(sent, answer(&mut self.receiver, t, &id))?;
        Ok(reply)
    }
}

/// The answer to the request `id` on `receiver` (answers to other requests are settled and skipped).
async fn answer(receiver: &mut Receiver, t: Transport, id: &str) -> Result<Reply, Error> {
    loop {
        let delivery = receiver
            .recv::<Body<Value>>()
            .await
            .map_err(|e| transport_error(t, "waiting for the answer", e))?;
        receiver
            .accept(&delivery)
            .await
            .map_err(|e| transport_error(t, "settling the answer", e))?;
        let message = delivery.into_message();
        let correlation = message.properties.as_ref().and_then(|p| p.correlation_id.as_ref());
        if correlation.is_some_and(|c| !matches!(c, MessageId::String(s) if s == id)) {
            tracing::debug!("ignoring an AMQP answer to another request");
            continue;
        }
        return reply(t, message);
    }
}

impl Connection for Amqp {
    /// AMQP authenticates once, at SASL (or by the TLS client certificate when the links attach):
    /// `auth` is not sent again. An answer is read until the caller's deadline ends the registration.
    async fn call(&mut self, call: Call<'_>, _auth: Option<&str>, _deadline: Instant) -> Result<Reply, Error> {
        match call {
            Call::Register(body) => self.register(body).await,
            Call::Operation(op) => self.operation(op).await,
            Call::Status(_) => Err(Error::InvalidRequest(format!(
                "the registration status lookup is an HTTPS call: DPS has none over {}",
                self.transport
            ))),
        }
    }

    /// Close the connection within `deadline` as the C SDK does (uAMQP: each frame written, nothing
    /// awaited): the links' detach and the session's end (fe2o3 sends them as their handles drop), the
    /// connection's `close`, then the stream shut down (TLS `close_notify`) without waiting for the
    /// server's answers. A closed connection ends its session and links (AMQP 1.0, 2.4.3 and 2.5.x).
    /// Waiting for the server's `close` would spin fe2o3's connection task meanwhile (`hangup.rs`).
    async fn close(self, deadline: Instant) -> Result<(), Error> {
        let t = self.transport;
        let Amqp {
            stream,
            mut connection,
            session,
            sender,
            receiver,
            ..
        } = self;
        drop((sender, receiver, session));
        let steps = async {
            tokio::select! {
                // The server answered the close before the task was seen writing it.
                closed = connection.close() => closed.map_err(|e| transport_error(t, "closing the AMQP connection", e))?,
                () = stream.close_written() => {
                    stream.cut();
                    // The task stops on its failed read: its outcome is that error, expected.
                    let _ = connection.on_close().await;
                }
            }
            stream
                .shutdown()
                .await
                .map_err(|e| io_error(t, "closing the AMQP connection", e))
        };
        tokio::time::timeout_at(deadline, steps)
            .await
            .unwrap_or_else(|_| Err(Error::transport(t, "the AMQP close was not written in time")))
    }
}

/// A failed SASL exchange or open: a SASL refusal is [`Error::ConnectionRefused`] as MQTT's CONNACK is
/// (`auth`, `sys-perm`: 5, not authorized; `sys`, `sys-temp`: 3, server unavailable), keeping fe2o3's
/// error as the source.
fn open_error(t: Transport, e: fe2o3_amqp::connection::OpenError) -> Error {
    use fe2o3_amqp::connection::OpenError;
    match e {
        OpenError::SaslError { ref code, .. } => {
            let code = code.clone();
            sasl_refused(t, &code, "the SASL authentication", Some(Box::new(e)))
        }
        OpenError::Io(io) => io_error(t, "opening the AMQP connection", io),
        // fe2o3 names only "Not implemented"; what the server asked for is in the detail (a SASL
        // challenge, which PLAIN does not have).
        OpenError::NotImplemented(Some(ref detail)) => {
            let message = sanitize(&format!(
                "opening the AMQP connection: the server asked for what this client does not do: {detail}"
            ));
            Error::transport_from(t, message, e)
        }
        other => transport_error(t, "opening the AMQP connection", other),
    }
}

/// The error condition and description the server sent when it refused a link (detached it, or ended
/// its session or closed the connection, with an error), from fe2o3's attach error `e`.
fn refusal<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a fe2o3_amqp::types::definitions::Error> {
    use fe2o3_amqp::link::{ReceiverAttachError as R, SenderAttachError as S};
    if let Some(d) = e.downcast_ref::<fe2o3_amqp::link::DetachError>() {
        use fe2o3_amqp::link::DetachError as D;
        return match d {
            D::RemoteClosedWithError(error) | D::RemoteDetachedWithError(error) => Some(error),
            D::SessionStopped(r) => stopped(r),
            _ => None,
        };
    }
    match (e.downcast_ref::<S>(), e.downcast_ref::<R>()) {
        (Some(S::RemoteClosedWithError(error)), _) | (_, Some(R::RemoteClosedWithError(error))) => Some(error),
        (Some(S::SessionStopped(r)), _) | (_, Some(R::SessionStopped(r))) => stopped(r),
        _ => None,
    }
}

fn stopped(r: &fe2o3_amqp::link::SessionStopReason) -> Option<&fe2o3_amqp::types::definitions::Error> {
    use fe2o3_amqp::connection::ConnectionStopReason as Closed;
    use fe2o3_amqp::link::SessionStopReason as Stop;
    match r {
        Stop::RemoteEndedWithError(error) | Stop::ConnectionStopped(Closed::RemoteClosedWithError(error)) => {
            Some(error)
        }
        _ => None,
    }
}

/// A link that did not attach: refused with `amqp:unauthorized-access` (the server did not admit the
/// TLS client certificate or the registration) is [`Error::ConnectionRefused`] code 5, as MQTT's CONNACK
/// 5; anything else a transport error. fe2o3's error is the source.
fn attach_error(t: Transport, link: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    use fe2o3_amqp::types::definitions::{AmqpError, ErrorCondition};
    let Some(error) = refusal(&e) else {
        return transport_error(t, &format!("attaching {link}"), e);
    };
    let description = sanitize(error.description.as_deref().unwrap_or("no description"));
    match &error.condition {
        ErrorCondition::AmqpError(AmqpError::UnauthorizedAccess) => Error::ConnectionRefused {
            transport: t,
            code: 5,
            reason: format!("the server refused {link} (amqp:unauthorized-access): {description}"),
            source: Some(Box::new(e)),
        },
        condition => {
            let message = sanitize(&format!("the server refused {link} ({condition:?}): {description}"));
            Error::transport_from(t, message, e)
        }
    }
}

/// The answer's status (`iotdps-status`; else 4xx/5xx from the error body's `errorCode`, else 200), JSON body
/// and `retry-after`.
fn reply(t: Transport, message: Message<Body<Value>>) -> Result<Reply, Error> {
    let property = |name: &str| message.application_properties.as_ref().and_then(|p| p.0.get(name));
    let number = |v: &SimpleValue| match v {
        SimpleValue::Int(i) => u64::try_from(*i).ok(),
        SimpleValue::Uint(i) => Some(u64::from(*i)),
        SimpleValue::Long(i) => u64::try_from(*i).ok(),
        SimpleValue::Ulong(i) => Some(*i),
        SimpleValue::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    let body: Vec<u8> = match &message.body {
        Body::Data(batch) => batch.iter().flat_map(|d| d.0.iter().copied()).collect(),
        Body::Value(v) => match &v.0 {
            Value::String(s) => s.clone().into_bytes(),
            Value::Binary(b) => b.to_vec(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    if body.len() > MAX_BODY {
        return Err(Error::Protocol {
            transport: t,
            message: format!(
                "an answer of {} bytes: more than the {MAX_BODY} this client accepts",
                body.len()
            ),
        });
    }
    let status = property("iotdps-status")
        .and_then(number)
        .and_then(|s| u16::try_from(s).ok())
        .or_else(|| {
            serde_json::from_slice::<dps_wire::ErrorDetails>(&body)
                .ok()
                .and_then(|d| d.error_code)
                .and_then(|c| u16::try_from(c / 1000).ok())
                .filter(|s| (400..600).contains(s))
        })
        .unwrap_or(200);
    Ok(Reply {
        status,
        retry_after: property("retry-after").and_then(number),
        body,
    })
}
