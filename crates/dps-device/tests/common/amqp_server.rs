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

/// A running scripted server: its endpoint, the CA to trust, and how many SASL challenges it sent.
pub struct AmqpServer {
    pub endpoint: String,
    pub ca_pem: String,
    pub challenges: Arc<std::sync::atomic::AtomicUsize>,
}

/// Start a server playing `script` on 127.0.0.1 (one tokio task per connection, on the caller's runtime).
pub async fn start(script: Script) -> AmqpServer {
    let (config, ca_pem) = test_support::tls::loopback_server_config();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    let challenges = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sasl = Sasl {
        script,
        challenges: challenges.clone(),
    };
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tls = tokio_rustls::TlsAcceptor::from(config.clone());
            let sasl = sasl.clone();
            tokio::spawn(async move {
                let Ok(stream) = tls.accept(tcp).await else { return };
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
                while let Ok(delivery) = receiver.recv::<Body<Value>>().await {
                    let _ = receiver.accept(&delivery).await;
                    let id = delivery
                        .message()
                        .properties
                        .as_ref()
                        .and_then(|p| p.message_id.clone());
                    let mut properties = Properties::builder();
                    if let Some(id) = id {
                        properties = properties.correlation_id(id);
                    }
                    let answer = Message::builder()
                        .properties(properties.build())
                        .application_properties(ApplicationProperties::builder().insert("iotdps-status", 202).build())
                        .data(Binary::from(br#"{"status":"assigning"}"#.to_vec()))
                        .build();
                    if sender.send(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    AmqpServer {
        endpoint,
        ca_pem,
        challenges,
    }
}
