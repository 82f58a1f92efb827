//! Bulk-create enrollments from a JSON-lines file against the emulator (its durable store, in a child
//! process of its own so the measured memory is the client's): enrollments/s with 4 calls in flight
//! vs 1, and the client's peak RSS for a small and a large file (streaming: it must not grow) and for a
//! file whose first line is 80 MiB (a failed record, read past without being held).
//!
//! `cargo bench -p dps-service --bench bulk [-- RECORDS]` (default 10000).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dps_emulator::{Emulator, EmulatorConfig, ServerOptions, ServicePolicy};
use dps_service::bulk::{self, BulkOptions};
use dps_service::input::{Format, enrollments_from_file};
use dps_service::{ClientOptions, ConnectionString, ServiceClient};

const KEY: &str = "YmVuY2gta2V5LWZvci10aGUtZHBzLXNlcnZpY2UtYnVsaw==";

/// The child: serve until standard input closes.
fn serve(state: &Path, ca_out: &Path) {
    let emu = Emulator::start_with(
        EmulatorConfig {
            id_scope: "0ne00000A0A".into(),
            assigned_hub: "hub.example.test".into(),
            enrollments: vec![],
        },
        0,
        ServerOptions {
            state_dir: Some(state.to_path_buf()),
            service_policies: vec![ServicePolicy::owner("owner", KEY)],
            max_connections: 64,
            ..ServerOptions::default()
        },
    )
    .unwrap();
    std::fs::write(ca_out, emu.server_ca_pem()).unwrap();
    println!("{}", emu.global_endpoint());
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    emu.shutdown();
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Reset the peak RSS (Linux: 5 > clear_refs), so each run reports its own.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

fn write_file(path: &Path, prefix: &str, n: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        writeln!(
            f,
            "{{\"registrationId\":\"{prefix}-{i:06}\",\"attestation\":{{\"type\":\"symmetricKey\",\"symmetricKey\":{{\"primaryKey\":\"{KEY}\"}}}}}}"
        )
        .unwrap();
    }
}

/// An 80 MB line (a failed record, not held: issue 21 item 11) and then `n` records.
fn write_long_line_file(path: &Path, prefix: &str, n: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(b"{\"registrationId\":\"").unwrap();
    let block = vec![b'x'; 1 << 20];
    for _ in 0..80 {
        f.write_all(&block).unwrap();
    }
    f.write_all(b"\"}\n").unwrap();
    drop(f);
    let rest = path.with_extension("rest");
    write_file(&rest, prefix, n);
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    std::io::copy(&mut std::fs::File::open(&rest).unwrap(), &mut f).unwrap();
    std::fs::remove_file(rest).unwrap();
}

fn run(client: &ServiceClient, file: &Path, in_flight: usize) -> (f64, u64, u64) {
    run_expecting(client, file, in_flight, 0)
}

fn run_expecting(client: &ServiceClient, file: &Path, in_flight: usize, failures: u64) -> (f64, u64, u64) {
    reset_peak();
    let start = Instant::now();
    let input = enrollments_from_file(file, Format::JsonLines).unwrap();
    let options = BulkOptions {
        in_flight,
        ..BulkOptions::default()
    };
    let s = bulk::run(client, input, &options, |_| {}).unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(s.failed, failures, "{s:?}");
    assert_eq!(s.done + failures, s.total(), "{s:?}");
    (s.total() as f64 / secs, peak_rss_kib(), s.total())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        serve(Path::new(&args[2]), Path::new(&args[3]));
        return;
    }
    let n: usize = args.iter().skip(1).find_map(|a| a.parse().ok()).unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--serve")
        .arg(dir.path().join("state"))
        .arg(&ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut endpoint = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut endpoint)
        .unwrap();
    let cs = ConnectionString::parse(&format!(
        "HostName={};SharedAccessKeyName=owner;SharedAccessKey={KEY}",
        endpoint.trim()
    ))
    .unwrap();
    let cas = hsm_core::pem::parse_certificates("ca", &std::fs::read(&ca).unwrap()).unwrap();
    let client = ServiceClient::new(
        cs,
        ClientOptions {
            trusted_cas: Some(cas),
            timeout: Duration::from_secs(60),
            ..ClientOptions::default()
        },
    )
    .unwrap();

    let small = dir.path().join("small.jsonl");
    write_file(&small, "small", n / 10);
    let (small_rate, small_peak, small_n) = run(&client, &small, 4);
    let long = dir.path().join("long-line.jsonl");
    write_long_line_file(&long, "long", n / 10);
    let (_, long_peak, _) = run_expecting(&client, &long, 4, 1);
    std::fs::remove_file(&long).unwrap();
    let mut rows = Vec::new();
    // Alternate to spread the machine's noise over both settings.
    for round in 0..3 {
        for in_flight in [1, 4] {
            let f = dir.path().join(format!("r{round}-{in_flight}.jsonl"));
            write_file(&f, &format!("r{round}-{in_flight}"), n);
            let (rate, peak, _) = run(&client, &f, in_flight);
            rows.push((in_flight, rate, peak));
            std::fs::remove_file(&f).unwrap();
        }
    }
    drop(child.stdin.take());
    let _ = child.wait();

    // Per-round ratios (1 and 4 in flight back to back), and their median.
    let mut ratios: Vec<f64> = rows.chunks(2).map(|r| r[1].1 / r[0].1).collect();
    ratios.sort_by(f64::total_cmp);
    let peak_large = rows.iter().map(|r| r.2).max().unwrap();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "bulk create, {n} enrollments per run from a JSON-lines file (load average: {})",
        load.trim()
    );
    for (k, rate, peak) in &rows {
        println!("  {k} in flight: {rate:8.0} enrollments/s, client peak RSS {peak} KiB");
    }
    println!("  {small_n}-record file, 4 in flight: {small_rate:8.0} enrollments/s, client peak RSS {small_peak} KiB");
    println!(
        "  an 80 MiB line, then {small_n} records: client peak RSS {long_peak} KiB ({:.2}x the {small_n}-record file)",
        long_peak as f64 / small_peak as f64
    );
    println!(
        "4 in flight / 1, per round: {}; median {:.2}x",
        ratios.iter().map(|r| format!("{r:.2}x")).collect::<Vec<_>>().join(" "),
        ratios[ratios.len() / 2]
    );
    println!(
        "peak RSS {n} records / {small_n} records: {:.2}x",
        peak_large as f64 / small_peak as f64
    );
}
