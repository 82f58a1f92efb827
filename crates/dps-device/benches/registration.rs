//! Client cost of one registration on loopback, per transport: `cargo bench -p dps-device --bench registration`.
//!
//! x509 with a P-256 key on a SoftHSM2 token (every TLS signature made on the token). The emulator runs in a
//! child process (this binary started again with `DPS_BENCH_EMULATOR` set), so the process CPU time measured
//! here (CLOCK_PROCESS_CPUTIME_ID) is the client's only: the library, rustls, SoftHSM2. It answers `assigned`
//! at the first poll with `Retry-After: 0`, and the client's polling floor is zero.
//!
//! Printed: median wall and CPU per registration for the library and for a raw client of the same protocol
//! (ureq, rumqttc: same TLS configuration, same requests, no library), their difference (what the library adds
//! beyond the round trips), MQTT / HTTPS CPU and (issue 23) library AMQP / MQTT CPU; then `BENCH_RUNS` (default
//! 1000) sequential registrations
//! per transport with their CPU per registration, RSS and open file descriptors at start and end.
//! `BENCH_ROUNDS` (default 60) sets the timed rounds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dps_device::ApiVersion;
use dps_device::blocking::ProvisioningClient;
use dps_device::{Attestation, Options, Transport};
use dps_emulator::{Emulator, EmulatorConfig, Enrollment, ServerOptions};
use dps_wire::device::{DeviceRegistration, EnrollmentStatus, RegistrationOperationStatus};
use hsm_core::config::Config;
use hsm_core::{Curve, KeyAlgorithm, X509Identity};
use hsm_pkcs11::testing::SoftHsm;
use hsm_pkcs11::{Pkcs11X509, tools};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

const SCOPE: &str = "0ne00000A0A";
const CHILD: &str = "DPS_BENCH_EMULATOR";
const CN: &str = "bench-device";

/// A named registration to time.
type Case<'a> = (&'static str, Box<dyn Fn() + 'a>);

fn main() {
    if let Some(ca) = std::env::var_os(CHILD) {
        emulator_child(Path::new(&ca));
        return;
    }
    let _ = rustls::crypto::CryptoProvider::install_default((*hsm_core::tls::crypto_provider()).clone());
    let rounds = env_number("BENCH_ROUNDS", 60);
    let runs = env_number("BENCH_RUNS", 1000);

    let hsm = SoftHsm::create().expect("SoftHSM2 must be installed (apt-get install softhsm2)");
    // SAFETY: single-threaded here, before any PKCS#11 module is loaded; nothing else reads the environment.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("SOFTHSM2_CONF", hsm.conf());
    }
    hsm.init_token("bench", "so-pin-0000", "1234").unwrap();
    let pin = hsm.pin_file("user.pin", "1234").unwrap();
    let base = format!(
        "pkcs11:token=bench;object=device?module-path={}&pin-source=file:{}",
        hsm.module().display(),
        pin.display()
    );
    let key_uri = tools::generate_key_pair(&base, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let spki = hsm_pkcs11::open_signer(&key_uri.to_token_string())
        .unwrap()
        .public_key_spki()
        .unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "bench root");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, CN);
    let leaf = leaf.signed_by(&TokenPublicKey(spki), &ca).unwrap();
    std::fs::write(hsm.path().join("device.pem"), leaf.pem()).unwrap();
    std::fs::write(hsm.path().join("ca.pem"), ca.pem()).unwrap();
    let cfg = Config::from_toml(
        &format!(
            "[x509]\nbackend = \"pkcs11\"\nkey = \"{}\"\ncertificate_file = \"device.pem\"\n",
            key_uri.to_token_string()
        ),
        "bench.toml",
        hsm.path(),
    )
    .unwrap();
    let identity: Arc<dyn X509Identity> = Arc::new(Pkcs11X509::from_section(cfg.section("x509").unwrap()).unwrap());

    let (mut child, https_ep, mqtt_ep, amqp_ep, server_ca) = start_emulator(&hsm.path().join("ca.pem"));
    let roots = tlsio_bridge::roots_from_pem("server CA", server_ca.as_bytes()).unwrap();
    let options = Options {
        retry_floor: Duration::ZERO,
        timeout: Duration::from_secs(30),
        ..Options::default()
    };
    let https = ProvisioningClient::new(&https_ep, SCOPE, Transport::Https, roots.clone(), options.clone()).unwrap();
    let mqtt = ProvisioningClient::new(&mqtt_ep, SCOPE, Transport::Mqtt, roots.clone(), options.clone()).unwrap();
    // issue 23: AMQP, on the same SoftHSM key.
    let amqp = ProvisioningClient::new(&amqp_ep, SCOPE, Transport::Amqp, roots.clone(), options).unwrap();
    let attestation = Attestation::X509(identity.clone());
    let raw = Raw {
        identity,
        roots,
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    };

    let lib = |client: &ProvisioningClient| {
        let a = client.register(&attestation, None).unwrap();
        assert_eq!(a.device_id, CN);
    };
    let cases: [Case<'_>; 5] = [
        ("library HTTPS", Box::new(|| lib(&https))),
        ("library MQTT", Box::new(|| lib(&mqtt))),
        ("raw HTTPS", Box::new(|| raw.https(&https_ep))),
        ("raw MQTT", Box::new(|| raw.mqtt(&mqtt_ep))),
        ("library AMQP", Box::new(|| lib(&amqp))),
    ];
    for (_, f) in &cases {
        for _ in 0..5 {
            f();
        }
    }
    // Interleaved rounds, so a change in the machine's load touches every case alike.
    let mut samples: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); cases.len()];
    for _ in 0..rounds {
        for (i, (_, f)) in cases.iter().enumerate() {
            let (c0, t0) = (cpu(), Instant::now());
            f();
            samples[i].0.push(ms(t0.elapsed()));
            samples[i].1.push(ms(cpu() - c0));
        }
    }
    println!("x509, P-256 key on SoftHSM2, loopback, Retry-After 0; {rounds} interleaved rounds; median (min) ms");
    println!("{:<14} {:>16} {:>16}", "case", "wall", "client CPU");
    let mut med = Vec::new();
    for ((name, _), (wall, cpu)) in cases.iter().zip(&mut samples) {
        let (w, c) = (stats(wall), stats(cpu));
        println!("{name:<14} {:>8.2} ({:>5.2}) {:>8.2} ({:>5.2})", w.0, w.1, c.0, c.1);
        med.push((w.0, c.0));
    }
    println!(
        "library minus raw, wall: HTTPS {:+.2} ms, MQTT {:+.2} ms (target <= 5 ms)",
        med[0].0 - med[2].0,
        med[1].0 - med[3].0
    );
    println!(
        "library minus raw, CPU:  HTTPS {:+.2} ms, MQTT {:+.2} ms",
        med[0].1 - med[2].1,
        med[1].1 - med[3].1
    );
    println!(
        "MQTT CPU / HTTPS CPU: library {:.2}x (target <= 1.5x), raw {:.2}x",
        med[1].1 / med[0].1,
        med[3].1 / med[2].1
    );
    println!(
        "AMQP CPU / MQTT CPU: library {:.2}x (target <= 1.5x)",
        med[4].1 / med[1].1
    );

    for (name, client) in [("HTTPS", &https), ("MQTT", &mqtt), ("AMQP", &amqp)] {
        let (rss0, fd0) = (rss_kib(), open_fds());
        let (c0, t0) = (cpu(), Instant::now());
        for _ in 0..runs {
            lib(client);
        }
        let (rss1, fd1) = (rss_kib(), open_fds());
        println!(
            "{runs} sequential {name} registrations in {:.1} s ({:.2} ms CPU each): RSS {rss0} -> {rss1} KiB, open fds {fd0} -> {fd1}",
            t0.elapsed().as_secs_f64(),
            ms(cpu() - c0) / runs.max(1) as f64
        );
    }
    drop(child.stdin.take());
    let _ = child.wait();
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median and minimum.
fn stats(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0])
}

/// CPU time of this process (every thread), the emulator excluded (it is another process).
fn cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The public half of a P-256 key on the token, for rcgen to certify.
struct TokenPublicKey(Vec<u8>);

impl rcgen::PublicKeyData for TokenPublicKey {
    fn der_bytes(&self) -> &[u8] {
        // The uncompressed point ends the SubjectPublicKeyInfo.
        &self.0[self.0.len() - 65..]
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

/// Start this binary as the emulator; returns it with its HTTPS, MQTT and AMQP endpoints and server CA.
fn start_emulator(ca: &Path) -> (Child, String, String, String, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let line = |out: &mut BufReader<_>| {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        l.trim().to_string()
    };
    let (https, mqtt, amqp) = (line(&mut out), line(&mut out), line(&mut out));
    let mut pem = String::new();
    out.read_to_string(&mut pem).unwrap();
    (child, https, mqtt, amqp, pem)
}

/// The child: an emulator trusting `ca` for x509 group enrollment, `Retry-After: 0`; ends when stdin closes.
fn emulator_child(ca: &Path) {
    let ca = hsm_core::pem::parse_certificates("CA", &std::fs::read(ca).unwrap()).unwrap();
    let emulator = Emulator::start_with(
        EmulatorConfig {
            id_scope: SCOPE.into(),
            assigned_hub: "hub.example.test".into(),
            enrollments: vec![Enrollment::X509Group {
                name: "bench".into(),
                ca,
            }],
        },
        0,
        ServerOptions {
            retry_after: Duration::ZERO,
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let mut stdout = std::io::stdout();
    write!(
        stdout,
        "{}\n{}\n{}\n{}",
        emulator.global_endpoint(),
        emulator.mqtt_endpoint(),
        emulator.amqp_endpoint(),
        emulator.server_ca_pem()
    )
    .unwrap();
    stdout.flush().unwrap();
    // Close our end so the parent's read_to_string returns.
    let _ = rustix::stdio::dup2_stdout(std::fs::File::open("/dev/null").unwrap());
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
}

/// The same protocol without the library: the baseline of the round trips.
struct Raw {
    identity: Arc<dyn X509Identity>,
    roots: rustls::RootCertStore,
    runtime: tokio::runtime::Runtime,
}

impl Raw {
    fn tls(&self) -> Arc<rustls::ClientConfig> {
        Arc::new(
            tlsio_bridge::client_config(
                self.roots.clone(),
                Some(self.identity.as_ref()),
                tlsio_bridge::TlsVersions::Both,
            )
            .unwrap(),
        )
    }

    fn https(&self, endpoint: &str) {
        let agent = ureq::AgentBuilder::new().tls_config(self.tls()).redirects(0).build();
        let base = format!("https://{endpoint}/{SCOPE}/registrations/{CN}");
        let v: RegistrationOperationStatus = agent
            .put(&format!("{base}/register?api-version={}", ApiVersion::DEVICE))
            .send_json(request())
            .unwrap()
            .into_json()
            .unwrap();
        let op = v.operation_id;
        let v: RegistrationOperationStatus = agent
            .get(&format!("{base}/operations/{op}?api-version={}", ApiVersion::DEVICE))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        assert_eq!(v.status, Some(EnrollmentStatus::Assigned));
    }

    fn mqtt(&self, endpoint: &str) {
        use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration};
        let (host, port) = endpoint.rsplit_once(':').unwrap();
        let mut o = MqttOptions::new(CN, host, port.parse().unwrap());
        o.set_transport(rumqttc::Transport::tls_with_config(TlsConfiguration::Rustls(
            self.tls(),
        )))
        .set_credentials(
            format!(
                "{SCOPE}/registrations/{CN}/api-version={}&ClientVersion=raw",
                ApiVersion::DEVICE
            ),
            "",
        );
        self.runtime.block_on(async {
            let (client, mut events) = AsyncClient::new(o, 8);
            let mut next = async || loop {
                if let Event::Incoming(p) = events.poll().await.unwrap() {
                    return p;
                }
            };
            while !matches!(next().await, Packet::ConnAck(_)) {}
            client
                .subscribe("$dps/registrations/res/#", QoS::AtLeastOnce)
                .await
                .unwrap();
            while !matches!(next().await, Packet::SubAck(_)) {}
            let body = serde_json::to_vec(&request()).unwrap();
            client
                .publish(
                    "$dps/registrations/PUT/iotdps-register/?$rid=1",
                    QoS::AtMostOnce,
                    false,
                    body,
                )
                .await
                .unwrap();
            let op = loop {
                if let Packet::Publish(p) = next().await {
                    let v: RegistrationOperationStatus = serde_json::from_slice(&p.payload).unwrap();
                    break v.operation_id;
                }
            };
            let topic = format!("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId={op}");
            client.publish(topic, QoS::AtMostOnce, false, "").await.unwrap();
            loop {
                if let Packet::Publish(p) = next().await {
                    let v: RegistrationOperationStatus = serde_json::from_slice(&p.payload).unwrap();
                    assert_eq!(v.status, Some(EnrollmentStatus::Assigned));
                    break;
                }
            }
        });
    }
}

/// The register body of the raw clients.
fn request() -> DeviceRegistration {
    DeviceRegistration {
        registration_id: Some(CN.to_string()),
        ..DeviceRegistration::default()
    }
}
