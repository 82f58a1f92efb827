//! The hsmctl integration tests' scope and hub, and their P-256 CAs (from `test_support`).
#![allow(dead_code, unused_imports)]

pub use test_support::emulator::{HUB, SCOPE};
pub use test_support::pki::Ca;

/// A self-signed P-256 root CA.
pub fn ca(cn: &str) -> Ca {
    Ca::root(cn)
}
