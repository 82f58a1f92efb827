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

use crate::mqtt::split_endpoint;
use crate::session::{Call, Connect, Connection};
use crate::{Error, MAX_BODY, Reply, Transport};
use websocket::{io_error, transport_error};

const API_VERSION: &str = "com.microsoft:api-version";

/// An open AMQP connection to DPS: its session and the two links.
pub(crate) struct Amqp {
    transport: Transport,
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
            None => (sasl_tpm::Prefixed::new(Vec::new(), stream), None),
        };
        let mut builder = fe2o3_amqp::Connection::builder()
            .container_id(format!("dps-device-{}", c.registration_id))
            .hostname(host)
            .max_frame_size(u32::try_from(MAX_BODY + 1024).unwrap_or(u32::MAX));
        let username = format!("{}/registrations/{}", c.id_scope, c.registration_id);
        if let Some(token) = c.password {
            builder = builder.sasl_profile(SaslProfile::Plain {
                username: username.clone(),
                password: token.to_string(),
            });
        }
        let mut connection = builder.open_with_stream(stream).await.map_err(|e| open_error(t, e))?;
        let mut session = fe2o3_amqp::Session::begin(&mut connection)
            .await
            .map_err(|e| transport_error(t, "beginning the AMQP session", e))?;
        let address = format!("amqps://{host}/{username}");
        let properties = || {
            let mut fields = Fields::new();
            fields.insert(Symbol::from(API_VERSION), Value::String(c.api_version.to_string()));
            fields
        };
        let sender = Sender::builder()
            .name("sender_link")
            .source("remote_endpoint")
            .target(address.as_str())
            .properties(properties())
            .attach(&mut session)
            .await
            .map_err(|e| transport_error(t, "the server refused the sender link", e))?;
        let receiver = Receiver::builder()
            .name("recv_link")
            .source(address.as_str())
            .target("local_endpoint")
            .max_message_size(u64::try_from(MAX_BODY).unwrap_or(u64::MAX))
            .properties(properties())
            .attach(&mut session)
            .await
            .map_err(|e| transport_error(t, "the server refused the receiver link", e))?;
        Ok(Amqp {
            transport: t,
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
        self.sender
            .send(message)
            .await
            .map_err(|e| transport_error(self.transport, "sending a request", e))?;
        loop {
            let delivery = self
                .receiver
                .recv::<Body<Value>>()
                .await
                .map_err(|e| transport_error(self.transport, "waiting for the answer", e))?;
            self.receiver
                .accept(&delivery)
                .await
                .map_err(|e| transport_error(self.transport, "settling the answer", e))?;
            let message = delivery.into_message();
            let correlation = message.properties.as_ref().and_then(|p| p.correlation_id.clone());
            if correlation
                .as_ref()
                .is_some_and(|c| *c != MessageId::String(id.clone()))
            {
                tracing::debug!("ignoring an AMQP answer to another request");
                continue;
            }
            return reply(self.transport, message);
        }
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

    /// Detach both links, end the session, close the connection, within `deadline`.
    async fn close(mut self, deadline: Instant) -> Result<(), Error> {
        let t = self.transport;
        let steps = async {
            self.sender
                .close()
                .await
                .map_err(|e| transport_error(t, "detaching the sender link", e))?;
            self.receiver
                .close()
                .await
                .map_err(|e| transport_error(t, "detaching the receiver link", e))?;
            self.session
                .end()
                .await
                .map_err(|e| transport_error(t, "ending the AMQP session", e))?;
            self.connection
                .close()
                .await
                .map_err(|e| transport_error(t, "closing the AMQP connection", e))
        };
        tokio::time::timeout_at(deadline, steps)
            .await
            .unwrap_or_else(|_| Err(Error::transport(t, "the AMQP close was not answered in time")))
    }
}

fn open_error(t: Transport, e: fe2o3_amqp::connection::OpenError) -> Error {
    use fe2o3_amqp::connection::OpenError;
    match e {
        OpenError::SaslError { code, .. } => Error::transport(
            t,
            format!("the server refused the SAS token (SASL PLAIN outcome {code:?})"),
        ),
        OpenError::Io(io) => io_error(t, "opening the AMQP connection", io),
        other => transport_error(t, "opening the AMQP connection", other),
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
