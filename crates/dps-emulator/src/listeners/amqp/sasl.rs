//! SASL for the AMQP listener: PLAIN with the DPS SAS token (authcid `{idScope}/registrations/{registrationId}`,
//! password the token), a `SESSION` request to the request handler before the connection opens (the token as
//! `Authorization`, as an MQTT CONNECT); `TPM`, the SDKs' own mechanism for TPM attestation (`sasl_tpm.rs`);
//! `MSSBCBS` (the C SDK's for the IoT Hub) and ANONYMOUS (the Node SDK's for the hub, and any client that
//! presented a certificate) admit nobody by themselves: the hub's put-token on `$cbs` authenticates, or the
//! client chain when the first link attaches (`hub.rs`, `connection.rs`); a DPS link without SASL PLAIN or
//! TPM and without a chain is refused.

use std::sync::{Arc, Mutex, PoisonError};

use fe2o3_amqp::acceptor::SaslAcceptor;
use fe2o3_amqp::acceptor::sasl_acceptor::SaslServerFrame;
use fe2o3_amqp::types::primitives::{Array, Binary, Symbol};
use fe2o3_amqp::types::sasl::{SaslChallenge, SaslCode, SaslInit, SaslOutcome, SaslResponse};
use zeroize::Zeroizing;

use super::login::{PlainLogin, session_path};
use super::sasl_tpm::{Step, TpmExchange};
use crate::request::{Client, Request, SESSION};
use crate::services::RequestHandler;

/// The SASL side of one connection; what it admitted is read back from `admitted` after the handshake.
#[derive(Clone)]
pub(crate) struct DpsSasl {
    pub(crate) handler: Arc<RequestHandler>,
    pub(crate) client: Client,
    pub(crate) admitted: Arc<Mutex<Option<PlainLogin>>>,
    /// Where a `TPM` exchange stands.
    pub(crate) tpm: TpmExchange,
}

const PLAIN: &str = "PLAIN";
const ANONYMOUS: &str = "ANONYMOUS";
/// The C SDK's mechanism for a CBS-authenticated hub connection (`sasl_mssbcbs.c`: empty init bytes).
const MSSBCBS: &str = "MSSBCBS";
const TPM: &str = dps_wire::sasl_tpm::MECHANISM;

fn outcome(code: SaslCode) -> SaslServerFrame {
    SaslServerFrame::Outcome(SaslOutcome {
        code,
        additional_data: None,
    })
}

impl DpsSasl {
    fn plain(&self, response: &[u8]) -> Result<PlainLogin, String> {
        let mut parts = response.split(|b| *b == 0);
        let (Some(_authzid), Some(authcid), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("the PLAIN response is not authzid NUL authcid NUL password".to_string());
        };
        let authcid = std::str::from_utf8(authcid).map_err(|_| "the PLAIN authcid is not UTF-8".to_string())?;
        let password = Zeroizing::new(
            String::from_utf8(password.to_vec()).map_err(|_| "the PLAIN password is not UTF-8".to_string())?,
        );
        let (id_scope, registration_id) = authcid
            .split_once("/registrations/")
            .filter(|(s, r)| !s.is_empty() && !r.is_empty() && !r.contains('/'))
            .ok_or_else(|| {
                format!("the PLAIN authcid {authcid:?} is not {{idScope}}/registrations/{{registrationId}}")
            })?;
        let session = Request {
            method: SESSION.to_string(),
            path: session_path(id_scope, registration_id),
            query: String::new(),
            headers: vec![("authorization".to_string(), password.to_string())],
            body: Vec::new(),
            client: self.client.clone(),
        };
        let answer = self.handler.handle(&session);
        if !(200..300).contains(&answer.status) {
            return Err(answer.error_message());
        }
        Ok(PlainLogin {
            id_scope: id_scope.to_string(),
            registration_id: registration_id.to_string(),
            sas_token: password,
        })
    }
}

impl DpsSasl {
    fn tpm_step(&mut self, step: Step) -> SaslServerFrame {
        match step {
            Step::Challenge(challenge) => SaslServerFrame::Challenge(SaslChallenge {
                challenge: Binary::from(challenge),
            }),
            Step::Admitted(login) => {
                tracing::debug!(registration_id = %login.registration_id, "AMQP SASL TPM accepted");
                *self.admitted.lock().unwrap_or_else(PoisonError::into_inner) = Some(login);
                outcome(SaslCode::Ok)
            }
            Step::Refused(reason) => {
                tracing::info!(%reason, "AMQP SASL TPM refused");
                self.tpm = TpmExchange::Idle;
                outcome(SaslCode::Auth)
            }
        }
    }
}

impl SaslAcceptor for DpsSasl {
    fn mechanisms(&self) -> Array<Symbol> {
        Array::from(vec![
            Symbol::from(PLAIN),
            Symbol::from(TPM),
            Symbol::from(MSSBCBS),
            Symbol::from(ANONYMOUS),
        ])
    }

    fn on_init(&mut self, init: SaslInit) -> SaslServerFrame {
        match init.mechanism.as_str() {
            PLAIN => {
                let response = init.initial_response.map(|b| b.into_vec()).unwrap_or_default();
                match self.plain(&response) {
                    Ok(login) => {
                        tracing::debug!(registration_id = %login.registration_id, "AMQP SASL PLAIN accepted");
                        *self.admitted.lock().unwrap_or_else(PoisonError::into_inner) = Some(login);
                        outcome(SaslCode::Ok)
                    }
                    Err(reason) => {
                        tracing::info!(%reason, "AMQP SASL PLAIN refused");
                        outcome(SaslCode::Auth)
                    }
                }
            }
            TPM => {
                let response = init.initial_response.map(|b| b.into_vec()).unwrap_or_default();
                let step = self.tpm.init(&response);
                self.tpm_step(step)
            }
            MSSBCBS | ANONYMOUS => outcome(SaslCode::Ok),
            other => {
                tracing::info!(mechanism = other, "AMQP SASL mechanism refused");
                outcome(SaslCode::Auth)
            }
        }
    }

    fn on_response(&mut self, response: SaslResponse) -> SaslServerFrame {
        // Only TPM has challenges (neither PLAIN nor ANONYMOUS): a response outside a TPM exchange is refused
        // at once, so no peer can keep SASL going.
        let step = self.tpm.respond(&response.response, &self.handler, &self.client);
        self.tpm_step(step)
    }
}
