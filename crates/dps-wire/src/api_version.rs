//! DPS api-versions: a checked `YYYY-MM-DD[-preview]` string, the versions this project uses for
//! what, and what a version knows.
//!
//! | use | version |
//! | --- | --- |
//! | device registration, status lookups | [`ApiVersion::DEVICE`] `2021-10-01` (stable) |
//! | device registration with a `csr` | [`ApiVersion::DEVICE_CSR`] `2026-04-01` (first stable with `csr`) |
//! | service API | [`ApiVersion::SERVICE`] `2021-10-01` (stable) |
//!
//! Versions compare by date (a preview sorts after the stable of the same date); any well-formed
//! version is accepted, so a newer service can be named without a new release.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A DPS `api-version`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiVersion(Cow<'static, str>);

/// An `api-version` that is not `YYYY-MM-DD` or `YYYY-MM-DD-preview`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("api-version {0:?} is not of the form YYYY-MM-DD or YYYY-MM-DD-preview")]
pub struct InvalidApiVersion(pub String);

impl ApiVersion {
    /// The stable device API without certificate issuance.
    pub const DEVICE: ApiVersion = ApiVersion(Cow::Borrowed("2021-10-01"));
    /// The first stable device API that knows `csr` and `issuedCertificateChain`.
    pub const DEVICE_CSR: ApiVersion = ApiVersion(Cow::Borrowed("2026-04-01"));
    /// The stable service API.
    pub const SERVICE: ApiVersion = ApiVersion(Cow::Borrowed("2021-10-01"));
    /// The first (preview) device API that knew `csr`.
    pub const PREVIEW_2025_07_01: ApiVersion = ApiVersion(Cow::Borrowed("2025-07-01-preview"));

    /// Checks `s`.
    pub fn parse(s: &str) -> Result<ApiVersion, InvalidApiVersion> {
        if is_well_formed(s) {
            Ok(ApiVersion(Cow::Owned(s.to_string())))
        } else {
            Err(InvalidApiVersion(s.chars().take(64).collect()))
        }
    }

    /// The version as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `YYYY-MM-DD`, without any `-preview`.
    pub fn date(&self) -> &str {
        &self.0[..10]
    }

    /// Whether this is a preview version.
    pub fn is_preview(&self) -> bool {
        self.0.len() > 10
    }

    /// Whether a device registration of this version may carry `csr` (and answer
    /// `issuedCertificateChain`): `2025-07-01-preview` and every version after it.
    pub fn knows_csr(&self) -> bool {
        *self >= Self::PREVIEW_2025_07_01
    }
}

fn is_well_formed(s: &str) -> bool {
    let b = s.as_bytes();
    let date_ok = b.len() >= 10
        && b[..10].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    date_ok && (b.len() == 10 || &s[10..] == "-preview")
}

impl PartialOrd for ApiVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ApiVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.date()
            .cmp(other.date())
            .then(self.is_preview().cmp(&other.is_preview()))
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ApiVersion {
    type Err = InvalidApiVersion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ApiVersion::parse(s)
    }
}

impl Serialize for ApiVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ApiVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ApiVersion::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_order() {
        let v = |s| ApiVersion::parse(s).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(v("2021-10-01") < v("2025-07-01-preview"));
        assert!(v("2025-07-01") < v("2025-07-01-preview"));
        assert!(v("2026-04-01").knows_csr());
        assert!(v("2025-07-01-preview").knows_csr());
        assert!(!v("2021-10-01").knows_csr());
        assert!(!ApiVersion::DEVICE.knows_csr());
        assert!(ApiVersion::DEVICE_CSR.knows_csr() && !ApiVersion::DEVICE_CSR.is_preview());
        for bad in [
            "",
            "latest",
            "2021-10-1",
            "2021-10-01-beta",
            "2021/10/01",
            "2021-10-01preview",
        ] {
            assert!(ApiVersion::parse(bad).is_err(), "{bad}");
        }
    }
}
