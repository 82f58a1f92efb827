//! Who SASL admitted on an AMQP connection (PLAIN's authcid and token, or what the `TPM` mechanism
//! established), and the session resource it names: shared by the two mechanisms and the connection.

use zeroize::Zeroizing;

/// Who SASL admitted: the scope and registration of PLAIN's authcid (or of TPM's init), and the SAS token
/// (sent with each request as the Authorization header, as over HTTPS).
#[derive(Debug)]
pub(crate) struct PlainLogin {
    pub(crate) id_scope: String,
    pub(crate) registration_id: String,
    pub(crate) sas_token: Zeroizing<String>,
}

/// The resource a session is opened on: `/{idScope}/registrations/{registrationId}`, encoded as HTTPS sends it.
pub(super) fn session_path(id_scope: &str, registration_id: &str) -> String {
    format!(
        "/{}/registrations/{}",
        hsm_core::sas::url_encode(id_scope),
        hsm_core::sas::url_encode(registration_id)
    )
}
