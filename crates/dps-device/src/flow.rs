//! The exchanges of a registration: the register request (and a TPM's activation challenge), the
//! polls of the operation, the status lookup; an answer of 429 or 5xx is sent again after the
//! service's `retry-after` (HTTP header, MQTT topic property, or the error body's `info.retryAfter`)
//! as long as the overall deadline allows.

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use dps_wire::device::{DeviceRegistration, DeviceRegistrationResult, EnrollmentStatus, TpmChallenge};
use tokio::time::Instant;

use crate::answer;
use crate::dispatch::Session;
use crate::error::{is_transient, protocol, sanitize};
use crate::session::{Call, Connection};
use crate::{Assignment, Attestation, Error, ProvisioningClient, Reply, Transport, with_tpm};

/// Whether waiting `wait` before the next request stays before `deadline`; else the timeout, with `detail`
/// and how long the registration has run.
fn within_deadline(
    client: &ProvisioningClient,
    wait: Duration,
    deadline: Instant,
    detail: impl FnOnce() -> String,
) -> Result<(), Error> {
    let now = Instant::now();
    if now + wait >= deadline {
        return Err(Error::Timeout {
            after: client
                .options
                .timeout
                .saturating_sub(deadline.saturating_duration_since(now)),
            detail: detail(),
        });
    }
    Ok(())
}

/// Send `call`, and again after each 429 or 5xx answer (waiting what the service asks, within the
/// floor and ceiling of the options) until another answer comes or the deadline would pass.
async fn send(
    client: &ProvisioningClient,
    session: &mut Session,
    call: Call<'_>,
    auth: Option<&str>,
    deadline: Instant,
    progress: &Mutex<String>,
) -> Result<Reply, Error> {
    let t = client.transport;
    loop {
        let reply = session.call(call, auth, deadline).await?;
        if !is_transient(reply.status) {
            return Ok(reply);
        }
        let error = answer::service_error(t, &reply);
        let retry_after = reply
            .retry_after
            .or_else(|| answer::error_details(&reply).and_then(|d| d.retry_after_secs()));
        let wait = client.retry(retry_after);
        within_deadline(client, wait, deadline, || {
            format!("{error}; sending again in {}s would pass the deadline", wait.as_secs())
        })?;
        tracing::info!(
            status = reply.status,
            wait_ms = wait.as_millis() as u64,
            "DPS asked to retry later"
        );
        if let Ok(mut p) = progress.lock() {
            *p = format!("{error}; sent again after {}s", wait.as_secs());
        }
        tokio::time::sleep(wait).await;
    }
}

/// Register (a TPM through its activation challenge) and poll until the assignment.
pub(crate) async fn register(
    client: &ProvisioningClient,
    session: &mut Session,
    attestation: &Attestation,
    body: DeviceRegistration,
    token: Option<String>,
    deadline: Instant,
    progress: &Mutex<String>,
) -> Result<Assignment, Error> {
    let t = client.transport;
    let Attestation::Tpm(tpm) = attestation else {
        let reply = send(
            client,
            session,
            Call::Register(&body),
            token.as_deref(),
            deadline,
            progress,
        )
        .await?;
        return poll(client, session, reply, token.as_deref(), deadline, progress).await;
    };
    // The SDK's TPM sequence: EK and SRK sent, the 401 challenge's key activated, the registration
    // sent again with a SAS token signed inside the TPM, polled, and the hub key of the assignment
    // activated. Over AMQP the challenge was SASL's (`amqp/sasl_tpm.rs`): the token is in hand.
    let token = match token {
        Some(token) => token,
        None => challenge(client, session, tpm, &body, deadline, progress).await?,
    };
    let reply = send(client, session, Call::Register(&body), Some(&token), deadline, progress).await?;
    let assignment = poll(client, session, reply, Some(&token), deadline, progress).await?;
    if let Some(key) = assignment
        .state
        .tpm
        .as_ref()
        .and_then(|k| k.authentication_key.as_deref())
    {
        let blob = B64
            .decode(key)
            .map_err(|e| protocol(t, format!("the assigned authenticationKey is not base64: {e}")))?;
        with_tpm(tpm, move |tpm| tpm.activate_identity_key(&blob)).await?;
    }
    Ok(assignment)
}

/// The register request without a token: its 401 challenge activated, a SAS token signed with the key.
async fn challenge(
    client: &ProvisioningClient,
    session: &mut Session,
    tpm: &crate::SharedTpm,
    body: &DeviceRegistration,
    deadline: Instant,
    progress: &Mutex<String>,
) -> Result<String, Error> {
    let t = client.transport;
    let challenge = send(client, session, Call::Register(body), None, deadline, progress).await?;
    if challenge.status != 401 {
        answer::read_operation(t, &challenge)?;
        return Err(protocol(
            t,
            "the service registered a TPM device without the activation challenge",
        ));
    }
    let key = serde_json::from_slice::<TpmChallenge>(&challenge.body)
        .map_err(|_| answer::service_error(t, &challenge))?
        .authentication_key;
    let blob = B64
        .decode(key)
        .map_err(|e| protocol(t, format!("authenticationKey is not base64: {e}")))?;
    with_tpm(tpm, move |tpm| tpm.activate_identity_key(&blob)).await?;
    client
        .tpm_token(body.registration_id.as_deref().unwrap_or_default(), tpm)
        .await
}

async fn poll(
    client: &ProvisioningClient,
    session: &mut Session,
    mut reply: Reply,
    auth: Option<&str>,
    deadline: Instant,
    progress: &Mutex<String>,
) -> Result<Assignment, Error> {
    let t = client.transport;
    let mut operation_id = String::new();
    loop {
        let status = answer::read_operation(t, &reply)?;
        let state = status.status.clone();
        match state {
            Some(EnrollmentStatus::Assigning | EnrollmentStatus::Unassigned) => {}
            Some(EnrollmentStatus::Assigned) => return answer::assignment(t, status.registration_state),
            Some(ref ended @ (EnrollmentStatus::Failed | EnrollmentStatus::Disabled)) => {
                let result = status.registration_state.unwrap_or_default();
                return Err(Error::NotAssigned {
                    status: ended.clone(),
                    error_code: result.error_code,
                    message: sanitize(result.error_message.as_deref().unwrap_or("(no message)")),
                });
            }
            Some(EnrollmentStatus::Other(ref other)) => {
                return Err(protocol(
                    t,
                    format!("unexpected registration status {:?}", sanitize(other)),
                ));
            }
            None => return Err(protocol(t, "an answer without a registration status")),
        }
        let shown = state.map(|s| s.to_string()).unwrap_or_default();
        if !status.operation_id.is_empty() {
            operation_id = status.operation_id;
        }
        if operation_id.is_empty() {
            return Err(protocol(t, format!("no operationId in a {shown:?} answer")));
        }
        let still = format!("registration still {shown:?} (operation {})", sanitize(&operation_id));
        let wait = client.retry(reply.retry_after);
        within_deadline(client, wait, deadline, || {
            format!("{still}; the next poll in {}s would pass the deadline", wait.as_secs())
        })?;
        if let Ok(mut p) = progress.lock() {
            *p = still;
        }
        tokio::time::sleep(wait).await;
        reply = send(
            client,
            session,
            Call::Operation(&operation_id),
            auth,
            deadline,
            progress,
        )
        .await?;
    }
}

/// The device registration status lookup.
pub(crate) async fn status_lookup(
    client: &ProvisioningClient,
    session: &mut Session,
    body: &DeviceRegistration,
    auth: Option<&str>,
    deadline: Instant,
    progress: &Mutex<String>,
) -> Result<DeviceRegistrationResult, Error> {
    let reply = send(client, session, Call::Status(body), auth, deadline, progress).await?;
    answer::read_ok(client.transport, &reply, "device registration result")
}

/// How long a connection may take to close after the answer came (it never turns the answer into
/// an error).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Close the session after its last answer, within [`CLOSE_GRACE`] and before the deadline; a
/// failure is logged: the answer is already in hand.
pub(crate) async fn close(t: Transport, session: Session, deadline: Instant) {
    let until = deadline.min(Instant::now() + CLOSE_GRACE);
    if let Err(e) = session.close(until).await {
        tracing::debug!(transport = %t, error = %e, "the connection did not close cleanly");
    }
}
