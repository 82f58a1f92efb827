//! The SASL `TPM` mechanism of the AMQP listener (framing in `dps_wire::sasl_tpm`): the device's init
//! names it and carries its EK; the first challenge asks for the SRK; with both, a [`SESSION`] request
//! whose body has the `tpm` node gets the activation challenge from the one request handler (the
//! `authenticationKey` HTTPS's 401 carries), sent back in segments; the device's last response, a SAS
//! token signed with the activated key, is a [`SESSION`] request with that token as `Authorization`.
//!
//! Bounded by construction: each state takes one expected frame and at most
//! [`sasl_tpm::MAX_SEGMENTS`] challenges are ever sent, so any frame out of order ends the exchange
//! with `auth` (fe2o3's SASL decoder refuses a frame over 512 bytes, and the connection's deadline covers
//! a device that stops answering).

use base64::Engine as _;
use dps_wire::device::{DeviceRegistration, TpmAttestation, TpmChallenge};
use dps_wire::sasl_tpm::{self, TpmInit};
use zeroize::Zeroizing;

use super::login::{PlainLogin, session_path};
use crate::request::{Client, Request, SESSION};
use crate::services::RequestHandler;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Who the exchange is for.
#[derive(Clone, Debug)]
pub(crate) struct Device {
    id_scope: String,
    registration_id: String,
}

/// Where one connection's TPM exchange stands.
#[derive(Clone, Debug, Default)]
pub(crate) enum TpmExchange {
    /// No `TPM` init yet (or the exchange ended).
    #[default]
    Idle,
    /// The SRK was asked for.
    AwaitingSrk { device: Device, ek: Vec<u8> },
    /// Segments of the activation blob still to send after the device acknowledges the last one sent.
    Segments { device: Device, rest: Vec<Vec<u8>> },
    /// The last segment was sent: the SAS token is due.
    AwaitingToken { device: Device },
}

/// What the listener answers a frame with.
pub(crate) enum Step {
    Challenge(Vec<u8>),
    Admitted(PlainLogin),
    Refused(String),
}

impl TpmExchange {
    /// The device's `sasl-init` of mechanism `TPM`.
    pub(crate) fn init(&mut self, initial_response: &[u8]) -> Step {
        *self = TpmExchange::Idle;
        match TpmInit::decode(initial_response) {
            Ok(init) => {
                *self = TpmExchange::AwaitingSrk {
                    device: Device {
                        id_scope: init.id_scope.to_string(),
                        registration_id: init.registration_id.to_string(),
                    },
                    ek: init.endorsement_key.to_vec(),
                };
                Step::Challenge(sasl_tpm::SRK_REQUEST.to_vec())
            }
            Err(e) => Step::Refused(e.to_string()),
        }
    }

    /// A `sasl-response`; any refusal ends the exchange.
    pub(crate) fn respond(&mut self, response: &[u8], handler: &RequestHandler, client: &Client) -> Step {
        match std::mem::take(self) {
            TpmExchange::Idle => Step::Refused("a SASL response without a TPM exchange under way".into()),
            TpmExchange::AwaitingSrk { device, ek } => match sasl_tpm::decode_storage_root_key(response) {
                Ok(srk) => self.challenge(device, &ek, srk, handler, client),
                Err(e) => Step::Refused(e.to_string()),
            },
            TpmExchange::Segments { device, mut rest } => {
                if !sasl_tpm::is_segment_ack(response) {
                    return Step::Refused("a segment of the activation blob was not acknowledged with 0x00".into());
                }
                // `rest` is never empty here: the last segment moves to `AwaitingToken`.
                let next = rest.remove(0);
                *self = match rest.is_empty() {
                    true => TpmExchange::AwaitingToken { device },
                    false => TpmExchange::Segments { device, rest },
                };
                Step::Challenge(next)
            }
            TpmExchange::AwaitingToken { device } => match sasl_tpm::decode_token(response) {
                Ok(token) => admit(device, token, handler, client),
                Err(e) => Step::Refused(e.to_string()),
            },
        }
    }

    /// The activation challenge from the request handler, its first segment sent.
    fn challenge(&mut self, device: Device, ek: &[u8], srk: &[u8], handler: &RequestHandler, client: &Client) -> Step {
        let body = DeviceRegistration {
            registration_id: Some(device.registration_id.clone()),
            tpm: Some(TpmAttestation {
                endorsement_key: B64.encode(ek),
                storage_root_key: Some(B64.encode(srk)),
                extra: serde_json::Map::new(),
            }),
            ..DeviceRegistration::default()
        };
        let body = match serde_json::to_vec(&body) {
            Ok(b) => b,
            Err(e) => return Step::Refused(format!("encoding the session request: {e}")),
        };
        let answer = handler.handle(&session_request(&device, None, body, client));
        if answer.status != 401 {
            return Step::Refused(answer.error_message());
        }
        let blob = match serde_json::from_slice::<TpmChallenge>(&answer.body)
            .map_err(|e| e.to_string())
            .and_then(|c| B64.decode(c.authentication_key).map_err(|e| e.to_string()))
        {
            Ok(b) => b,
            // A 401 without an authenticationKey is a refusal (no enrollment, another EK).
            Err(_) => return Step::Refused(answer.error_message()),
        };
        let mut segments = match sasl_tpm::challenge_segments(&blob) {
            Ok(s) => s,
            Err(e) => return Step::Refused(e.to_string()),
        };
        let first = segments.remove(0);
        *self = match segments.is_empty() {
            true => TpmExchange::AwaitingToken { device },
            false => TpmExchange::Segments { device, rest: segments },
        };
        Step::Challenge(first)
    }
}

/// The SAS token of the last response, checked by a session request with it as `Authorization`.
fn admit(device: Device, token: &str, handler: &RequestHandler, client: &Client) -> Step {
    let answer = handler.handle(&session_request(&device, Some(token), Vec::new(), client));
    if !(200..300).contains(&answer.status) {
        return Step::Refused(answer.error_message());
    }
    Step::Admitted(PlainLogin {
        id_scope: device.id_scope,
        registration_id: device.registration_id,
        sas_token: Zeroizing::new(token.to_string()),
    })
}

fn session_request(device: &Device, token: Option<&str>, body: Vec<u8>, client: &Client) -> Request {
    Request {
        method: SESSION.to_string(),
        path: session_path(&device.id_scope, &device.registration_id),
        query: String::new(),
        headers: token
            .map(|t| ("authorization".to_string(), t.to_string()))
            .into_iter()
            .collect(),
        body,
        client: client.clone(),
    }
}
