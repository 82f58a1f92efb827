//! The services of the emulator and the one request handler over them:
//!
//! - `device_api.rs`: the DPS device API (registration, operation status, registration status, the TPM
//!   challenge, certificate issuance at registration);
//! - `service_api.rs` (with `service_policies.rs`, its SAS authentication, `service_queries.rs`, its paged
//!   queries, and `service_api_failures.rs`, its error answers): the DPS service API (enrollments, groups,
//!   registrations, bulk calls, queries, attestation mechanisms);
//! - `iot_hub.rs`: the IoT Hub endpoints (device sessions checked as IoT Hub does, `$iothub/credentials`
//!   certificate issuance and renewal), with `hub_devices.rs`, the D2C messages and twins it keeps.
//!
//! Each implements [`Service`]; `Emulator::start_with` registers them with [`RequestHandler::new`] (a new
//! service is one module here and one line there). Every listener hands its requests to the handler.

pub(crate) mod device_api;
pub(crate) mod hub_devices;
pub(crate) mod iot_hub;
pub(crate) mod service_api;
pub(crate) mod service_api_failures;
pub(crate) mod service_policies;
pub(crate) mod service_queries;

use crate::request::{Request, Response, Service, error};

/// Routes each request to the first service that owns its path; `404` when none does.
pub(crate) struct RequestHandler {
    services: Vec<Box<dyn Service>>,
}

impl RequestHandler {
    pub(crate) fn new(services: Vec<Box<dyn Service>>) -> Self {
        RequestHandler { services }
    }

    /// Answer one request.
    pub(crate) fn handle(&self, request: &Request) -> Response {
        // Real clients add a trailing slash (Node's bulk call posts to `/enrollments/`); DPS accepts it.
        let path = request.path.as_str();
        let path = path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path);
        let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        let response = self
            .services
            .iter()
            .find_map(|service| service.handle(request, &segments))
            .unwrap_or_else(|| error(404, 404001, format!("no such resource: {path}")));
        tracing::info!(
            method = %request.method,
            path = %request.path,
            query = %request.query,
            transport = request.client.transport.name(),
            status = response.status,
            "request"
        );
        response
    }
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
