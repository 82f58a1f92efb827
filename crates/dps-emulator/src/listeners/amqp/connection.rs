//! One AMQP connection: TLS, SASL or not, one session, the two links, then request after request; a connection
//! whose first link is the IoT Hub's (`$cbs`, `/devices/...`) goes to `hub.rs`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fe2o3_amqp::acceptor::{ConnectionAcceptor, LinkEndpoint, SessionAcceptor};
use fe2o3_amqp::types::messaging::{ApplicationProperties, Body, Data, Message, Properties};
use fe2o3_amqp::types::performatives::Attach;
use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Symbol, Value};
use fe2o3_amqp::{Receiver, Sender};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::time::{Instant, timeout, timeout_at};

use super::ended::{Ended, MAX_FRAME, accept_link, io, unless_closed};
use super::hub_messages::body_bytes;
use super::login::session_path;
use super::sasl::DpsSasl;
use crate::listeners::limits::Slot;
use crate::request::{Client, Request, Response, SESSION};
use crate::services::RequestHandler;
use ws_stream::Prefixed;

const API_VERSION: &str = "com.microsoft:api-version";
const OPERATION_TYPE: &str = "iotdps-operation-type";
const OPERATION_ID: &str = "iotdps-operation-id";
const REGISTER: &str = "iotdps-register";
const OPERATION_STATUS: &str = "iotdps-get-operationstatus";
/// The protocol id of the SASL header (`AMQP 3 1 0 0`); plain AMQP is `AMQP 0 1 0 0`.
const SASL_PROTOCOL_ID: u8 = 3;

/// What the links established: the registration, and how each request authenticates.
struct Registration {
    id_scope: String,
    registration_id: String,
    api_version: String,
    /// The SAS token of SASL PLAIN (sent with each request as the Authorization header); `None`: the client
    /// certificate chain.
    sas_token: Option<zeroize::Zeroizing<String>>,
}

/// Serve AMQP over an established (TLS or WebSocket) stream of `client`: the protocol header, SASL, open,
/// begin and both attaches by `deadline`, then each request within `request_timeout`.
pub(crate) async fn serve<S>(
    mut stream: S,
    handler: &Arc<RequestHandler>,
    client: Client,
    request_timeout: Duration,
    deadline: Instant,
    slot: &Slot,
) -> Result<(), Ended>
where
    S: AsyncRead + AsyncWrite + std::fmt::Debug + Send + Unpin + 'static,
{
    let mut header = [0u8; 8];
    timeout_at(deadline, stream.read_exact(&mut header))
        .await
        .map_err(|_| Ended::Deadline("the AMQP protocol header"))?
        .map_err(io("reading the AMQP protocol header"))?;
    let stream = Prefixed::new(header.to_vec(), stream);
    let admitted = Arc::new(Mutex::new(None));
    let opened = if header[4] == SASL_PROTOCOL_ID {
        let sasl = DpsSasl {
            handler: handler.clone(),
            client: client.clone(),
            admitted: admitted.clone(),
            tpm: Default::default(),
        };
        let acceptor = ConnectionAcceptor::builder()
            .container_id("dps-emulator")
            .max_frame_size(MAX_FRAME)
            .sasl_acceptor(sasl)
            .build();
        timeout_at(deadline, acceptor.accept(stream)).await
    } else {
        let acceptor = ConnectionAcceptor::builder()
            .container_id("dps-emulator")
            .max_frame_size(MAX_FRAME)
            .build();
        timeout_at(deadline, acceptor.accept(stream)).await
    };
    let mut connection = opened
        .map_err(|_| Ended::Deadline("SASL and the AMQP open"))?
        .map_err(|e| Ended::Refused(format!("opening the AMQP connection: {e}")))?;
    let login = admitted.lock().unwrap_or_else(PoisonError::into_inner).take();
    let mut session = timeout_at(deadline, SessionAcceptor::new().accept(&mut connection))
        .await
        .map_err(|_| Ended::Deadline("the AMQP session (begin)"))?
        .map_err(|e| Ended::Refused(format!("beginning the AMQP session: {e}")))?;

    let first = timeout_at(deadline, session.next_incoming_attach())
        .await
        .map_err(|_| Ended::Deadline("attaching the sender and receiver links"))?
        .ok_or_else(|| Ended::Refused("the session ended before both links were attached".into()))?;
    if super::hub::is_hub_link(&first) {
        return super::hub::serve(
            connection,
            session,
            first,
            handler,
            client,
            request_timeout,
            deadline,
            slot,
        )
        .await;
    }
    let mut first = Some(first);
    let mut registration: Option<Registration> = None;
    let mut receiver: Option<Receiver> = None;
    let mut sender: Option<Sender> = None;
    while receiver.is_none() || sender.is_none() {
        let attach = match first.take() {
            Some(a) => a,
            None => timeout_at(deadline, session.next_incoming_attach())
                .await
                .map_err(|_| Ended::Deadline("attaching the sender and receiver links"))?
                .ok_or_else(|| Ended::Refused("the session ended before both links were attached".into()))?,
        };
        let link = check_attach(&attach, handler, &client, login.as_ref(), &mut registration);
        let endpoint = accept_link(attach, &mut session, deadline).await?;
        if let Err(reason) = link {
            tracing::info!(%reason, "AMQP link refused");
            let error = fe2o3_amqp::types::definitions::Error::new(
                fe2o3_amqp::types::definitions::AmqpError::UnauthorizedAccess,
                Some(reason.clone()),
                None,
            );
            let _ = match endpoint {
                LinkEndpoint::Sender(s) => timeout(Duration::from_secs(1), s.close_with_error(error)).await.is_ok(),
                LinkEndpoint::Receiver(r) => timeout(Duration::from_secs(1), r.close_with_error(error)).await.is_ok(),
            };
            let _ = timeout(Duration::from_secs(1), connection.close()).await;
            return Err(Ended::Refused(reason));
        }
        match endpoint {
            LinkEndpoint::Sender(s) => sender = Some(s),
            LinkEndpoint::Receiver(r) => receiver = Some(r),
        }
    }
    let (Some(mut receiver), Some(mut sender), Some(registration)) = (receiver, sender, registration) else {
        return Err(Ended::Refused("no links".into()));
    };
    tracing::debug!(registration_id = %registration.registration_id, "AMQP links attached");

    let result = loop {
        slot.idle(true);
        let delivery = match unless_closed(
            &mut connection,
            timeout(request_timeout, receiver.recv::<Body<Value>>()),
        )
        .await
        {
            None => break Ok(()),
            Some(Err(_)) => break Err(Ended::Deadline("the next request")),
            // The client detached or closed: the normal end.
            Some(Ok(Err(e))) => {
                tracing::debug!(error = %e, "AMQP receive ended");
                break Ok(());
            }
            Some(Ok(Ok(d))) => d,
        };
        slot.idle(false);
        if let Err(e) = receiver.accept(&delivery).await {
            break Err(Ended::Refused(format!("settling a request: {e}")));
        }
        let answer = answer(handler, &registration, &client, delivery.into_message());
        // The answer is sent unsettled: a client that closes instead of settling it ends the wait.
        match unless_closed(&mut connection, timeout(request_timeout, sender.send(answer))).await {
            None => break Ok(()),
            Some(Err(_)) => break Err(Ended::Deadline("sending an answer (the client gave no link credit)")),
            Some(Ok(Err(e))) => break Err(Ended::Refused(format!("sending an answer: {e}"))),
            Some(Ok(Ok(_))) => {}
        }
    };
    if connection.is_closed() {
        // The peer closed (fe2o3's engine answered its close): the links and session ended with it (AMQP 1.0,
        // 2.4.3 and 2.7.9), and no detach or end would be answered.
        return result;
    }
    let _ = timeout(Duration::from_secs(1), sender.close()).await;
    let _ = timeout(Duration::from_secs(1), receiver.close()).await;
    let _ = timeout(Duration::from_secs(1), session.end()).await;
    let _ = timeout(Duration::from_secs(1), connection.close()).await;
    result
}

/// Check a link's address and api-version against what SASL admitted (or the client chain), recording the
/// registration on the first link.
fn check_attach(
    attach: &Attach,
    handler: &RequestHandler,
    client: &Client,
    login: Option<&super::login::PlainLogin>,
    registration: &mut Option<Registration>,
) -> Result<(), String> {
    use fe2o3_amqp::types::messaging::TargetArchetype;
    // The device's sender link names the registration in its target, its receiver link in its source.
    let address = match attach.role {
        fe2o3_amqp::types::definitions::Role::Sender => attach.target.as_deref().and_then(|t| match t {
            TargetArchetype::Target(t) => t.address.clone(),
            #[allow(unreachable_patterns)]
            _ => None,
        }),
        fe2o3_amqp::types::definitions::Role::Receiver => attach.source.as_ref().and_then(|s| s.address.clone()),
    }
    .ok_or_else(|| format!("link '{}' has no address", attach.name))?;
    let (id_scope, registration_id) = parse_address(&address).ok_or_else(|| {
        format!("link address {address:?} is not [amqps://HOST/]{{idScope}}/registrations/{{registrationId}}")
    })?;
    let api_version = attach
        .properties
        .as_ref()
        .and_then(|p| p.get(&Symbol::from(API_VERSION)))
        .and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Symbol(s) => Some(s.as_str().to_string()),
            _ => None,
        })
        .ok_or_else(|| format!("link '{}' has no {API_VERSION} property", attach.name))?;
    if let Some(r) = registration.as_ref() {
        if r.id_scope != id_scope || r.registration_id != registration_id {
            return Err(format!(
                "link address {address:?} names another registration than the first link"
            ));
        }
        return Ok(());
    }
    let sas_token = match login {
        Some(login) => {
            if login.id_scope != id_scope || login.registration_id != registration_id {
                return Err(format!(
                    "link address {address:?} is not the registration SASL authenticated ('{}/registrations/{}')",
                    login.id_scope, login.registration_id
                ));
            }
            Some(login.sas_token.clone())
        }
        None => {
            // No SASL PLAIN: the client chain opens the session, as for an MQTT CONNECT without a password.
            let session = Request {
                method: SESSION.to_string(),
                path: session_path(id_scope, registration_id),
                query: format!("api-version={}", hsm_core::sas::url_encode(&api_version)),
                headers: Vec::new(),
                body: Vec::new(),
                client: client.clone(),
            };
            let answer = handler.handle(&session);
            if !(200..300).contains(&answer.status) {
                return Err(answer.error_message());
            }
            None
        }
    };
    *registration = Some(Registration {
        id_scope: id_scope.to_string(),
        registration_id: registration_id.to_string(),
        api_version,
        sas_token,
    });
    Ok(())
}

/// `amqps://HOST/{idScope}/registrations/{registrationId}` as the C SDK names a link (the host is not checked:
/// it is the name the client dialled), or `{idScope}/registrations/{registrationId}` as the Node SDK does.
fn parse_address(address: &str) -> Option<(&str, &str)> {
    let path = match address.split_once("://") {
        Some((_, rest)) => rest.split_once('/')?.1,
        None => address.strip_prefix('/').unwrap_or(address),
    };
    let (scope, registration_id) = path.split_once("/registrations/")?;
    (!scope.is_empty() && !scope.contains('/') && !registration_id.is_empty() && !registration_id.contains('/'))
        .then_some((scope, registration_id))
}

/// Answer one request message: the request HTTPS would carry, to the request handler.
fn answer(
    handler: &RequestHandler,
    registration: &Registration,
    client: &Client,
    message: Message<Body<Value>>,
) -> Message<Data> {
    let property = |name: &str| {
        message
            .application_properties
            .as_ref()
            .and_then(|p| p.0.get(name))
            .and_then(|v| match v {
                SimpleValue::String(s) => Some(s.clone()),
                SimpleValue::Symbol(s) => Some(s.as_str().to_string()),
                _ => None,
            })
    };
    let response = match property(OPERATION_TYPE).as_deref() {
        Some(REGISTER) => handler.handle(&request(
            registration,
            client,
            "PUT",
            "register".into(),
            body_bytes(&message.body),
        )),
        Some(OPERATION_STATUS) => match property(OPERATION_ID) {
            Some(op) => handler.handle(&request(
                registration,
                client,
                "GET",
                format!("operations/{}", hsm_core::sas::url_encode(&op)),
                Vec::new(),
            )),
            None => error(400, &format!("no {OPERATION_ID} application property")),
        },
        Some(other) => error(400, &format!("unknown {OPERATION_TYPE} {other:?}")),
        None => error(400, &format!("no {OPERATION_TYPE} application property")),
    };
    let correlation_id = message
        .properties
        .as_ref()
        .and_then(|p| p.correlation_id.clone().or_else(|| p.message_id.clone()));
    let mut properties = Properties::builder();
    if let Some(id) = correlation_id {
        properties = properties.correlation_id(id);
    }
    let mut application =
        ApplicationProperties::builder().insert("iotdps-status", SimpleValue::Int(i32::from(response.status)));
    if let Some((_, retry)) = response
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("retry-after"))
    {
        application = application.insert("retry-after", SimpleValue::String(retry.clone()));
    }
    Message::builder()
        .properties(properties.build())
        .application_properties(application.build())
        .data(Binary::from(response.body))
        .build()
}

/// The request HTTPS would carry: the SAS token (SASL PLAIN's password) as the Authorization header, so the
/// device API authenticates each request as over HTTPS.
fn request(registration: &Registration, client: &Client, method: &str, tail: String, body: Vec<u8>) -> Request {
    Request {
        method: method.to_string(),
        path: format!(
            "{}/{tail}",
            session_path(&registration.id_scope, &registration.registration_id)
        ),
        query: format!("api-version={}", hsm_core::sas::url_encode(&registration.api_version)),
        headers: registration
            .sas_token
            .iter()
            .map(|p| ("authorization".to_string(), p.to_string()))
            .collect(),
        body,
        client: client.clone(),
    }
}

fn error(status: u16, message: &str) -> Response {
    crate::request::error(status, u32::from(status) * 1000 + 5, message)
}

#[cfg(test)]
mod tests {
    use super::parse_address;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("amqps://localhost/0ne000A/registrations/dev-1"),
            Some(("0ne000A", "dev-1"))
        );
        // The Node SDK's form.
        assert_eq!(parse_address("0ne000A/registrations/dev-1"), Some(("0ne000A", "dev-1")));
        assert_eq!(parse_address("amqps://localhost/0ne000A/registrations/"), None);
        assert_eq!(parse_address("amqps://localhost/registrations/dev"), None);
        assert_eq!(parse_address("amqps://localhost/a/b/registrations/dev"), None);
    }
}
