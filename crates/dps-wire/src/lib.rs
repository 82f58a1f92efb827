//! The Azure IoT Device Provisioning Service wire, typed once for every side of this project:
//! the device library (`dps-device`), the service library (`dps-service`) and the emulator
//! (`dps-emulator`) build and read DPS messages only through these types.
//!
//! - [`api_version`]: the api-versions as a type, and which one a request needs.
//! - [`error`]: the error body every DPS answer of status >= 400 carries.
//! - [`device`]: the device API (registration request, operation status, registration state).
//! - [`service`]: the service API (enrollments, groups, attestation mechanisms, bulk, queries).
//!
//! Every object keeps the fields it does not model (`extra`), so a read-modify-write never drops
//! what a newer service version sent. The published specification's examples
//! (`../shared/specs/dps`) round-trip through these types (`tests/spec_device.rs`, `tests/spec_service.rs`).

// One macro for every string enum of the spec (device and service modules), declared before them.
/// A string enum of the specification: the known values as variants, any other value kept as it
/// came (`Other`), so a newer service's value survives a read-modify-write.
macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant,)+
            /// A value this version does not know, kept as it came.
            Other(String),
        }

        impl $name {
            /// The value as sent on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($text => $name::$variant,)+
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok($name::from(s.as_str()))
            }
        }
    };
}

pub mod api_version;
pub mod device;
pub mod error;
pub mod service;

pub use api_version::ApiVersion;
pub use error::ErrorDetails;
