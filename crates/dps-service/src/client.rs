//! The blocking service client: one `ureq` agent (connection pool) shared by every call; each request
//! carries a fresh SAS token.

use std::sync::Arc;
use std::time::Duration;

use dps_wire::ApiVersion;
use dps_wire::service::{
    Attestation, BulkEnrollmentGroupOperation, BulkEnrollmentOperation, BulkMode, BulkResult, DeviceRegistrationState,
    EnrollmentGroup, IndividualEnrollment,
};
use hsm_core::sas::url_encode;
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Map;

pub use dps_wire::service::MAX_BULK;

use crate::http::{Call, Http, read_json};
use crate::query::Query;
use crate::{ConnectionString, Error, Result};

/// The service api-version spoken by default ([`ApiVersion::SERVICE`], the stable `2021-10-01`).
pub const API_VERSION: ApiVersion = ApiVersion::SERVICE;

/// How to reach the service.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `host[:port]` to connect to instead of the connection string's `HostName` (an emulator, a
    /// private endpoint); the token is still made for `HostName`.
    pub endpoint: Option<String>,
    /// CAs to trust instead of the Mozilla root store (an emulator's CA).
    pub trusted_cas: Option<Vec<CertificateDer<'static>>>,
    /// A whole TLS configuration (its own verifier, a client certificate); wins over `trusted_cas`.
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Lifetime of each request's SAS token.
    pub token_ttl: Duration,
    /// The `api-version` of every request (default [`ApiVersion::SERVICE`]); a newer one (e.g.
    /// `2026-04-01`) for the fields it adds.
    pub api_version: ApiVersion,
    /// How many times a call answered 429 or 503 is sent again (after the service's
    /// `Retry-After`, else a doubling backoff from 0.5 s).
    pub retries: u32,
    /// The longest wait a retry accepts: a `Retry-After` beyond it ends the call with the error.
    pub max_retry_after: Duration,
    /// A query stops with [`Error::Paging`] after this many pages.
    pub max_query_pages: usize,
    /// A query stops with [`Error::Paging`] when its listing has taken this long (None: no deadline).
    pub query_timeout: Option<Duration>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            endpoint: None,
            trusted_cas: None,
            tls_config: None,
            timeout: Duration::from_secs(30),
            token_ttl: Duration::from_secs(3600),
            api_version: ApiVersion::SERVICE,
            retries: 3,
            max_retry_after: Duration::from_secs(30),
            max_query_pages: 100_000,
            query_timeout: Some(Duration::from_secs(3600)),
        }
    }
}

/// A client of one Provisioning Service. Cheap to share between threads (`&ServiceClient` is all the
/// bulk pipeline needs).
pub struct ServiceClient {
    http: Http,
    options: ClientOptions,
}

impl std::fmt::Debug for ServiceClient {
    /// The service and the settings; the connection string's key never.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("connection", &self.http.connection)
            .field("base", &self.http.base)
            .field("api_version", &self.http.api_version)
            .field("timeout", &self.options.timeout)
            .field("retries", &self.options.retries)
            .finish_non_exhaustive()
    }
}

/// Whether an id goes to `/enrollments` or `/enrollmentGroups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    /// Individual enrollments.
    Enrollments,
    /// Enrollment groups.
    EnrollmentGroups,
}

impl Collection {
    /// The path segment: `enrollments` or `enrollmentGroups`.
    pub fn path(self) -> &'static str {
        match self {
            Collection::Enrollments => "enrollments",
            Collection::EnrollmentGroups => "enrollmentGroups",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Collection::Enrollments => "enrollment",
            Collection::EnrollmentGroups => "enrollment group",
        }
    }
}

fn tls_for(cas: &[CertificateDer<'static>]) -> Result<rustls::ClientConfig> {
    let invalid = |what: &str, e: String| Error::Invalid {
        what: what.into(),
        message: e,
    };
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots
            .add(ca.clone())
            .map_err(|e| invalid("trusted CA", e.to_string()))?;
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(hsm_core::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("TLS configuration", e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

impl ServiceClient {
    /// A client of the service `connection` names, with `options` (the settings of
    /// [`ServiceClient::builder`] as a struct).
    pub fn new(connection: ConnectionString, options: ClientOptions) -> Result<Self> {
        let mut agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout(options.timeout)
            .user_agent(concat!("dps-service/", env!("CARGO_PKG_VERSION")));
        if let Some(tls) = &options.tls_config {
            agent = agent.tls_config(Arc::clone(tls));
        } else if let Some(cas) = &options.trusted_cas {
            agent = agent.tls_config(Arc::new(tls_for(cas)?));
        }
        let endpoint = options.endpoint.as_deref().unwrap_or(&connection.host);
        Ok(ServiceClient {
            http: Http {
                base: format!("https://{endpoint}"),
                connection,
                agent: agent.build(),
                token_ttl: options.token_ttl,
                api_version: options.api_version.clone(),
                retries: options.retries,
                max_retry_after: options.max_retry_after,
            },
            options,
        })
    }

    /// The connection string's host.
    pub fn host(&self) -> &str {
        &self.http.connection.host
    }

    /// The `api-version` this client sends.
    pub fn api_version(&self) -> &ApiVersion {
        &self.http.api_version
    }

    // ---- individual enrollments ----

    /// Create or replace; with `etag` set, only if the stored record still has it (else
    /// [`Error::PreconditionFailed`]). Fields the record carries in `extra` (read from a newer
    /// service) are sent back as they came.
    pub fn put_enrollment(&self, e: &IndividualEnrollment) -> Result<IndividualEnrollment> {
        let id = non_empty("registrationId", &e.registration_id)?;
        check(&e.attestation, Collection::Enrollments, id)?;
        self.put(Collection::Enrollments, id, e.common.etag.as_deref(), e)
    }

    /// The enrollment (its attestation without keys: [`ServiceClient::get_enrollment_attestation`]).
    pub fn get_enrollment(&self, registration_id: &str) -> Result<IndividualEnrollment> {
        self.get(Collection::Enrollments, registration_id)
    }

    /// The enrollment's attestation mechanism with its keys
    /// (`POST /enrollments/{id}/attestationmechanism`; a GET of the enrollment leaves them out).
    pub fn get_enrollment_attestation(&self, registration_id: &str) -> Result<Attestation> {
        self.attestation(Collection::Enrollments, registration_id)
    }

    /// Delete; with `etag`, only if it is still the current one.
    pub fn delete_enrollment(&self, registration_id: &str, etag: Option<&str>) -> Result<()> {
        self.delete(Collection::Enrollments, registration_id, etag)
    }

    /// One bulk call of at most [`MAX_BULK`] enrollments.
    pub fn bulk_enrollments(&self, mode: BulkMode, items: &[IndividualEnrollment]) -> Result<BulkResult> {
        let body = BulkEnrollmentOperation {
            enrollments: items.to_vec(),
            mode,
            extra: Map::new(),
        };
        self.bulk(Collection::Enrollments, items.len(), &body)
    }

    /// `SELECT * FROM enrollments`, page by page as needed.
    pub fn query_enrollments(&self, query: &str, page_size: Option<u32>) -> Query<'_, IndividualEnrollment> {
        self.query("/enrollments/query".into(), Some(query), page_size)
    }

    // ---- enrollment groups ----

    /// Create or replace a group; with `etag` set, only if the stored record still has it (else
    /// [`Error::PreconditionFailed`]).
    pub fn put_group(&self, g: &EnrollmentGroup) -> Result<EnrollmentGroup> {
        let id = non_empty("enrollmentGroupId", &g.enrollment_group_id)?;
        check(&g.attestation, Collection::EnrollmentGroups, id)?;
        self.put(Collection::EnrollmentGroups, id, g.common.etag.as_deref(), g)
    }

    /// The group (its attestation without keys: [`ServiceClient::get_group_attestation`]).
    pub fn get_group(&self, id: &str) -> Result<EnrollmentGroup> {
        self.get(Collection::EnrollmentGroups, id)
    }

    /// The group's attestation mechanism with its keys (`POST /enrollmentGroups/{id}/attestationmechanism`).
    pub fn get_group_attestation(&self, id: &str) -> Result<Attestation> {
        self.attestation(Collection::EnrollmentGroups, id)
    }

    /// Delete a group; with `etag`, only if it is still the current one.
    pub fn delete_group(&self, id: &str, etag: Option<&str>) -> Result<()> {
        self.delete(Collection::EnrollmentGroups, id, etag)
    }

    /// One bulk call of at most [`MAX_BULK`] groups.
    pub fn bulk_groups(&self, mode: BulkMode, items: &[EnrollmentGroup]) -> Result<BulkResult> {
        let body = BulkEnrollmentGroupOperation {
            enrollment_groups: items.to_vec(),
            mode,
            extra: Map::new(),
        };
        self.bulk(Collection::EnrollmentGroups, items.len(), &body)
    }

    /// `SELECT * FROM enrollmentGroups`, page by page as needed.
    pub fn query_groups(&self, query: &str, page_size: Option<u32>) -> Query<'_, EnrollmentGroup> {
        self.query("/enrollmentGroups/query".into(), Some(query), page_size)
    }

    // ---- registration states ----

    /// The registration state of a device.
    pub fn get_registration(&self, registration_id: &str) -> Result<DeviceRegistrationState> {
        let id = non_empty("registration id", registration_id)?;
        let what = format!("registration {id}");
        let path = format!("/registrations/{}", url_encode(id));
        let r = self.http.send(&Call::new("GET", &path, &what))?;
        read_json(r, &what)
    }

    /// Delete a device's registration state (it registers afresh next time); with `etag`, only
    /// if it is still the current one.
    pub fn delete_registration(&self, registration_id: &str, etag: Option<&str>) -> Result<()> {
        let id = non_empty("registration id", registration_id)?;
        let what = format!("registration {id}");
        let path = format!("/registrations/{}", url_encode(id));
        self.http.send(&Call {
            if_match: etag,
            ..Call::new("DELETE", &path, &what)
        })?;
        Ok(())
    }

    /// The registration states of the devices of one enrollment group.
    pub fn query_registrations(&self, group_id: &str, page_size: Option<u32>) -> Query<'_, DeviceRegistrationState> {
        self.query(
            format!("/registrations/{}/query", url_encode(group_id)),
            None,
            page_size,
        )
    }

    // ---- plumbing ----

    /// A query of `path`, bounded by this client's `max_query_pages` and `query_timeout`.
    fn query<T: DeserializeOwned>(&self, path: String, query: Option<&str>, page_size: Option<u32>) -> Query<'_, T> {
        Query::new(
            &self.http,
            path,
            query,
            page_size,
            self.options.max_query_pages,
            self.options.query_timeout,
        )
    }

    fn put<T: Serialize + DeserializeOwned>(&self, c: Collection, id: &str, etag: Option<&str>, body: &T) -> Result<T> {
        let what = format!("{} {id}", c.noun());
        let body = encode(&what, body)?;
        let path = item_path(c, id);
        let r = self.http.send(&Call {
            if_match: etag,
            body: Some(&body),
            ..Call::new("PUT", &path, &what)
        })?;
        read_json(r, &what)
    }

    fn get<T: DeserializeOwned>(&self, c: Collection, id: &str) -> Result<T> {
        let id = non_empty("id", id)?;
        let what = format!("{} {id}", c.noun());
        let r = self.http.send(&Call::new("GET", &item_path(c, id), &what))?;
        read_json(r, &what)
    }

    fn attestation(&self, c: Collection, id: &str) -> Result<Attestation> {
        let id = non_empty("id", id)?;
        let what = format!("attestation mechanism of {} {id}", c.noun());
        let path = format!("{}/attestationmechanism", item_path(c, id));
        let r = self.http.send(&Call::new("POST", &path, &what))?;
        read_json(r, &what)
    }

    fn delete(&self, c: Collection, id: &str, etag: Option<&str>) -> Result<()> {
        let id = non_empty("id", id)?;
        let what = format!("{} {id}", c.noun());
        self.http.send(&Call {
            if_match: etag,
            ..Call::new("DELETE", &item_path(c, id), &what)
        })?;
        Ok(())
    }

    fn bulk<B: Serialize>(&self, c: Collection, n: usize, body: &B) -> Result<BulkResult> {
        let what = format!("bulk operation on {n} {}s", c.noun());
        if n == 0 || n > MAX_BULK {
            return Err(Error::Invalid {
                what,
                message: format!("a bulk call takes 1 to {MAX_BULK} records"),
            });
        }
        let body = encode(&what, body)?;
        let path = format!("/{}", c.path());
        let r = self.http.send(&Call {
            body: Some(&body),
            ..Call::new("POST", &path, &what)
        })?;
        read_json(r, &what)
    }
}

impl<'a> Call<'a> {
    fn new(method: &'a str, path: &'a str, what: &'a str) -> Self {
        Call {
            method,
            path,
            what,
            if_match: None,
            headers: &[],
            body: None,
        }
    }
}

fn encode<B: Serialize>(what: &str, body: &B) -> Result<String> {
    serde_json::to_string(body).map_err(|e| Error::Invalid {
        what: what.to_string(),
        message: e.to_string(),
    })
}

fn check(a: &Attestation, c: Collection, id: &str) -> Result<()> {
    a.check().map_err(|e| Error::Invalid {
        what: format!("{} {id}", c.noun()),
        message: e.to_string(),
    })
}

fn item_path(c: Collection, id: &str) -> String {
    format!("/{}/{}", c.path(), url_encode(id))
}

fn non_empty<'a>(what: &str, id: &'a str) -> Result<&'a str> {
    if id.trim().is_empty() {
        return Err(Error::Invalid {
            what: what.to_string(),
            message: "it is empty".into(),
        });
    }
    Ok(id)
}
