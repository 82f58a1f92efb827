//! An HTTP CONNECT proxy (a real tinyproxy started here) in front of the emulator: HTTPS and MQTT over
//! WebSockets and AMQP over WebSockets through it, with and without basic credentials, and the refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use dps_device::{Error, Options, ProvisioningClient, Transport};
use dps_emulator::{Emulator, Enrollment};

/// tinyproxy on 127.0.0.1, allowed to CONNECT to one port only; killed on drop.
struct Tinyproxy {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Tinyproxy {
    fn start(dir: &Path, connect_port: u16, basic_auth: Option<(&str, &str)>) -> Tinyproxy {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("tinyproxy.log");
        let auth = basic_auth.map_or(String::new(), |(u, p)| format!("BasicAuth {u} {p}\n"));
        let config = dir.join("tinyproxy.conf");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\nConnectPort {connect_port}\n\
                 LogLevel Connect\nLogFile \"{}\"\nPidFile \"{}\"\nMaxClients 20\n{auth}",
                log.display(),
                dir.join("tinyproxy.pid").display()
            ),
        )
        .unwrap();
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy is installed (scripts/setup.sh)");
        let proxy = Tinyproxy { child, port, log };
        test_support::wait::accepts(("127.0.0.1", port));
        proxy
    }

    fn url(&self, credentials: &str) -> url::Url {
        url::Url::parse(&format!("http://{credentials}127.0.0.1:{}", self.port)).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(emu: &Emulator, transport: Transport, proxy: url::Url) -> ProvisioningClient {
    ProvisioningClient::new(
        &emu.global_endpoint(),
        SCOPE,
        transport,
        roots(&emu.server_ca_pem()),
        Options {
            proxy: Some(proxy),
            ..options()
        },
    )
}

fn symmetric_emulator() -> Emulator {
    emulator(vec![Enrollment::SymmetricIndividual {
        registration_id: "proxied".into(),
        primary_key: DEVICE_KEY.into(),
        secondary_key: None,
    }])
}

/// How many CONNECTs to the emulator the proxy received, and how many tunnels it opened.
fn tunnels(proxy: &Tinyproxy, emu: &Emulator) -> (usize, usize) {
    let log = proxy.log();
    let requests = log.matches(&format!("CONNECT {} HTTP", emu.global_endpoint())).count();
    (requests, log.matches("Established connection to host").count())
}

#[tokio::test]
async fn https_mqtt_ws_and_amqp_ws_register_through_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let emu = symmetric_emulator();
    let proxy = Tinyproxy::start(dir.path(), emu.port(), None);
    let mut seen = 0;
    // issue 23: and AMQP over WebSockets.
    for transport in [Transport::Https, Transport::MqttWs, Transport::AmqpWs] {
        let a = client(&emu, transport, proxy.url(""))
            .register(&symmetric("proxied", DEVICE_KEY), None)
            .await
            .unwrap_or_else(|e| panic!("{transport}: {e}"));
        assert_assigned(&a, "proxied");
        // Each transport went through the proxy (ureq opens a tunnel per request).
        let (requests, opened) = tunnels(&proxy, &emu);
        assert!(requests > seen && opened == requests, "{}", proxy.log());
        seen = requests;
    }
}

#[tokio::test]
async fn x509_over_mqtt_ws_and_amqp_ws_through_a_proxy_with_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::root("proxy root");
    let id = root.file_identity(dir.path(), "proxied-x509", &[]);
    let emu = emulator(vec![Enrollment::X509Group {
        name: "fleet".into(),
        ca: vec![root.der()],
    }]);
    let proxy = Tinyproxy::start(dir.path(), emu.port(), Some(("device", "s3cret")));
    // issue 23: AMQP over WebSockets too, the TLS client certificate through the tunnel.
    for (n, transport) in [Transport::MqttWs, Transport::AmqpWs].into_iter().enumerate() {
        // Percent-encoded in the URL, sent decoded.
        let a = client(&emu, transport, proxy.url("device:s3c%72et@"))
            .register(&x509(id.clone()), None)
            .await
            .unwrap_or_else(|e| panic!("{transport}: {e}"));
        assert_assigned(&a, "proxied-x509");
        // One tunnel per registration, each opened.
        assert_eq!(tunnels(&proxy, &emu), (n + 1, n + 1), "{transport}: {}", proxy.log());
    }
}

#[tokio::test]
async fn a_proxy_answering_407_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let emu = symmetric_emulator();
    let proxy = Tinyproxy::start(dir.path(), emu.port(), Some(("device", "right")));
    for transport in [Transport::Https, Transport::MqttWs, Transport::AmqpWs] {
        for credentials in ["", "device:badpass@"] {
            let e = client(&emu, transport, proxy.url(credentials))
                .register(&symmetric("proxied", DEVICE_KEY), None)
                .await
                .unwrap_err();
            let text = e.to_string();
            assert!(
                matches!(&e, Error::Transport { transport: t, .. } if *t == transport)
                    && text.contains("proxy authentication required")
                    && !text.contains("badpass"),
                "{transport} with {credentials:?}: {e:?}"
            );
        }
    }
    // Every attempt reached the proxy, which opened no tunnel.
    assert_eq!(tunnels(&proxy, &emu), (6, 0), "{}", proxy.log());
}

#[tokio::test]
async fn a_proxy_is_refused_for_plain_mqtt_and_other_schemes_before_connecting() {
    let emu = symmetric_emulator();
    let e = client(&emu, Transport::Mqtt, url::Url::parse("http://127.0.0.1:1").unwrap())
        .register(&symmetric("proxied", DEVICE_KEY), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidRequest(m) if m.contains("not over MQTT")),
        "{e:?}"
    );
    let e = client(
        &emu,
        Transport::Https,
        url::Url::parse("socks5://user:secret@127.0.0.1:1").unwrap(),
    )
    .register(&symmetric("proxied", DEVICE_KEY), None)
    .await
    .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(&e, Error::InvalidRequest(m) if m.contains("only http://")) && !text.contains("secret"),
        "{e:?}"
    );
}
