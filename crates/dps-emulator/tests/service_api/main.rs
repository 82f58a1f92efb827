//! The service API on the HTTPS port: CRUD of each enrollment type, etags, bulk, paging, service SAS, and
//! devices registering with enrollments created through it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod api;
mod auth;
mod bulk;
mod devices;
mod enrollments;
