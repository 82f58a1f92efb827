//! Bulk runs against the emulator's service API when the input or the service misbehaves: a CSV line
//! with an unterminated quote, keys that are not base64, a run cancelled half way, a service that
//! cannot be reached at all.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use dps_service::bulk::{self, BulkOptions, ItemReport, Outcome};
use dps_service::input::{CsvEnrollments, JsonLines};
use dps_service::{ClientOptions, ConnectionString, IndividualEnrollment, ServiceClient};

const KEY: &str = "ZGV2aWNlLWtleS1mb3ItZHBzLXNlcnZpY2UtdGVzdHMtMQ==";

fn stored(c: &ServiceClient) -> HashSet<String> {
    c.query_enrollments("SELECT * FROM enrollments", Some(1000))
        .map(|e| e.unwrap().registration_id)
        .collect()
}

/// Issue 21, item 7: a line with an unterminated quote took lines 6-9 with it; they were neither
/// enrolled nor reported.
#[test]
fn an_unterminated_quote_fails_its_line_and_the_rest_is_enrolled() {
    let emu = start();
    let c = owner(&emu);
    let mut csv = String::from("registrationId,attestation,primaryKey\n");
    for i in 2..=9 {
        let quote = if i == 5 { "\"" } else { "" };
        csv.push_str(&format!("{quote}q-{i},symmetricKey,{KEY}\n"));
    }
    let mut reports: Vec<ItemReport> = Vec::new();
    let input = CsvEnrollments::new(csv.as_bytes(), "line.csv").unwrap();
    let s = bulk::run(&c, input, &BulkOptions::default(), |r| reports.push(r.clone())).unwrap();
    assert_eq!((s.total(), s.done, s.failed), (8, 7, 1), "{s:?}");
    let mut lines: Vec<u64> = reports.iter().map(|r| r.line.unwrap()).collect();
    lines.sort();
    assert_eq!(lines, [2, 3, 4, 5, 6, 7, 8, 9]);
    let bad = reports.iter().find(|r| r.line == Some(5)).unwrap();
    assert!(
        matches!(&bad.outcome, Outcome::Failed { message, .. } if message.starts_with("a quote (\") is not closed")),
        "{bad:?}"
    );
    let ids = stored(&c);
    for i in [2, 3, 4, 6, 7, 8, 9] {
        assert!(ids.contains(&format!("q-{i}")), "q-{i} missing: {ids:?}");
    }
}

/// Issue 21, item 8: a key that is not base64 is a failed record found locally: no call carries it.
#[test]
fn keys_that_are_not_base64_fail_without_a_call() {
    let emu = start();
    let c = owner(&emu);
    let mut text = String::new();
    for (i, key) in ["not base64!", KEY, "abc", KEY].iter().enumerate() {
        text.push_str(&format!(
            "{{\"registrationId\":\"k-{i}\",\"attestation\":{{\"type\":\"symmetricKey\",\"symmetricKey\":{{\"primaryKey\":\"{key}\"}}}}}}\n"
        ));
    }
    text.push_str(
        "{\"registrationId\":\"k-ek\",\"attestation\":{\"type\":\"tpm\",\"tpm\":{\"endorsementKey\":\"AT%A\"}}}\n",
    );
    let mut reports: Vec<ItemReport> = Vec::new();
    let input = JsonLines::<_, IndividualEnrollment>::new(text.as_bytes(), "keys.jsonl");
    let options = BulkOptions {
        in_flight: 1,
        chunk: 1,
        ..BulkOptions::default()
    };
    let s = bulk::run(&c, input, &options, |r| reports.push(r.clone())).unwrap();
    assert_eq!(
        (s.done, s.failed, s.calls),
        (2, 3, 2),
        "one call per good record only: {s:?}"
    );
    for (id, needle) in [
        ("k-0", "attestation.symmetricKey.primaryKey is not base64"),
        ("k-2", "attestation.symmetricKey.primaryKey is not base64"),
        ("k-ek", "attestation.tpm.endorsementKey is not base64"),
    ] {
        let r = reports.iter().find(|r| r.id == id).unwrap();
        assert!(
            matches!(&r.outcome, Outcome::Failed { code: None, message } if message.contains(needle)),
            "{r:?}"
        );
    }
    assert_eq!(stored(&c), HashSet::from(["k-1".to_string(), "k-3".to_string()]));
}

/// Issue 21, item 8: against a closed port, 1,000 records took minutes (every call retried); now the
/// run stops after a short bounded retry with an error that says so.
#[test]
fn a_service_that_cannot_be_reached_stops_the_run_quickly() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cs = ConnectionString::parse(&format!(
        "HostName=nowhere.example.test;SharedAccessKeyName={OWNER};SharedAccessKey={OWNER_KEY}"
    ))
    .unwrap();
    let client = ServiceClient::new(
        cs,
        ClientOptions {
            endpoint: Some(format!("127.0.0.1:{port}")),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let text: String = (0..1000)
        .map(|i| format!("{{\"registrationId\":\"c-{i}\",\"attestation\":{{\"type\":\"symmetricKey\"}}}}\n"))
        .collect();
    let input = JsonLines::<_, IndividualEnrollment>::new(text.as_bytes(), "closed.jsonl");
    let start = Instant::now();
    let mut reports = 0;
    let e = bulk::run(&client, input, &BulkOptions::default(), |_| reports += 1).unwrap_err();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let m = e.to_string();
    assert!(
        m.contains("no call had an answer within 3.0 s, so the run stopped") && m.contains("none acknowledged"),
        "{m}"
    );
    assert!(reports < 1000, "every record was tried: {reports}");
}

/// Cancelled half way (what Ctrl-C does): nothing more is sent, every record read has one report,
/// and everything acknowledged is in the store.
#[test]
fn a_cancelled_run_reports_what_was_acknowledged() {
    let emu = start();
    let c = owner(&emu);
    let n = 5000;
    let text: String = (0..n)
        .map(|i| format!("{{\"registrationId\":\"x-{i:05}\",\"attestation\":{{\"type\":\"symmetricKey\"}}}}\n"))
        .collect();
    let cancel = Arc::new(AtomicBool::new(false));
    let options = BulkOptions {
        cancel: Some(Arc::clone(&cancel)),
        ..BulkOptions::default()
    };
    let mut acknowledged = HashSet::new();
    let mut reported = 0u64;
    let input = JsonLines::<_, IndividualEnrollment>::new(text.as_bytes(), "many.jsonl");
    let s = bulk::run(&c, input, &options, |r| {
        reported += 1;
        if r.outcome.acknowledged() {
            acknowledged.insert(r.id.clone());
        }
        if reported == 200 {
            cancel.store(true, Ordering::SeqCst);
        }
    })
    .unwrap();
    assert!(s.interrupted, "{s:?}");
    assert_eq!(s.total(), reported);
    assert!(s.total() < n, "the run went on to the end: {s:?}");
    assert_eq!(s.failed, 0, "{s:?}");
    assert_eq!(acknowledged.len() as u64, s.done);
    assert_eq!(
        stored(&c),
        acknowledged,
        "the store holds exactly what was acknowledged"
    );
}
