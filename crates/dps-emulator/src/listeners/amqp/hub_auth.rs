//! The devices an IoT Hub connection over AMQP authenticated (`hub.rs`): each put-token or x509 first link
//! is the hub service's session request; the grants it leaves (token, expiry) authenticate the device's
//! later requests and say when the connection must close.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::hub_messages as wire;
use crate::request::{Client, Request, Response, SESSION};
use crate::services::RequestHandler;
use crate::services::iot_hub::{PROPERTIES_HEADER, SESSION_EXPIRES_HEADER};

const API_QUERY: &str = "api-version=2021-04-12";

/// How a device of this connection authenticated.
pub(super) struct Grant {
    host: Option<String>,
    /// The SAS token put on `$cbs` (sent with each request as `Authorization`); `None`: the client chain.
    token: Option<Zeroizing<String>>,
    expires: Option<Instant>,
}

/// What the link tasks of one connection share.
pub(super) struct Hub {
    pub(super) handler: Arc<RequestHandler>,
    pub(super) client: Client,
    pub(super) grants: Mutex<HashMap<String, Grant>>,
    /// Woken when a grant changes (the expiry to wait for moves).
    pub(super) changed: Notify,
}

impl Hub {
    pub(super) fn grants(&self) -> std::sync::MutexGuard<'_, HashMap<String, Grant>> {
        self.grants.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The hub's session request for `device_id`: `204` admits (with the token's expiry).
    fn session(&self, host: Option<&str>, device_id: &str, token: Option<&str>) -> Response {
        self.handler
            .handle(&self.request(SESSION, host, device_id, "", token, Vec::new(), None))
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        method: &str,
        host: Option<&str>,
        device_id: &str,
        tail: &str,
        token: Option<&str>,
        body: Vec<u8>,
        properties: Option<String>,
    ) -> Request {
        let mut headers = Vec::new();
        if let Some(h) = host {
            headers.push(("host".to_string(), h.to_string()));
        }
        if let Some(t) = token {
            headers.push(("authorization".to_string(), t.to_string()));
        }
        if let Some(p) = properties {
            headers.push((PROPERTIES_HEADER.to_string(), p));
        }
        Request {
            method: method.to_string(),
            path: format!("/devices/{}{tail}", hsm_core::sas::url_encode(device_id)),
            query: API_QUERY.to_string(),
            headers,
            body,
            client: self.client.clone(),
        }
    }

    /// A request of an authenticated device, with the credentials of its grant.
    pub(super) fn device_request(
        &self,
        method: &str,
        device_id: &str,
        tail: &str,
        body: Vec<u8>,
        bag: Option<String>,
    ) -> Response {
        let (host, token) = match self.grants().get(device_id) {
            Some(g) => (g.host.clone(), g.token.clone()),
            None => return crate::request::error(401, 401003, format!("device '{device_id}' is not authenticated")),
        };
        let request = self.request(
            method,
            host.as_deref(),
            device_id,
            tail,
            token.as_deref().map(|t| t.as_str()),
            body,
            bag,
        );
        self.handler.handle(&request)
    }

    /// Authenticate a put-token; the answer's status and description.
    pub(super) fn put_token(&self, put: &wire::PutToken) -> (u16, String) {
        let answer = self.session(Some(&put.host), &put.device_id, Some(&put.token));
        if !(200..300).contains(&answer.status) {
            let message = answer.error_message();
            tracing::info!(device_id = %put.device_id, %message, "AMQP put-token refused");
            return (answer.status, message);
        }
        let expires = answer
            .header(SESSION_EXPIRES_HEADER)
            .and_then(|e| e.parse::<u64>().ok())
            .map(|at| {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                Instant::now() + Duration::from_secs(at.saturating_sub(now))
            });
        // At info, with the device in the message: the interop suite counts these to see the SDK renew.
        tracing::info!("AMQP put-token accepted for device '{}'", put.device_id);
        self.grants().insert(
            put.device_id.clone(),
            Grant {
                host: Some(put.host.clone()),
                token: Some(put.token.clone()),
                expires,
            },
        );
        self.changed.notify_one();
        (200, "OK".into())
    }

    /// Whether a link may be attached for `device_id`: it put a valid token, or (no token put on this
    /// connection) its client chain opens the session.
    pub(super) fn admit_link(&self, host: Option<&str>, device_id: &str) -> Result<(), String> {
        let now = Instant::now();
        if let Some(g) = self.grants().get(device_id) {
            return match g.expires {
                Some(e) if e <= now => Err(format!("the token of device '{device_id}' expired")),
                _ => Ok(()),
            };
        }
        if self.client.chain.is_none() {
            return Err(format!("device '{device_id}' has put no token on $cbs"));
        }
        let answer = self.session(host, device_id, None);
        if !(200..300).contains(&answer.status) {
            return Err(answer.error_message());
        }
        self.grants().insert(
            device_id.to_string(),
            Grant {
                host: host.map(str::to_string),
                token: None,
                expires: None,
            },
        );
        self.changed.notify_one();
        Ok(())
    }

    /// When the connection must close: the request deadline while no device is authenticated, else when the
    /// last grant expires (`None`: never, an x509 device).
    pub(super) fn close_at(&self, deadline: Instant) -> Option<Instant> {
        let grants = self.grants();
        if grants.is_empty() {
            return Some(deadline);
        }
        grants
            .values()
            .map(|g| g.expires)
            .try_fold(Instant::now(), |latest, e| e.map(|e| e.max(latest)))
    }
}
