//! A scripted AMQP server for the hostile-peer tests: fe2o3-amqp's acceptor over TLS (the loopback
//! certificate), misbehaving at one step of what DPS does (SASL, the link attach, the answer).

use std::sync::Arc;

use fe2o3_amqp::acceptor::sasl_acceptor::SaslServerFrame;
use fe2o3_amqp::acceptor::{ConnectionAcceptor, LinkAcceptor, LinkEndpoint, SaslAcceptor, SessionAcceptor};
use fe2o3_amqp::types::messaging::{ApplicationProperties, Body, Message, Properties};
use fe2o3_amqp::types::primitives::{Array, Binary, Symbol, Value};
use fe2o3_amqp::types::sasl::{SaslChallenge, SaslCode, SaslInit, SaslOutcome, SaslResponse};

/// The step at which the server misbehaves.
#[derive(Clone, Copy, Debug)]
pub enum Script {
    /// Answers every SASL init and response with another challenge.
    EndlessChallenges,
    /// Admits the client, begins the session, and never answers a link attach.
    NeverAttach,
    /// Attaches both links and answers each request `202 assigning` without an operation id.
    NoOperationId,
    /// Answers the register `200 assigned`, then writes nothing more once the client's next frames
    /// (its disposition, then its close) arrive: the server's answers never leave (its writes stall).
    AssignedThenMute,
    /// Answers the register `200 assigned` first, and settles the request (its disposition) only
    /// once the client has settled that answer.
    OutcomeAfterAnswer,
}

/// SASL: PLAIN admitted at once, or challenges without end; counts the challenges sent.
#[derive(Clone)]
struct Sasl {
    script: Script,
    challenges: Arc<std::sync::atomic::AtomicUsize>,
}

impl Sasl {
    fn next(&self) -> SaslServerFrame {
        match self.script {
            Script::EndlessChallenges => {
                self.challenges.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                SaslServerFrame::Challenge(SaslChallenge {
                    challenge: Binary::from(vec![0u8; 16]),
                })
            }
            _ => SaslServerFrame::Outcome(SaslOutcome {
                code: SaslCode::Ok,
                additional_data: None,
            }),
        }
    }
}

impl SaslAcceptor for Sasl {
    fn mechanisms(&self) -> Array<Symbol> {
        Array::from(vec![Symbol::from("PLAIN")])
    }
    fn on_init(&mut self, _init: SaslInit) -> SaslServerFrame {
        self.next()
    }
    fn on_response(&mut self, _response: SaslResponse) -> SaslServerFrame {
        self.next()
    }
}

/// A running scripted server: its endpoint, the CA to trust, how many SASL challenges it sent, and
/// when its writes stalled (`AssignedThenMute`).
pub struct AmqpServer {
    pub endpoint: String,
    pub ca_pem: String,
    pub challenges: Arc<std::sync::atomic::AtomicUsize>,
    pub muted: tokio::sync::watch::Receiver<Option<std::time::Instant>>,
}

/// The server's TLS stream: once `armed`, the next bytes read set `muted`, and from then its writes
/// stall (stay pending).
#[derive(Debug)]
struct Muting<S> {
    stream: S,
    armed: Arc<std::sync::atomic::AtomicBool>,
    muted: Arc<tokio::sync::watch::Sender<Option<std::time::Instant>>>,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Muting<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before && self.armed.load(std::sync::atomic::Ordering::SeqCst) {
            self.muted
                .send_if_modified(|m| m.is_none() && m.replace(std::time::Instant::now()).is_none());
        }
        polled
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Muting<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.muted.borrow().is_some() {
            return std::task::Poll::Pending;
        }
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.muted.borrow().is_some() {
            return std::task::Poll::Pending;
        }
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Start a server playing `script` on 127.0.0.1 (one tokio task per connection, on the caller's runtime).
pub async fn start(script: Script) -> AmqpServer {
    let (config, ca_pem) = test_support::tls::loopback_server_config();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    let challenges = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (mute, muted) = tokio::sync::watch::channel(None);
    let mute = Arc::new(mute);
    let sasl = Sasl {
        script,
        challenges: challenges.clone(),
    };
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tls = tokio_rustls::TlsAcceptor::from(config.clone());
            let sasl = sasl.clone();
            let mute = mute.clone();
            tokio::spawn(async move {
                let Ok(stream) = tls.accept(tcp).await else { return };
                let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let stream = Muting {
                    stream,
                    armed: armed.clone(),
                    muted: mute,
                };
                let acceptor = ConnectionAcceptor::builder()
                    .container_id("scripted")
                    .sasl_acceptor(sasl)
                    .build();
                let Ok(mut connection) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut session) = SessionAcceptor::new().accept(&mut connection).await else {
                    return;
                };
                if let Script::NeverAttach = script {
                    // Hold the session and let the attaches go unanswered until the client leaves.
                    let _ = connection.on_close().await;
                    drop(session);
                    return;
                }
                let (mut sender, mut receiver) = (None, None);
                while sender.is_none() || receiver.is_none() {
                    match LinkAcceptor::new().accept(&mut session).await {
                        Ok(LinkEndpoint::Sender(s)) => sender = Some(s),
                        Ok(LinkEndpoint::Receiver(r)) => receiver = Some(r),
                        Err(_) => return,
                    }
                }
                let (Some(mut sender), Some(mut receiver)) = (sender, receiver) else {
                    return;
                };
                let outcome_first = !matches!(script, Script::OutcomeAfterAnswer);
                while let Ok(delivery) = receiver.recv::<Body<Value>>().await {
                    if outcome_first {
                        let _ = receiver.accept(&delivery).await;
                    }
                    let id = delivery
                        .message()
                        .properties
                        .as_ref()
                        .and_then(|p| p.message_id.clone());
                    let mut properties = Properties::builder();
                    if let Some(id) = id {
                        properties = properties.correlation_id(id);
                    }
                    let (status, body): (i32, &[u8]) = match script {
                        Script::AssignedThenMute | Script::OutcomeAfterAnswer => (200, ASSIGNED),
                        _ => (202, br#"{"status":"assigning"}"#),
                    };
                    let answer = Message::builder()
                        .properties(properties.build())
                        .application_properties(
                            ApplicationProperties::builder().insert("iotdps-status", status).build(),
                        )
                        .data(Binary::from(body.to_vec()))
                        .build();
                    if let Script::AssignedThenMute = script {
                        // The client's disposition of this answer comes after the answer was
                        // written: the bytes read from then on mute the server.
                        armed.store(true, std::sync::atomic::Ordering::SeqCst);
                        let _ = sender.send_batchable(answer).await;
                        // Keep the connection (and its stalled writes) until the client leaves.
                        let _ = connection.on_close().await;
                        return;
                    }
                    // `send` returns when the client has settled the answer.
                    if sender.send(answer).await.is_err() {
                        return;
                    }
                    if !outcome_first {
                        let _ = receiver.accept(&delivery).await;
                    }
                }
            });
        }
    });
    AmqpServer {
        endpoint,
        ca_pem,
        challenges,
        muted,
    }
}

/// The `assigned` answer of `AssignedThenMute`.
const ASSIGNED: &[u8] = br#"{"operationId":"op","status":"assigned","registrationState":{"registrationId":"d","assignedHub":"hub.example.test","deviceId":"d","status":"assigned"}}"#;
