//! The service API's records: the wire types of [`dps_wire::service`], re-exported so users of
//! `dps_service::models` keep compiling (one definition, in the wire crate).

pub use dps_wire::service::*;
