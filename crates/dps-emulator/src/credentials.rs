//! IoT Hub certificate renewal over MQTT (`$iothub/credentials`), served on the emulator's MQTT listener
//! (in Azure it is the IoT hub's host; here one listener serves both, told apart by the CONNECT username).
//!
//! CONNECT: client id = device id, username `{assignedHub}/{deviceId}/?api-version=...`, and a TLS client
//! certificate that is either one the emulator issued to that device id or the device's onboarding x509
//! credential (as DPS would accept it). Then `$iothub/credentials/POST/issueCertificate/?$rid={rid}` with
//! `{"id", "csr", "replace"?}` answers on `$iothub/credentials/res/{status}/?$rid={rid}`: `202`, then after
//! [`crate::IssuanceOptions::credentials_delay`] `200 {"certificates": [base64 DER, leaf first]}`. While an
//! operation is in progress, a request without `replace` gets 409005; a bad CSR gets 400040.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use dps_wire::device::credentials::{CredentialsRequest, CredentialsResponse};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Publish};
use rustls_pki_types::CertificateDer;
use serde::Serialize;

use crate::issuance::Refused;
use crate::service::Service;

pub(crate) const SUBSCRIBE_TOPIC: &str = "$iothub/credentials/res/#";
const ISSUE_PREFIX: &str = "$iothub/credentials/POST/issueCertificate/?";

/// Operations in progress, per device id: (operation number, until when).
#[derive(Default)]
pub(crate) struct Pending {
    next: std::sync::atomic::AtomicU64,
    by_device: Mutex<HashMap<String, (u64, Instant)>>,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Instant)>> {
        self.by_device.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether a CONNECT username is an IoT Hub one (`{hub}/{deviceId}/?api-version=...`) rather than DPS.
pub(crate) fn is_hub_username(username: &str) -> bool {
    !username.contains("/registrations/")
}

/// Check an IoT Hub CONNECT; the device id on success.
pub(crate) fn accept(
    service: &Service,
    connect: &Connect,
    peer_chain: Option<&[CertificateDer<'static>]>,
) -> Result<String, (ConnectReturnCode, String)> {
    let bad_user = |m: String| (ConnectReturnCode::BadUserNamePassword, m);
    let username = connect.login.as_ref().map(|l| l.username.as_str()).unwrap_or_default();
    let (hub, rest) = username.split_once('/').ok_or_else(|| {
        bad_user(format!(
            "username {username:?} is not {{hub}}/{{deviceId}}/?api-version=..."
        ))
    })?;
    let (device_id, query) = rest
        .split_once("/?")
        .ok_or_else(|| bad_user(format!("username {username:?} has no /?api-version=...")))?;
    if !query
        .split('&')
        .any(|p| p.len() > "api-version=".len() && p.starts_with("api-version="))
    {
        return Err(bad_user(format!("username {username:?} has no api-version")));
    }
    if !hub.eq_ignore_ascii_case(service.assigned_hub()) {
        return Err(bad_user(format!(
            "hub '{hub}' is not the assigned hub '{}'",
            service.assigned_hub()
        )));
    }
    if device_id != connect.client_id {
        return Err((
            ConnectReturnCode::BadClientId,
            format!("client id '{}' is not the device id '{device_id}'", connect.client_id),
        ));
    }
    let refused = |m: String| (ConnectReturnCode::NotAuthorized, m);
    let Some(leaf) = peer_chain.and_then(<[_]>::first) else {
        return Err(refused(
            "no client certificate: IoT Hub credentials need an x509 client".into(),
        ));
    };
    let issued = match &service.issuer {
        Some(issuer) => issuer.admits(leaf, device_id),
        None => Err("certificate issuance is not configured".into()),
    };
    if let Err(not_issued) = issued {
        let live = service
            .live()
            .map_err(|m| refused(format!("{not_issued}; the enrollments cannot be read: {m}")))?;
        live.trust
            .authenticate(device_id, None, peer_chain)
            .map_err(|crate::auth::Denied(onboarding)| {
                refused(format!("{not_issued}; as an onboarding credential: {onboarding}"))
            })?;
    }
    Ok(device_id.to_string())
}

/// Answer one publish of a connected device: every answer goes through `send`.
pub(crate) fn serve(
    service: &Service,
    device_id: &str,
    topic: &str,
    payload: &[u8],
    send: &mut dyn FnMut(Publish) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let query = topic.split_once('?').map_or("", |(_, q)| q);
    let rid = crate::mqtt::param(query, "$rid").unwrap_or_default().to_string();
    let answer = |status: u16, body: &dyn AnswerBody| {
        Publish::new(
            format!("$iothub/credentials/res/{status}/?$rid={rid}"),
            QoS::AtMostOnce,
            body.to_json(),
        )
    };
    let fail = |status: u16, code: u32, message: String| {
        tracing::info!(device_id, status, code, %message, "credentials request refused");
        answer(status, &crate::service::error_details(code, message, None))
    };
    if !topic.starts_with(ISSUE_PREFIX) {
        return send(fail(404, 404001, format!("no such topic: {topic}")));
    }
    if rid.is_empty() {
        return send(fail(400, 400004, "no $rid in the topic".into()));
    }
    if !serde_json::from_slice::<serde_json::Value>(payload).is_ok_and(|v| v.is_object()) {
        return send(fail(400, 400004, "the request body is not a JSON object".into()));
    }
    let body: CredentialsRequest = match serde_json::from_slice(payload) {
        Ok(b) => b,
        // A request without a csr (or with one that is not a string) is the 400040 of a bad csr.
        Err(e) if e.to_string().contains("csr") => {
            return send(fail(
                400,
                400040,
                format!("the request has no csr (base64 DER PKCS#10): {e}"),
            ));
        }
        Err(e) => {
            return send(fail(
                400,
                400004,
                format!("the request is not a credentials request: {e}"),
            ));
        }
    };
    if body.id != device_id {
        return send(fail(
            400,
            400004,
            format!(
                "the request's id {:?} is not the connected device '{device_id}'",
                body.id
            ),
        ));
    }
    let Some(issuer) = &service.issuer else {
        return send(fail(503, 503001, "certificate issuance is not configured".into()));
    };
    let csr = body.csr.as_str();
    let der = match B64.decode(csr.trim()) {
        Ok(d) => d,
        Err(e) => return send(fail(400, 400040, format!("csr is not base64 DER: {e}"))),
    };
    let throttled = issuer
        .throttle
        .fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |n| n.checked_sub(1),
        )
        .is_ok();
    if throttled {
        tracing::info!(device_id, "credentials request throttled");
        return send(Publish::new(
            format!("$iothub/credentials/res/429/?$rid={rid}&retry-after=1"),
            QoS::AtMostOnce,
            serde_json::to_vec(&crate::service::error_details(
                429002,
                "too many requests: retry later",
                Some(vec![("retryAfter", "1".to_string())]),
            ))
            .unwrap_or_default(),
        ));
    }
    let replace = body.replace.is_some();
    let op = {
        let mut pending = issuer.pending.lock();
        let now = Instant::now();
        if let Some((_, until)) = pending.get(device_id) {
            if *until > now && !replace {
                drop(pending);
                return send(fail(
                    409,
                    409005,
                    "a certificate operation is already in progress for this device: send replace to replace it".into(),
                ));
            }
        }
        let op = issuer.pending.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        pending.insert(device_id.to_string(), (op, now + issuer.credentials_delay));
        op
    };
    let done = |issuer: &crate::issuance::CertificateIssuer| {
        let mut pending = issuer.pending.lock();
        if pending.get(device_id).is_some_and(|(o, _)| *o == op) {
            pending.remove(device_id);
        }
    };
    let chain = match issuer.issue(&der, device_id) {
        Ok(c) => c,
        Err(Refused(m)) => {
            done(issuer);
            return send(fail(400, 400040, m));
        }
    };
    let correlation = format!("{op}");
    let expires = crate::service::rfc3339_from_unix(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .saturating_add(issuer.credentials_delay.as_secs() + 60),
    );
    let accepted = CredentialsResponse {
        correlation_id: Some(correlation.clone()),
        operation_expires: Some(expires),
        ..CredentialsResponse::default()
    };
    send(answer(202, &accepted))?;
    std::thread::sleep(issuer.credentials_delay);
    let replaced = issuer.pending.lock().get(device_id).is_some_and(|(o, _)| *o != op);
    if replaced {
        // A later request with `replace` took over: this one ends without certificates.
        return send(fail(
            409,
            409005,
            "the operation was replaced by a later request".into(),
        ));
    }
    done(issuer);
    let certificates: Vec<String> = chain.iter().map(|c| B64.encode(c)).collect();
    tracing::info!(device_id, "certificate issued over $iothub/credentials");
    let issued = CredentialsResponse {
        correlation_id: Some(correlation),
        certificates: Some(certificates),
        ..CredentialsResponse::default()
    };
    send(answer(200, &issued))
}

/// A body of a `$iothub/credentials` answer: a [`CredentialsResponse`] or an error's `ErrorDetails`.
trait AnswerBody {
    fn to_json(&self) -> Vec<u8>;
}

impl<T: Serialize> AnswerBody for T {
    fn to_json(&self) -> Vec<u8> {
        // The wire types serialise to JSON without fail (string keys only).
        serde_json::to_vec(self).unwrap_or_default()
    }
}
