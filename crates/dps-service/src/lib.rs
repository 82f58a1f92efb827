//! The service side of Azure IoT DPS (service API `2021-10-01` by default, any later version by
//! [`ClientOptions::api_version`]): individual enrollments and enrollment groups (create, get, update
//! with etag, delete, query, attestation mechanism), bulk operations streamed from files at factory
//! scale, and device registration states. The records are the wire types of `dps-wire`.
//!
//! Blocking (ureq over rustls); [`bulk::run`] runs a bounded number of calls in flight on threads.
//!
//! ```no_run
//! use dps_service::{ClientOptions, ConnectionString, ServiceClient};
//! # fn main() -> Result<(), dps_service::Error> {
//! let cs = ConnectionString::parse(&std::env::var("DPS_SERVICE_CONNECTION_STRING").unwrap_or_default())?;
//! let client = ServiceClient::new(cs, ClientOptions::default())?;
//! for e in client.query_enrollments("SELECT * FROM enrollments", Some(100)) {
//!     println!("{}", e?.registration_id);
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod bulk;
mod builder;
mod client;
mod connection;
mod error;
mod http;
pub mod input;
pub mod models;
mod query;

pub use builder::ClientBuilder;
pub use client::{API_VERSION, ClientOptions, Collection, MAX_BULK, ServiceClient};
pub use connection::{ConnectionString, service_sas};
pub use dps_wire::{ApiVersion, ErrorDetails};
pub use error::{Error, Result, TransportKind};
pub use models::{
    Attestation, AttestationType, BulkMode, BulkResult, DeviceRegistrationState, EnrollmentGroup, IndividualEnrollment,
    ProvisioningStatus, SymmetricKeyAttestation, TpmAttestation, X509Attestation,
};
pub use query::Query;
