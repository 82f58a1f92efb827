//! `hsmctl provision` and friends against the local DPS emulator over real HTTPS, MQTT and AMQP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod amqp;
mod cli;
mod setup;
mod symmetric;
#[cfg(feature = "tpm")]
mod tpm;
mod x509;
