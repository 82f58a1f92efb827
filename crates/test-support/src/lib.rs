//! Shared fixtures for the workspace's tests (a dev-dependency only): see the README.
//!
//! A fixture that cannot do its job fails the test at once, naming what went wrong: panicking is
//! this crate's error handling, as in the tests that use it.
#![warn(missing_docs)]
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

pub mod bench;
pub mod emulator;
pub mod examples;
pub mod https_server;
pub mod logged;
pub mod pki;
pub mod softhsm;
pub mod swtpm;
pub mod tls;
pub mod wait;
