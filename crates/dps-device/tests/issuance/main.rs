//! Certificate issuance against the emulator: a CSR with the registration (HTTPS and MQTT), the chain
//! checked with `verify_issued_chain`, refusals with the service's error, and renewal over IoT Hub
//! `$iothub/credentials` (retry with replace, the hub gone mid-operation).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod registration;
mod renewal;
mod setup;
mod verify;
