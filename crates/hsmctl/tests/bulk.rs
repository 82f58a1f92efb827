//! `hsmctl enrollment bulk` as a factory operator runs it, against the emulator's service API: a bad
//! line among good ones, `--report`, `--quiet`, Ctrl-C half way, a closed port, the progress bar.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{OWNER_KEY, service_api};
use dps_emulator::Emulator;
use serde_json::Value;

const KEY: &str = "ZGV2aWNlLWtleS1mb3ItdGhlLWhzbWN0bC1jbGktdGVzdA==";

struct Service {
    emu: Emulator,
    dir: tempfile::TempDir,
    args: Vec<String>,
}

fn service() -> Service {
    let dir = tempfile::tempdir().unwrap();
    let api = service_api(dir.path());
    let args = vec![
        "--connection-string-file".to_string(),
        s(&api.connection_string_file),
        "--trusted-ca".to_string(),
        s(&api.server_ca),
    ];
    Service {
        emu: api.emulator,
        dir,
        args,
    }
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn hsmctl(args: &[&str], service: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hsmctl"));
    c.args(args).args(service).env_remove("DPS_SERVICE_CONNECTION_STRING");
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn report(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn listed(svc: &Service) -> HashSet<String> {
    let out = hsmctl(&["enrollment", "list"], &svc.args).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["registrationId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn jsonl(path: &Path, prefix: &str, n: usize) {
    use std::io::Write as _;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        writeln!(
            f,
            "{{\"registrationId\":\"{prefix}-{i:06}\",\"attestation\":{{\"type\":\"symmetricKey\",\"symmetricKey\":{{\"primaryKey\":\"{KEY}\"}}}}}}"
        )
        .unwrap();
    }
}

/// Issue 21, items 7, 8 and 11: every line of the file ends in the report (a line with an unterminated
/// quote, a key that is not base64 and an over-long line fail alone), the counts add up, and `--quiet`
/// hides the re-run's "already exists" lines.
#[test]
fn every_line_ends_in_the_report_and_quiet_hides_existing_records() {
    let svc = service();
    let csv = svc.dir.path().join("line-7.csv");
    let mut text = String::from("registrationId,attestation,primaryKey\n");
    for i in 2..=10 {
        text.push_str(&match i {
            5 => format!("\"dev-{i},symmetricKey,{KEY}\n"),
            7 => format!("dev-{i},symmetricKey,not-base64!\n"),
            9 => format!("dev-{i},symmetricKey,{}\n", "A".repeat(70 * 1024)),
            _ => format!("dev-{i},symmetricKey,{KEY}\n"),
        });
    }
    std::fs::write(&csv, text).unwrap();
    let rep = svc.dir.path().join("report.jsonl");
    let args = [
        "enrollment",
        "bulk",
        csv.to_str().unwrap(),
        "--report",
        rep.to_str().unwrap(),
    ];
    let out = hsmctl(&args, &svc.args).output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("9 records: 6 done, 0 already existed, 3 failed"), "{err}");
    assert!(err.contains("line 5: failed: a quote (\") is not closed"), "{err}");
    assert!(
        err.contains("dev-7 (line 7): failed: attestation.symmetricKey.primaryKey is not base64"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "line 9: failed: the line is {} bytes, longer than",
            19 + 70 * 1024
        )),
        "{err}"
    );
    let lines = report(&rep);
    let mut numbers: Vec<u64> = lines.iter().map(|l| l["line"].as_u64().unwrap()).collect();
    numbers.sort();
    assert_eq!(numbers, (2..=10).collect::<Vec<u64>>());
    let by_line = |n: u64| lines.iter().find(|l| l["line"] == n).unwrap().clone();
    assert_eq!(by_line(6)["registrationId"], "dev-6");
    assert_eq!(by_line(6)["outcome"], "done");
    assert_eq!(by_line(7)["outcome"], "failed");
    assert!(by_line(7)["error"].as_str().unwrap().contains("not base64"));
    assert_eq!(by_line(5)["outcome"], "failed");
    let expected: HashSet<String> = [2, 3, 4, 6, 8, 10].iter().map(|i| format!("dev-{i}")).collect();
    assert_eq!(listed(&svc), expected);

    let out = hsmctl(&[&args[..], &["--quiet"]].concat(), &svc.args).output().unwrap();
    let err = stderr(&out);
    assert!(err.contains("9 records: 0 done, 6 already existed, 3 failed"), "{err}");
    assert!(!err.contains("already exists"), "{err}");
    assert!(err.contains("dev-7 (line 7): failed"), "{err}");
    let lines = report(&rep);
    assert_eq!(lines.iter().filter(|l| l["outcome"] == "alreadyExists").count(), 6);
}

/// Issue 21, item 8: Ctrl-C (SIGINT) half way prints what was acknowledged and exits 130; the report
/// holds exactly what the service acknowledged.
#[test]
fn ctrl_c_reports_what_was_acknowledged_and_exits_130() {
    let svc = service();
    let file = svc.dir.path().join("many.jsonl");
    jsonl(&file, "int", 50_000);
    let rep = svc.dir.path().join("report.jsonl");
    let mut child = hsmctl(
        &[
            "enrollment",
            "bulk",
            file.to_str().unwrap(),
            "--in-flight",
            "1",
            "--report",
            rep.to_str().unwrap(),
        ],
        &svc.args,
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    test_support::wait::until_true("100 lines in the report", Duration::from_secs(120), || {
        assert!(child.try_wait().unwrap().is_none(), "hsmctl ended before the interrupt");
        std::fs::read_to_string(&rep).map(|t| t.lines().count()).unwrap_or(0) >= 100
    });
    let kill = Command::new("kill")
        .args(["-s", "INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let lines = report(&rep);
    let done: HashSet<String> = lines
        .iter()
        .filter(|l| l["outcome"] == "done")
        .map(|l| l["registrationId"].as_str().unwrap().to_string())
        .collect();
    assert!(done.len() < 50_000, "the run was not interrupted");
    let not_sent = lines.iter().filter(|l| l["outcome"] == "notSent").count();
    assert_eq!(done.len() + not_sent, lines.len(), "{err}");
    let summary = format!(
        "interrupted: {n} records acknowledged ({n} done, 0 already existed), 0 failed, {not_sent} read but not sent",
        n = done.len()
    );
    assert!(err.contains(&summary), "{summary}\n{err}");
    assert_eq!(listed(&svc), done, "the service holds exactly what was acknowledged");
    drop(svc.emu);
}

/// Issue 21, item 8: against a closed port 1,000 records took more than two minutes; now the run
/// stops within seconds with an error saying no call had an answer.
#[test]
fn a_closed_port_ends_the_run_in_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("closed.jsonl");
    jsonl(&file, "closed", 1000);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cs = dir.path().join("cs");
    std::fs::write(
        &cs,
        format!("HostName=nowhere.example.test;SharedAccessKeyName=owner;SharedAccessKey={OWNER_KEY}"),
    )
    .unwrap();
    let endpoint = format!("127.0.0.1:{port}");
    let start = Instant::now();
    let out = hsmctl(
        &["enrollment", "bulk", file.to_str().unwrap(), "--endpoint", &endpoint],
        &["--connection-string-file".to_string(), s(&cs)],
    )
    .output()
    .unwrap();
    let took = start.elapsed();
    let err = stderr(&out);
    assert!(took < Duration::from_secs(15), "took {took:?}: {err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error: connection failed: bulk run: transport: no call had an answer within 3.0 s"),
        "{err}"
    );
}

/// Issue 21, item 8: on a terminal, a bar with the total and an ETA (not a spinner with a raw rate).
#[test]
fn the_progress_bar_has_a_total_and_an_eta() {
    let svc = service();
    let file = svc.dir.path().join("bar.jsonl");
    jsonl(&file, "bar", 3000);
    // `script` gives hsmctl a terminal; its output is the terminal's.
    let mut cmd = vec![
        env!("CARGO_BIN_EXE_hsmctl").to_string(),
        "enrollment".into(),
        "bulk".into(),
        s(&file),
    ];
    cmd.extend(svc.args.iter().cloned());
    let line: Vec<String> = cmd.iter().map(|a| format!("'{a}'")).collect();
    let script = PathBuf::from("/usr/bin/script");
    let out = Command::new(if script.exists() {
        script
    } else {
        PathBuf::from("script")
    })
    .args(["-qefc", &line.join(" "), "/dev/null"])
    .env_remove("DPS_SERVICE_CONNECTION_STRING")
    .stdin(Stdio::null())
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("/3000 records ("), "{text}");
    assert!(text.contains("ETA"), "{text}");
    assert!(text.contains("3000 records: 3000 done"), "{text}");
}
