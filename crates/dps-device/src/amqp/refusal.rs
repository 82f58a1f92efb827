//! A SASL refusal as the refusal of the same meaning over MQTT, for PLAIN (fe2o3's open) and for the `TPM`
//! mechanism (`sasl_tpm.rs`) alike.

use crate::error::Error;
use crate::transport::Transport;

/// A SASL outcome other than `ok` (PLAIN's, or the TPM mechanism's in `sasl_tpm`) as the refusal of the
/// same meaning over MQTT: `auth` and `sys-perm` are CONNACK 5 (not authorized: not retryable), `sys` and
/// `sys-temp` CONNACK 3 (server unavailable: retryable). `what` names what was refused.
pub(super) fn sasl_refused(
    t: Transport,
    code: &fe2o3_amqp::types::sasl::SaslCode,
    what: &str,
    source: Option<crate::error::Source>,
) -> Error {
    use fe2o3_amqp::types::sasl::SaslCode;
    let (n, outcome) = match code {
        SaslCode::Ok => (5, "ok, yet reported as a failure"),
        SaslCode::Auth => (5, "auth: authentication failed"),
        SaslCode::SysPerm => (5, "sys-perm: permanent system error"),
        SaslCode::Sys => (3, "sys: system error"),
        SaslCode::SysTemp => (3, "sys-temp: transient system error"),
    };
    Error::ConnectionRefused {
        transport: t,
        code: n,
        reason: format!("the server refused {what} (outcome {outcome})"),
        source,
    }
}
