//! A bulk run survives the emulator restarting under it (same port, same state directory): calls that
//! got no answer are retried, and every record the run acknowledged is in the store afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use dps_emulator::Emulator;
use dps_service::bulk::{self, BulkOptions, Outcome};
use dps_service::input::{Format, enrollments_from_file};
use dps_service::{ClientOptions, ConnectionString, ServiceClient};

const N: usize = 3000;

#[test]
fn emulator_restarted_mid_bulk_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let file = dir.path().join("enrollments.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    for i in 0..N {
        writeln!(
            f,
            "{{\"registrationId\":\"restart-{i:05}\",\"attestation\":{{\"type\":\"symmetricKey\"}}}}"
        )
        .unwrap();
    }
    f.flush().unwrap();
    drop(f);

    let emu = Emulator::start_with(config(), 0, options(Some(&state))).unwrap();
    let port = emu.port();
    let roots = GrowingRoots::new(ca_certs(&emu));
    let cs = ConnectionString::parse(&format!(
        "HostName={};SharedAccessKeyName={OWNER};SharedAccessKey={OWNER_KEY}",
        emu.global_endpoint()
    ))
    .unwrap();
    let client = ServiceClient::new(
        cs,
        ClientOptions {
            tls_config: Some(roots.tls_config()),
            timeout: Duration::from_secs(10),
            ..ClientOptions::default()
        },
    )
    .unwrap();

    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let (ack, fail) = (Arc::clone(&acknowledged), Arc::clone(&failures));
    let run = std::thread::spawn(move || {
        let options = BulkOptions {
            in_flight: 4,
            retries: 40,
            retry_delay: Duration::from_millis(50),
            ..BulkOptions::default()
        };
        let input = enrollments_from_file(&file, Format::JsonLines).unwrap();
        bulk::run(&client, input, &options, |r| match &r.outcome {
            Outcome::Done | Outcome::AlreadyExists => ack.lock().unwrap().push(r.id.clone()),
            Outcome::Failed { message, .. } => fail.lock().unwrap().push(format!("{}: {message}", r.id)),
            Outcome::NotSent => fail.lock().unwrap().push(format!("{}: not sent", r.id)),
        })
        .unwrap()
    });

    // Stop the emulator once part of the run is acknowledged, then start it again on the same port.
    test_support::wait::until_true("a fifth of the run acknowledged", Duration::from_secs(120), || {
        assert!(!run.is_finished(), "the run ended before the restart");
        acknowledged.lock().unwrap().len() >= N / 5
    });
    let before_stop = acknowledged.lock().unwrap().len();
    emu.shutdown();
    // The port is free (calls meanwhile are refused) before the emulator comes back on it.
    test_support::wait::refuses(("127.0.0.1", port));
    let emu = Emulator::start_with(config(), port, options(Some(&state))).unwrap();
    roots.roots.write().unwrap().extend(ca_certs(&emu));

    let summary = run.join().unwrap();
    assert!(before_stop < N, "the restart came after the run ended");
    assert!(failures.lock().unwrap().is_empty(), "{:?}", failures.lock().unwrap());
    assert_eq!(summary.total(), N as u64, "{summary:?}");
    assert!(summary.calls > (N / 10) as u64, "no call was retried: {summary:?}");

    let stored: HashSet<String> = owner(&emu)
        .query_enrollments("SELECT * FROM enrollments", Some(1000))
        .map(|e| e.unwrap().registration_id)
        .collect();
    let acknowledged = acknowledged.lock().unwrap();
    assert_eq!(acknowledged.len(), N);
    let missing: Vec<_> = acknowledged.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert_eq!(stored.len(), N);
}
