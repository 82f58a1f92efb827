//! What every service API test uses: an emulator with an owner and a reader policy, service SAS tokens
//! computed from the protocol's definition, a client of the service API, and the error shape's check.

use base64::Engine as _;
use dps_emulator::{Emulator, Enrollment, ServerOptions, ServicePolicy, ServiceRight};
use serde_json::Value;

use crate::common::*;

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
pub const API: &str = "api-version=2021-10-01";
pub const OWNER_KEY: &str = "b3duZXIta2V5LWZvci10aGUtc2VydmljZS1hcGktdGVzdHM=";
pub const READER_KEY: &str = "cmVhZGVyLWtleS1mb3ItdGhlLXNlcnZpY2UtYXBpLXRlc3Rz";
pub const DEVICE_KEY: &str = "ZGV2aWNlLWtleS1mb3ItdGhlLXNlcnZpY2UtYXBpLXRlc3Q=";

pub fn start(enrollments: Vec<Enrollment>) -> Emulator {
    Emulator::start_with(
        config(enrollments),
        0,
        ServerOptions {
            retry_after: std::time::Duration::ZERO,
            service_policies: vec![
                ServicePolicy::owner("provisioningserviceowner", OWNER_KEY),
                ServicePolicy {
                    name: "reader".into(),
                    key: READER_KEY.to_string().into(),
                    rights: vec![ServiceRight::EnrollmentRead, ServiceRight::RegistrationStatusRead],
                },
            ],
            ..ServerOptions::default()
        },
    )
    .unwrap()
}

/// A service SAS token, computed here from the protocol's definition (not with the emulator's code).
pub fn sas(host: &str, policy: &str, key_b64: &str, expiry: u64) -> String {
    let sr = hsm_core::sas::url_encode(&host.to_ascii_lowercase());
    let key = B64.decode(key_b64).unwrap();
    let sig = hsm_core::sas::hmac_sha256(&key, format!("{sr}\n{expiry}").as_bytes());
    format!(
        "SharedAccessSignature sr={sr}&sig={}&se={expiry}&skn={policy}",
        hsm_core::sas::url_encode(&B64.encode(sig))
    )
}

pub struct Client {
    pub agent: ureq::Agent,
    pub host: String,
    pub auth: String,
}

impl Client {
    pub fn new(emu: &Emulator, policy: &str, key: &str) -> Client {
        let host = emu.global_endpoint();
        Client {
            agent: agent(emu, None, Tls::Any),
            auth: sas(&host, policy, key, now() + 3600),
            host,
        }
    }

    pub fn owner(emu: &Emulator) -> Client {
        Client::new(emu, "provisioningserviceowner", OWNER_KEY)
    }

    pub fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.agent
            .request(method, &format!("https://{}{path}?{API}", self.host))
            .set("Authorization", &self.auth)
    }

    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value, ureq::Response) {
        let mut req = self.request(method, path);
        for (n, v) in headers {
            req = req.set(n, v);
        }
        let result = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("transport error: {e}"),
        };
        let status = response.status();
        let headers: Vec<(String, String)> = response
            .headers_names()
            .into_iter()
            .filter_map(|n| response.header(&n).map(|v| (n.clone(), v.to_string())))
            .collect();
        let text = response.into_string().unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        // Rebuild a response carrying the headers for the callers that page.
        let mut fake = format!("HTTP/1.1 {status} X\r\n");
        for (n, v) in headers {
            fake.push_str(&format!("{n}: {v}\r\n"));
        }
        fake.push_str("\r\n");
        (status, body, fake.parse::<ureq::Response>().unwrap())
    }

    pub fn put(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, b, _) = self.send("PUT", path, Some(body), &[]);
        (s, b)
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let (s, b, _) = self.send("GET", path, None, &[]);
        (s, b)
    }

    pub fn delete(&self, path: &str, etag: Option<&str>) -> u16 {
        let headers: Vec<(&str, &str)> = etag.map(|e| ("If-Match", e)).into_iter().collect();
        self.send("DELETE", path, None, &headers).0
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, b, _) = self.send("POST", path, Some(body), &[]);
        (s, b)
    }
}

pub fn assert_error(status: u16, body: &Value, expected: u16, needle: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(
        body["errorCode"].as_u64().unwrap() / 1000,
        u64::from(expected),
        "{body}"
    );
    assert!(body["trackingId"].as_str().is_some_and(|t| t.len() >= 32), "{body}");
    assert!(body["timestampUtc"].as_str().is_some(), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(needle), "message {message:?} lacks {needle:?}");
}

/// A syntactically valid `TPM2B_PUBLIC` of an RSA-2048 restricted decryption key (an EK's shape); enough for
/// enrollment CRUD, where no TPM answers a challenge.
pub fn ek_b64(seed: u8) -> String {
    let mut body = Vec::new();
    body.extend_from_slice(&0x0001u16.to_be_bytes()); // RSA
    body.extend_from_slice(&0x000Bu16.to_be_bytes()); // SHA-256
    body.extend_from_slice(&0x0003_00B2u32.to_be_bytes()); // fixedTPM|fixedParent|sensitiveDataOrigin|adminWithPolicy|restricted|decrypt
    body.extend_from_slice(&0u16.to_be_bytes()); // authPolicy
    body.extend_from_slice(&0x0006u16.to_be_bytes()); // AES
    body.extend_from_slice(&128u16.to_be_bytes());
    body.extend_from_slice(&0x0043u16.to_be_bytes()); // CFB
    body.extend_from_slice(&0x0010u16.to_be_bytes()); // scheme NULL
    body.extend_from_slice(&2048u16.to_be_bytes());
    body.extend_from_slice(&0u32.to_be_bytes());
    body.extend_from_slice(&256u16.to_be_bytes());
    let mut modulus = vec![seed | 0x80; 256];
    modulus[255] |= 1;
    body.extend_from_slice(&modulus);
    let mut out = u16::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    B64.encode(out)
}

pub fn assert_error_404(c: &Client, path: &str) {
    let (s, b) = c.get(path);
    assert_error(s, &b, 404, "no ");
}
