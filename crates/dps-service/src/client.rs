//! The blocking service client: one `ureq` agent (connection pool) shared by every call; each request
//! carries a fresh SAS token.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use hsm_core::sas::url_encode;
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::models::{
    BulkMode, BulkResult, DeviceRegistrationState, EnrollmentGroup, IndividualEnrollment, ServiceErrorBody,
};
use crate::{ConnectionString, Error, Result};

/// The service API version spoken.
pub const API_VERSION: &str = "2021-10-01";
/// At most this many records per bulk call (the service's limit).
pub const MAX_BULK: usize = 10;

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
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            endpoint: None,
            trusted_cas: None,
            tls_config: None,
            timeout: Duration::from_secs(30),
            token_ttl: Duration::from_secs(3600),
        }
    }
}

/// A client of one Provisioning Service. Cheap to share between threads (`&ServiceClient` is all the
/// bulk pipeline needs).
pub struct ServiceClient {
    connection: ConnectionString,
    base: String,
    agent: ureq::Agent,
    token_ttl: Duration,
}

/// Whether an id goes to `/enrollments` or `/enrollmentGroups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    Enrollments,
    EnrollmentGroups,
}

impl Collection {
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

impl ServiceClient {
    pub fn new(connection: ConnectionString, options: ClientOptions) -> Result<Self> {
        let mut agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout(options.timeout)
            .user_agent(concat!("dps-service/", env!("CARGO_PKG_VERSION")));
        if let Some(tls) = &options.tls_config {
            agent = agent.tls_config(Arc::clone(tls));
        } else if let Some(cas) = &options.trusted_cas {
            let mut roots = rustls::RootCertStore::empty();
            for ca in cas {
                roots.add(ca.clone()).map_err(|e| Error::Invalid {
                    what: "trusted CA".into(),
                    message: e.to_string(),
                })?;
            }
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::Invalid {
                    what: "TLS configuration".into(),
                    message: e.to_string(),
                })?
                .with_root_certificates(roots)
                .with_no_client_auth();
            agent = agent.tls_config(Arc::new(tls));
        }
        let endpoint = options.endpoint.as_deref().unwrap_or(&connection.host);
        Ok(ServiceClient {
            base: format!("https://{endpoint}"),
            connection,
            agent: agent.build(),
            token_ttl: options.token_ttl,
        })
    }

    /// The connection string's host.
    pub fn host(&self) -> &str {
        &self.connection.host
    }

    // ---- individual enrollments ----

    /// Create or replace; with `etag` set, only if the stored record still has it (else
    /// [`Error::PreconditionFailed`]).
    pub fn put_enrollment(&self, e: &IndividualEnrollment) -> Result<IndividualEnrollment> {
        let id = non_empty("registrationId", &e.registration_id)?;
        self.put(Collection::Enrollments, id, e.common.etag.as_deref(), e)
    }

    pub fn get_enrollment(&self, registration_id: &str) -> Result<IndividualEnrollment> {
        self.get(Collection::Enrollments, registration_id)
    }

    /// Delete; with `etag`, only if it is still the current one.
    pub fn delete_enrollment(&self, registration_id: &str, etag: Option<&str>) -> Result<()> {
        self.delete(Collection::Enrollments, registration_id, etag)
    }

    /// One bulk call of at most [`MAX_BULK`] enrollments.
    pub fn bulk_enrollments(&self, mode: BulkMode, items: &[IndividualEnrollment]) -> Result<BulkResult> {
        #[derive(Serialize)]
        struct Body<'a> {
            mode: BulkMode,
            enrollments: &'a [IndividualEnrollment],
        }
        self.bulk(
            Collection::Enrollments,
            items.len(),
            &Body {
                mode,
                enrollments: items,
            },
        )
    }

    /// `SELECT * FROM enrollments`, page by page as needed.
    pub fn query_enrollments(&self, query: &str, page_size: Option<u32>) -> Query<'_, IndividualEnrollment> {
        Query::new(self, "/enrollments/query".into(), Some(query.to_string()), page_size)
    }

    // ---- enrollment groups ----

    pub fn put_group(&self, g: &EnrollmentGroup) -> Result<EnrollmentGroup> {
        let id = non_empty("enrollmentGroupId", &g.enrollment_group_id)?;
        self.put(Collection::EnrollmentGroups, id, g.common.etag.as_deref(), g)
    }

    pub fn get_group(&self, id: &str) -> Result<EnrollmentGroup> {
        self.get(Collection::EnrollmentGroups, id)
    }

    pub fn delete_group(&self, id: &str, etag: Option<&str>) -> Result<()> {
        self.delete(Collection::EnrollmentGroups, id, etag)
    }

    pub fn bulk_groups(&self, mode: BulkMode, items: &[EnrollmentGroup]) -> Result<BulkResult> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            mode: BulkMode,
            enrollment_groups: &'a [EnrollmentGroup],
        }
        self.bulk(
            Collection::EnrollmentGroups,
            items.len(),
            &Body {
                mode,
                enrollment_groups: items,
            },
        )
    }

    pub fn query_groups(&self, query: &str, page_size: Option<u32>) -> Query<'_, EnrollmentGroup> {
        Query::new(
            self,
            "/enrollmentGroups/query".into(),
            Some(query.to_string()),
            page_size,
        )
    }

    // ---- registration states ----

    pub fn get_registration(&self, registration_id: &str) -> Result<DeviceRegistrationState> {
        let id = non_empty("registration id", registration_id)?;
        let what = format!("registration {id}");
        let r = self.send(
            "GET",
            &format!("/registrations/{}", url_encode(id)),
            &what,
            None,
            &[],
            None,
        )?;
        read_json(r, &what)
    }

    pub fn delete_registration(&self, registration_id: &str, etag: Option<&str>) -> Result<()> {
        let id = non_empty("registration id", registration_id)?;
        let what = format!("registration {id}");
        self.send(
            "DELETE",
            &format!("/registrations/{}", url_encode(id)),
            &what,
            etag,
            &[],
            None,
        )?;
        Ok(())
    }

    /// The registration states of the devices of one enrollment group.
    pub fn query_registrations(&self, group_id: &str, page_size: Option<u32>) -> Query<'_, DeviceRegistrationState> {
        Query::new(
            self,
            format!("/registrations/{}/query", url_encode(group_id)),
            None,
            page_size,
        )
    }

    // ---- plumbing ----

    fn put<T: Serialize + DeserializeOwned>(&self, c: Collection, id: &str, etag: Option<&str>, body: &T) -> Result<T> {
        let what = format!("{} {id}", c.noun());
        let body = serde_json::to_string(body).map_err(|e| Error::Invalid {
            what: what.clone(),
            message: e.to_string(),
        })?;
        let r = self.send("PUT", &item_path(c, id), &what, etag, &[], Some(&body))?;
        read_json(r, &what)
    }

    fn get<T: DeserializeOwned>(&self, c: Collection, id: &str) -> Result<T> {
        let id = non_empty("id", id)?;
        let what = format!("{} {id}", c.noun());
        let r = self.send("GET", &item_path(c, id), &what, None, &[], None)?;
        read_json(r, &what)
    }

    fn delete(&self, c: Collection, id: &str, etag: Option<&str>) -> Result<()> {
        let id = non_empty("id", id)?;
        let what = format!("{} {id}", c.noun());
        self.send("DELETE", &item_path(c, id), &what, etag, &[], None)?;
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
        let body = serde_json::to_string(body).map_err(|e| Error::Invalid {
            what: what.clone(),
            message: e.to_string(),
        })?;
        let r = self.send("POST", &format!("/{}", c.path()), &what, None, &[], Some(&body))?;
        read_json(r, &what)
    }

    /// One request; error answers become typed errors.
    fn send(
        &self,
        method: &str,
        path: &str,
        what: &str,
        if_match: Option<&str>,
        headers: &[(&str, String)],
        body: Option<&str>,
    ) -> Result<ureq::Response> {
        let url = format!("{}{path}?api-version={API_VERSION}", self.base);
        let mut req = self
            .agent
            .request(method, &url)
            .set("Authorization", &self.connection.sas_token_for(self.token_ttl))
            .set("Accept", "application/json");
        if let Some(etag) = if_match {
            req = req.set("If-Match", etag);
        }
        for (name, value) in headers {
            req = req.set(name, value);
        }
        let result = match body {
            Some(b) => req.set("Content-Type", "application/json").send_string(b),
            None => req.call(),
        };
        match result {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(status, r)) => Err(answer_error(what, status, r)),
            Err(ureq::Error::Transport(t)) => Err(Error::Transport {
                what: what.to_string(),
                message: t.to_string(),
            }),
        }
    }
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

fn read_json<T: DeserializeOwned>(r: ureq::Response, what: &str) -> Result<T> {
    let text = r.into_string().map_err(|e| Error::Transport {
        what: what.to_string(),
        message: format!("reading the answer: {e}"),
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Protocol {
        what: what.to_string(),
        message: format!("the answer is not the expected JSON: {e}"),
    })
}

fn answer_error(what: &str, status: u16, r: ureq::Response) -> Error {
    let text = r.into_string().unwrap_or_default();
    let body: ServiceErrorBody = serde_json::from_str(&text).unwrap_or_default();
    let mut message = body.message.unwrap_or_else(|| {
        let t: String = text.chars().take(200).collect();
        if t.is_empty() { "(no message)".into() } else { t }
    });
    if let Some(t) = body.tracking_id {
        message.push_str(&format!(" (trackingId {t})"));
    }
    let what = what.to_string();
    match status {
        404 => Error::NotFound { what, message },
        412 => Error::PreconditionFailed { what, message },
        401 => Error::Unauthorized { message },
        403 => Error::Forbidden { message },
        _ => Error::Service {
            what,
            status,
            code: body.error_code,
            message,
        },
    }
}

/// A query's results, fetched a page at a time (`x-ms-max-item-count`, `x-ms-continuation`). An error
/// ends the iteration after it is yielded.
pub struct Query<'a, T> {
    client: &'a ServiceClient,
    path: String,
    body: Option<String>,
    page_size: Option<u32>,
    continuation: Option<String>,
    buffer: VecDeque<T>,
    done: bool,
    pages: usize,
    _t: PhantomData<T>,
}

impl<'a, T: DeserializeOwned> Query<'a, T> {
    fn new(client: &'a ServiceClient, path: String, query: Option<String>, page_size: Option<u32>) -> Self {
        Query {
            client,
            path,
            body: query.map(|q| serde_json::json!({ "query": q }).to_string()),
            page_size,
            continuation: None,
            buffer: VecDeque::new(),
            done: false,
            pages: 0,
            _t: PhantomData,
        }
    }

    /// Pages fetched so far.
    pub fn pages(&self) -> usize {
        self.pages
    }

    fn fetch(&mut self) -> Result<()> {
        let what = format!("query {}", self.path);
        let mut headers = Vec::new();
        if let Some(n) = self.page_size {
            headers.push(("x-ms-max-item-count", n.to_string()));
        }
        if let Some(c) = &self.continuation {
            headers.push(("x-ms-continuation", c.clone()));
        }
        let r = self
            .client
            .send("POST", &self.path, &what, None, &headers, self.body.as_deref())?;
        self.continuation = r
            .header("x-ms-continuation")
            .map(str::to_string)
            .filter(|c| !c.is_empty());
        let items: Vec<T> = read_json(r, &what)?;
        self.pages += 1;
        if self.continuation.is_some() && items.is_empty() {
            // A continuation with nothing in the page would loop for ever.
            return Err(Error::Protocol {
                what,
                message: "an empty page with a continuation token".into(),
            });
        }
        self.buffer.extend(items);
        Ok(())
    }
}

impl<T: DeserializeOwned> Iterator for Query<'_, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        loop {
            if let Some(item) = self.buffer.pop_front() {
                return Some(Ok(item));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.fetch() {
                self.done = true;
                return Some(Err(e));
            }
            if self.continuation.is_none() {
                self.done = true;
            }
        }
    }
}
