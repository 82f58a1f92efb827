//! A device's life with an issued certificate, from provisioning to its second certificate:
//!
//! 1. Provision: a new ECDSA P-384 key is made on a PKCS#11 token (the issued-identity store of
//!    `hsm-issued`), its CSR goes with the DPS registration (onboarding with a symmetric key), and DPS
//!    answers with the assignment and the certificate it issued (checked, then stored).
//! 2. Connect to the assigned IoT hub with that certificate (the TLS key stays on the token) and send
//!    telemetry.
//! 3. Renew the certificate over the same connection: a new key and its CSR published on
//!    `$iothub/credentials`, the issued chain read from the answers, checked and installed.
//! 4. Connect again with the new certificate, send again, and confirm it (the old one is deleted).
//!
//! ```text
//! cargo run -p hsm-issued --features dps --example hub_telemetry -- --dps HOST:PORT --id-scope SCOPE \
//!     --trusted-ca server-ca.pem --registration-id ID --symmetric-key BASE64 \
//!     --keys 'pkcs11:token=T?module-path=...&pin-source=file:...' --store DIR [--hub-endpoint HOST:PORT]
//! ```
//!
//! `--hub-endpoint` dials a local emulator's MQTT port instead of the assigned hub. Every step prints one
//! line; any failure ends the program with the error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dps_device::hub::{CredentialsAnswer, HubConnection, HubOptions, credentials_answer, credentials_request};
use dps_device::{Assignment, Attestation, HUB_API_VERSION, ProvisioningClient};
use hsm_issued::{IssuedX509, KeySource, Store};
use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse()?;
    let roots = read_roots(args.get("trusted-ca")?)?;
    let registration_id = args.get("registration-id")?;
    let keys = KeySource::parse(args.get("keys")?)?;
    let store = Store::open(args.get("store")?.as_ref(), registration_id, keys, hsm::open_signer)?;

    // 1. Provision with a CSR: DPS issues the first certificate.
    let client = ProvisioningClient::builder(args.get("id-scope")?)
        .endpoint(args.get("dps")?)
        .trust_roots(roots.clone())
        .build()?;
    let key = hsm_core::sas::decode_key("--symmetric-key", args.get("symmetric-key")?)?;
    let onboarding = Attestation::SymmetricKey(Arc::new(hsm_core::file::FileSymmetric::new(
        registration_id.to_string(),
        key,
    )));
    let issued = hsm_issued::flow::register(&store, &client, Some(&onboarding), None).await?;
    let assignment = issued.assignment.ok_or("the registration returned no assignment")?;
    println!(
        "provisioned: device {} on {}, certificate generation {}",
        assignment.device_id, assignment.assigned_hub, issued.generation.generation
    );

    // 2. Connect with the issued certificate and send telemetry.
    let identity = Attestation::X509(Arc::new(IssuedX509::new(store.clone())));
    let mut options = HubOptions::new(roots);
    options.endpoint = args.optional("hub-endpoint").map(str::to_string);
    options.api_version = HUB_API_VERSION.to_string(); // the credentials topics need it
    let (client, mut events, hub) = connect(&assignment, &identity, options.clone()).await?;
    send(&client, &mut events, &hub, "telemetry with the first certificate").await?;

    // 3. Renew over the same connection.
    client
        .subscribe(hub.topics().credentials_responses(), QoS::AtMostOnce)
        .await?;
    next(&mut events, |p| matches!(p, Packet::SubAck(_)).then_some(())).await?;
    let csr = store.begin()?;
    let request = credentials_request(hub.device_id(), &csr, false)?;
    client
        .publish(hub.topics().credentials_request("1"), QoS::AtLeastOnce, false, request)
        .await?;
    let chain = loop {
        let answer = next(&mut events, |p| match p {
            Packet::Publish(p) => credentials_answer(&p.topic, &p.payload, "1"),
            _ => None,
        })
        .await??;
        match answer {
            CredentialsAnswer::Accepted => println!("renewal accepted by the hub (202)"),
            CredentialsAnswer::Issued(chain) => break chain,
        }
    };
    dps_device::verify_issued_chain(&chain, &csr, registration_id)?;
    store.confirm()?; // the first certificate worked: the one before it (if any) goes
    let chain: Vec<_> = chain.into_iter().map(rustls::pki_types::CertificateDer::from).collect();
    let generation = store.install(&chain)?;
    println!(
        "renewed over the hub connection: certificate generation {}",
        generation.generation
    );
    client.disconnect().await?;

    // 4. Connect again with the new certificate, send, and confirm it.
    let (client, mut events, hub) = connect(&assignment, &identity, options).await?;
    send(&client, &mut events, &hub, "telemetry with the renewed certificate").await?;
    store.confirm()?;
    client.disconnect().await?;
    println!("the renewed certificate is confirmed; the first one is deleted");
    Ok(())
}

/// A new hub connection (its TLS identity is the store's current certificate), up to the CONNACK.
async fn connect(
    assignment: &Assignment,
    identity: &Attestation,
    options: HubOptions,
) -> Result<(AsyncClient, EventLoop, HubConnection)> {
    let hub = HubConnection::new(assignment, identity, options).await?;
    let (client, mut events) = AsyncClient::new(hub.mqtt_options().await?, 10);
    next(&mut events, |p| matches!(p, Packet::ConnAck(_)).then_some(())).await?;
    println!("connected to {} as {}", assignment.assigned_hub, hub.device_id());
    Ok((client, events, hub))
}

/// One telemetry message at QoS 1, acknowledged by the hub.
async fn send(client: &AsyncClient, events: &mut EventLoop, hub: &HubConnection, body: &str) -> Result<()> {
    let topic = hub.topics().telemetry("");
    client.publish(topic, QoS::AtLeastOnce, false, body.to_string()).await?;
    next(events, |p| matches!(p, Packet::PubAck(_)).then_some(())).await?;
    println!("sent: {body}");
    Ok(())
}

/// Drive the connection until `want` picks a packet, within 30 s.
async fn next<T>(events: &mut EventLoop, mut want: impl FnMut(&Packet) -> Option<T>) -> Result<T> {
    let wait = async {
        loop {
            if let Event::Incoming(p) = events.poll().await? {
                if let Some(t) = want(&p) {
                    return Ok::<T, rumqttc::ConnectionError>(t);
                }
            }
        }
    };
    Ok(tokio::time::timeout(Duration::from_secs(30), wait).await??)
}

fn read_roots(path: &str) -> Result<rustls::RootCertStore> {
    let pem = std::fs::read(path).map_err(|e| format!("--trusted-ca {path}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in hsm_core::pem::parse_certificates(path, &pem)? {
        roots.add(certificate)?;
    }
    Ok(roots)
}

/// `--name value` pairs.
struct Args(HashMap<String, String>);

impl Args {
    fn parse() -> Result<Args> {
        let mut map = HashMap::new();
        let mut args = std::env::args().skip(1);
        while let Some(name) = args.next() {
            let name = name
                .strip_prefix("--")
                .ok_or(format!("expected --name value, got {name:?}"))?;
            let value = args.next().ok_or(format!("--{name} needs a value"))?;
            map.insert(name.to_string(), value);
        }
        Ok(Args(map))
    }

    fn get(&self, name: &str) -> Result<&str> {
        Ok(self.optional(name).ok_or(format!("--{name} is required"))?)
    }

    fn optional(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}
