//! The IoT Hub over AMQP (and AMQP over WebSockets): an adapter into the hub service (`services/iot_hub.rs`),
//! chosen by the first link a connection attaches (`$cbs` or a `/devices/{id}/...` address).
//!
//! As the C SDK (`iothubtransport_amqp_*.c`) speaks it: a SAS device opens with SASL `MSSBCBS` (the Node SDK
//! with `ANONYMOUS`) and puts its token on the CBS node `$cbs` (a sender and a receiver link, both addressed
//! `$cbs`) before it attaches anything else; an x509 device opens without SASL over TLS with its client
//! certificate. Each put-token is the hub session's [`SESSION`] request (`Host` the audience's hub, the
//! token as `Authorization`): admitted, status-code 200 and the device may attach its links until the token
//! expires (a renewed token put on the same connection extends it; an expired one not renewed closes the
//! connection, as IoT Hub drops it); refused, status-code 401 with the service's message. An x509 device's
//! first link makes the session request with the client chain. A link to a device the connection has not
//! authenticated is refused (detached with `amqp:unauthorized-access`), as is an address this hub does not
//! serve.
//!
//! Who the connection authenticated, and each device request with its credentials: `hub_auth.rs`.
//!
//! Links (addresses `[amqps://{hub}]/devices/{id}/...`): `messages/events` (telemetry: each message becomes
//! `POST /devices/{id}/messages/events`, accepted when kept), `twin` (a sender and a receiver: GET becomes
//! `GET /devices/{id}/twin`, PATCH `/properties/reported` `PATCH .../twin/properties/reported`, a PUT or
//! DELETE of the desired-properties notifications is answered 200 and nothing is ever sent on it),
//! `messages/devicebound` (attached and left idle: this hub sends no cloud-to-device messages).
//!
//! Bounds: a connection that authenticates no device within the request deadline is closed; so is one whose
//! last token expired; messages are at most the listener's frame size.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fe2o3_amqp::acceptor::{LinkEndpoint, ListenerConnectionHandle, ListenerSessionHandle};
use fe2o3_amqp::types::definitions::{AmqpError, Error as AmqpErrorValue, Role};
use fe2o3_amqp::types::messaging::{Body, Message, TargetArchetype};
use fe2o3_amqp::types::performatives::Attach;
use fe2o3_amqp::types::primitives::Value;
use fe2o3_amqp::{Receiver, Sender};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};

use super::ended::{Ended, accept_link};
use super::hub_auth::Hub;
use super::hub_messages::{self as wire, TwinOperation};
use crate::listeners::limits::Slot;
use crate::request::{Client, Response};
use crate::services::RequestHandler;

const CBS: &str = "$cbs";

/// Whether a connection's first link is the hub's (CBS or a device address), not DPS's.
pub(super) fn is_hub_link(attach: &Attach) -> bool {
    link_address(attach).is_some_and(|a| a == CBS || device_path(&a).is_some())
}

/// The link's address: the device's sender names it in its target, its receiver in its source.
fn link_address(attach: &Attach) -> Option<String> {
    match attach.role {
        Role::Sender => attach.target.as_deref().and_then(|t| match t {
            TargetArchetype::Target(t) => t.address.clone(),
            #[allow(unreachable_patterns)]
            _ => None,
        }),
        Role::Receiver => attach.source.as_ref().and_then(|s| s.address.clone()),
    }
}

/// `[amqps://{hub}]/devices/{id}/{rest}`: the hub named (if any), the device id and the rest.
fn device_path(address: &str) -> Option<(Option<String>, String, String)> {
    let (host, path) = match address.split_once("://") {
        Some((_, rest)) => {
            let (host, path) = rest.split_once('/')?;
            (Some(host.to_string()), path)
        }
        None => (None, address.strip_prefix('/').unwrap_or(address)),
    };
    let (device, rest) = path.strip_prefix("devices/")?.split_once('/')?;
    (!device.is_empty()).then(|| (host, device.to_string(), rest.to_string()))
}

type Answer = Message<Body<Value>>;

/// An answers channel: its sending side, and its receiving side until the link that sends them takes it.
type Outbox = (mpsc::Sender<Answer>, Option<mpsc::Receiver<Answer>>);

/// Channels of the answers for the device's receiver links (CBS answers, twin answers per device).
#[derive(Default)]
struct Outboxes {
    by_address: HashMap<String, Outbox>,
}

impl Outboxes {
    fn entry(&mut self, key: &str) -> &mut Outbox {
        self.by_address.entry(key.to_string()).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(16);
            (tx, Some(rx))
        })
    }
}

/// Serve the hub over an open connection and session whose first link is `first`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn serve(
    mut connection: ListenerConnectionHandle,
    mut session: ListenerSessionHandle,
    first: Attach,
    handler: &Arc<RequestHandler>,
    client: Client,
    request_timeout: Duration,
    deadline: Instant,
    slot: &Slot,
) -> Result<(), Ended> {
    let hub = Arc::new(Hub {
        handler: handler.clone(),
        client,
        grants: Mutex::new(HashMap::new()),
        changed: Notify::new(),
    });
    let mut outboxes = Outboxes::default();
    let mut tasks: JoinSet<Result<(), String>> = JoinSet::new();
    let mut idle: Vec<Sender> = Vec::new();
    let mut next = Some(first);
    let result = loop {
        let attach = match next.take() {
            Some(a) => a,
            None => {
                slot.idle(true);
                let close_at = hub.close_at(deadline);
                tokio::select! {
                    a = session.next_incoming_attach() => match a {
                        Some(a) => a,
                        None => break Ok(()),
                    },
                    () = async { match close_at { Some(at) => sleep_until(at).await, None => std::future::pending().await } } => {
                        break Err(match hub.grants().is_empty() {
                            true => Ended::Deadline("authenticating a device (put-token or x509 link)"),
                            false => Ended::Refused("the device's SAS token expired and was not renewed".into()),
                        });
                    }
                    () = hub.changed.notified() => continue,
                    Some(done) = tasks.join_next() => match done {
                        Ok(Ok(())) => continue,
                        Ok(Err(reason)) => break Err(Ended::Refused(reason)),
                        Err(e) => break Err(Ended::Refused(format!("a link task failed: {e}"))),
                    },
                }
            }
        };
        slot.idle(false);
        let address = link_address(&attach).unwrap_or_default();
        let role = attach.role.clone();
        let admitted = admit(&hub, &address, &role);
        let endpoint = accept_link(attach, &mut session, Instant::now() + request_timeout).await?;
        let purpose = match admitted {
            Ok(p) => p,
            Err(reason) => {
                tracing::info!(%address, %reason, "AMQP hub link refused");
                let error = AmqpErrorValue::new(AmqpError::UnauthorizedAccess, Some(reason), None);
                let _ = match endpoint {
                    LinkEndpoint::Sender(s) => timeout(Duration::from_secs(1), s.close_with_error(error)).await.is_ok(),
                    LinkEndpoint::Receiver(r) => {
                        timeout(Duration::from_secs(1), r.close_with_error(error)).await.is_ok()
                    }
                };
                continue;
            }
        };
        match (purpose, endpoint) {
            (Purpose::CbsRequests, LinkEndpoint::Receiver(r)) => {
                let out = outboxes.entry(CBS).0.clone();
                tasks.spawn(cbs_requests(hub.clone(), r, out));
            }
            (Purpose::Twin(device), LinkEndpoint::Receiver(r)) => {
                let out = outboxes.entry(&device).0.clone();
                tasks.spawn(twin_requests(hub.clone(), device, r, out));
            }
            (Purpose::Telemetry(device), LinkEndpoint::Receiver(r)) => {
                tasks.spawn(telemetry(hub.clone(), device, r));
            }
            (Purpose::CbsRequests, LinkEndpoint::Sender(s)) => match outboxes.entry(CBS).1.take() {
                Some(rx) => drop(tasks.spawn(answers(s, rx, request_timeout))),
                None => break Err(Ended::Refused("a second $cbs receiver link".into())),
            },
            (Purpose::Twin(device), LinkEndpoint::Sender(s)) => match outboxes.entry(&device).1.take() {
                Some(rx) => drop(tasks.spawn(answers(s, rx, request_timeout))),
                None => break Err(Ended::Refused("a second twin receiver link".into())),
            },
            (Purpose::CloudToDevice, LinkEndpoint::Sender(s)) => idle.push(s),
            (_, _) => break Err(Ended::Refused(format!("link {address:?} attached in the wrong role"))),
        }
    };
    tasks.abort_all();
    if connection.is_closed() {
        // The peer closed: its links and session ended with the connection; nothing would answer a detach.
        return result;
    }
    for s in idle {
        let _ = timeout(Duration::from_secs(1), s.close()).await;
    }
    let _ = timeout(Duration::from_secs(1), session.end()).await;
    let _ = timeout(Duration::from_secs(1), connection.close()).await;
    result
}

/// What a link is for.
enum Purpose {
    CbsRequests,
    Telemetry(String),
    Twin(String),
    CloudToDevice,
}

/// Check a link's address against what the connection authenticated.
fn admit(hub: &Hub, address: &str, role: &Role) -> Result<Purpose, String> {
    if address == CBS {
        return Ok(Purpose::CbsRequests);
    }
    let (host, device, rest) =
        device_path(address).ok_or_else(|| format!("link address {address:?} is not served by this hub"))?;
    let purpose = match (rest.as_str(), role) {
        ("messages/events", Role::Sender) => Purpose::Telemetry(device.clone()),
        ("twin", _) => Purpose::Twin(device.clone()),
        ("messages/devicebound", Role::Receiver) => Purpose::CloudToDevice,
        _ => return Err(format!("link address {address:?} is not served by this hub")),
    };
    hub.admit_link(host.as_deref(), &device)?;
    Ok(purpose)
}

/// Settle each request that arrives on `receiver` and send what `answer` makes of it on the answers
/// link of `link` (`out`), until the client detaches; an `Err` from `answer` ends the connection.
async fn requests(
    link: &str,
    what: &str,
    mut receiver: Receiver,
    out: mpsc::Sender<Message<Body<Value>>>,
    mut answer: impl FnMut(Message<Body<Value>>) -> Result<Message<Body<Value>>, String>,
) -> Result<(), String> {
    loop {
        let Ok(delivery) = receiver.recv::<Body<Value>>().await else {
            return Ok(());
        };
        receiver
            .accept(&delivery)
            .await
            .map_err(|e| format!("settling a {what}: {e}"))?;
        out.send(answer(delivery.into_message())?)
            .await
            .map_err(|_| format!("the {link} answers link is gone"))?;
    }
}

/// Answer each put-token on the `$cbs` answers link.
async fn cbs_requests(
    hub: Arc<Hub>,
    receiver: Receiver,
    out: mpsc::Sender<Message<Body<Value>>>,
) -> Result<(), String> {
    requests("$cbs", "put-token", receiver, out, |message| {
        Ok(match wire::put_token(&message) {
            Ok(put) => {
                let (status, description) = hub.put_token(&put);
                wire::put_token_answer(put.message_id, status, &description)
            }
            Err(reason) => {
                let id = message.properties.as_ref().and_then(|p| p.message_id.clone());
                wire::put_token_answer(id, 400, &reason)
            }
        })
    })
    .await
}

/// Send the answers of `rx` on `sender` until the connection ends.
async fn answers(
    mut sender: Sender,
    mut rx: mpsc::Receiver<Message<Body<Value>>>,
    limit: Duration,
) -> Result<(), String> {
    while let Some(message) = rx.recv().await {
        match timeout(limit, sender.send(message)).await {
            Err(_) => return Err("sending an answer (the client gave no link credit)".into()),
            Ok(Err(e)) => return Err(format!("sending an answer: {e}")),
            Ok(Ok(_)) => {}
        }
    }
    Ok(())
}

/// Keep each telemetry message; a refused one (an expired token) ends the connection, as IoT Hub does.
async fn telemetry(hub: Arc<Hub>, device: String, mut receiver: Receiver) -> Result<(), String> {
    loop {
        let Ok(delivery) = receiver.recv::<Body<Value>>().await else {
            return Ok(());
        };
        let format = *delivery.message_format();
        let messages = match wire::telemetry(format, delivery.message().clone()) {
            Ok(m) => m,
            Err(reason) => {
                let error = AmqpErrorValue::new(AmqpError::DecodeError, Some(reason.clone()), None);
                let _ = receiver.reject(&delivery, error).await;
                return Err(reason);
            }
        };
        for m in messages {
            let answer = hub.device_request("POST", &device, "/messages/events", m.body, Some(m.properties));
            if !(200..300).contains(&answer.status) {
                let reason = answer.error_message();
                let error = AmqpErrorValue::new(AmqpError::UnauthorizedAccess, Some(reason.clone()), None);
                let _ = receiver.reject(&delivery, error).await;
                return Err(format!("telemetry of '{device}' refused: {reason}"));
            }
        }
        receiver
            .accept(&delivery)
            .await
            .map_err(|e| format!("settling telemetry: {e}"))?;
    }
}

/// Answer each twin request of `device` on its twin answers link.
async fn twin_requests(
    hub: Arc<Hub>,
    device: String,
    receiver: Receiver,
    out: mpsc::Sender<Message<Body<Value>>>,
) -> Result<(), String> {
    requests("twin", "twin request", receiver, out, |message| {
        let answer = match wire::twin_operation(&message) {
            Ok(TwinOperation::Get) => hub.device_request("GET", &device, "/twin", Vec::new(), None),
            Ok(TwinOperation::PatchReported) => {
                let body = wire::body_bytes(&message.body);
                hub.device_request("PATCH", &device, "/twin/properties/reported", body, None)
            }
            Ok(TwinOperation::Subscription) => Response::empty(200),
            Err(reason) => crate::request::error(400, 400004, reason),
        };
        if matches!(answer.status, 401 | 403) {
            return Err(format!(
                "twin request of '{device}' refused: {}",
                answer.error_message()
            ));
        }
        let version = answer.header("$version").and_then(|v| v.parse::<i64>().ok());
        // IoT Hub answers a reported-properties patch 204 over AMQP as over MQTT.
        Ok(wire::twin_answer(&message, answer.status, version, answer.body))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::device_path;

    #[test]
    fn device_addresses() {
        assert_eq!(
            device_path("amqps://h.example/devices/d1/messages/events"),
            Some((Some("h.example".into()), "d1".into(), "messages/events".into()))
        );
        assert_eq!(
            device_path("/devices/d1/twin"),
            Some((None, "d1".into(), "twin".into()))
        );
        assert_eq!(device_path("amqps://h/0ne/registrations/r"), None);
        assert_eq!(device_path("/devices//twin"), None);
    }
}
