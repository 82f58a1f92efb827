#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]

mod amqp;
mod answer;
pub mod blocking;
mod builder;
mod client;
mod dispatch;
mod error;
mod flow;
mod https;
pub mod hub;
mod hub_renewal;
mod identity;
mod issuance;
mod mqtt;
mod session;
mod task;
mod transport;
mod types;

pub use builder::{ClientBuilder, GLOBAL_ENDPOINT};
pub use dps_wire::ApiVersion;
pub use dps_wire::device::{AssignedDeviceSubstatus, DeviceRegistrationResult, EnrollmentStatus};
pub use error::{Error, ServiceError, Source};
pub use hub_renewal::{HUB_API_VERSION, RenewalOptions, renew_certificate};
pub use identity::ProvisioningClient;
pub use issuance::verify_issued_chain;
/// The rustls of this crate's signatures (`RootCertStore` for the trusted roots).
pub use rustls;
pub use tlsio_bridge::TlsVersions;
pub use transport::{Transport, UnknownTransport};
pub use types::{Assignment, Attestation, MAX_BODY, Options, Registration, SharedTpm};

pub(crate) use task::{blocking_task, with_tpm};
pub(crate) use types::{DEFAULT_RETRY, Proxy, Reply};

/// The readers of service answers, for the fuzz target (`fuzzing` feature; not a stable API).
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use super::{Assignment, Error, Reply, Transport};
    use dps_wire::device::EnrollmentStatus;

    /// What the client reads from one answer (an HTTP response, or an MQTT response's status and
    /// payload), through the wire types: the assignment when it says `assigned`, nothing for other
    /// statuses, or the error.
    pub fn read_answer(t: Transport, status: u16, body: &[u8]) -> Result<Option<Assignment>, Error> {
        let reply = Reply {
            status,
            body: body.to_vec(),
            retry_after: None,
        };
        let answer = crate::answer::read_operation(t, &reply)?;
        match answer.status {
            Some(EnrollmentStatus::Assigned) => crate::answer::assignment(t, answer.registration_state).map(Some),
            _ => Ok(None),
        }
    }

    /// A response topic read: (status, rid, retry-after).
    pub type ResponseTopic = (u16, Option<u64>, Option<u64>);

    /// `$dps/registrations/res/{status}/?$rid={rid}&retry-after={s}`; None for another topic.
    pub fn read_response_topic(topic: &str) -> Option<Result<ResponseTopic, Error>> {
        crate::mqtt::parse_response_topic(topic, Transport::Mqtt)
    }

    /// A credentials response topic read: (status, rid, retry-after).
    pub type CredentialsTopic = (u16, Option<String>, Option<u64>);

    /// An IoT Hub `$iothub/credentials` answer: the certificates of a 200, the service error otherwise.
    pub fn read_credentials_answer(status: u16, body: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        crate::hub_renewal::read_answer(status, body)
    }

    /// `$iothub/credentials/res/{status}/?$rid={rid}...`: (status, rid, retry-after); None for another topic.
    pub fn read_credentials_topic(topic: &str) -> Option<Result<CredentialsTopic, Error>> {
        crate::hub_renewal::parse_response_topic(topic)
    }
}
