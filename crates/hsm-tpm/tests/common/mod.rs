//! The swtpm fixture of `test_support`, an HTTP helper for the emulator tests, and the SDK's TPM interface
//! of hsm-abi (`sdk_tpm`).
#![allow(dead_code)]

pub mod sdk_tpm;

pub use test_support::swtpm::Swtpm;

/// Send and return (status, JSON body) whatever the status.
pub fn send(req: ureq::Request, body: Option<&serde_json::Value>) -> (u16, serde_json::Value) {
    let r = match body {
        Some(b) => req.send_json(b.clone()),
        None => req.call(),
    };
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport: {e}"),
    };
    (resp.status(), resp.into_json().unwrap_or(serde_json::Value::Null))
}
