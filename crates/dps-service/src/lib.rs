#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]
#![warn(missing_docs)]

mod builder;
pub mod bulk;
mod bulk_records;
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
    AllocationPolicy, AssignedDeviceSubstatus, Attestation, AttestationType, BulkMode, BulkResult,
    DeviceRegistrationState, EnrollmentGroup, EnrollmentStatus, IndividualEnrollment, ProvisioningStatus,
    ReprovisionPolicy, SymmetricKeyAttestation, TpmAttestation, X509Attestation,
};
pub use query::Query;
