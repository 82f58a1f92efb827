//! `hsmctl hub send`: connect to the assigned IoT hub with the configured identity (`dps_device::hub`:
//! the x509 TLS identity, or SAS tokens signed by the symmetric identity) and send device-to-cloud
//! messages, each acknowledged by the hub (QoS 1). One connection per run; messaging beyond this stays
//! with an IoT Hub client.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use dps_device::hub::{HubConnection, HubOptions};
use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS};

use crate::config::load_config;
use crate::{CliError, dps};

#[derive(Subcommand)]
pub enum HubCommand {
    /// Connect to the hub with the configured identity and send each --message (QoS 1, acknowledged).
    Send(SendArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Identity {
    X509,
    SymmetricKey,
}

#[derive(Args)]
pub struct SendArgs {
    /// Configuration file (the library's TOML); default: $HSM_ABI_CONFIG.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Which configured identity authenticates; needed when the configuration has both.
    #[arg(long, value_enum)]
    identity: Option<Identity>,
    /// The assigned IoT Hub's host name (in the username and the SAS resource).
    #[arg(long)]
    hub: String,
    /// The device id on the hub (the assignment's).
    #[arg(long)]
    device_id: String,
    /// Where to connect, host[:port]; default: the hub (8883 for mqtt, 443 for mqtt-ws).
    #[arg(long)]
    endpoint: Option<String>,
    /// mqtt or mqtt-ws.
    #[arg(long, default_value = "mqtt", value_parser = dps::transport_parser())]
    transport: dps_device::Transport,
    /// PEM file of the CA(s) to trust for the hub; default: the Mozilla root store.
    #[arg(long)]
    trusted_ca: Option<PathBuf>,
    /// A message body; repeat for several messages.
    #[arg(long = "message", required = true)]
    messages: Vec<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

pub fn run(cmd: HubCommand) -> Result<(), CliError> {
    match cmd {
        HubCommand::Send(a) => send(a),
    }
}

fn send(a: SendArgs) -> Result<(), CliError> {
    let config = load_config(a.config.as_deref())?;
    let identity = match (a.identity, config.x509.is_some(), config.symmetric_key.is_some()) {
        (Some(Identity::X509), ..) | (None, true, false) => dps_device::Attestation::X509(hsm::open_x509(&config)?),
        (Some(Identity::SymmetricKey), ..) | (None, false, true) => {
            dps_device::Attestation::SymmetricKey(hsm::open_symmetric(&config)?)
        }
        (None, true, true) => {
            return Err(CliError::Usage(format!(
                "{} configures [x509] and [symmetric_key]: choose one with --identity",
                config.source
            )));
        }
        (None, false, false) => {
            return Err(CliError::Usage(format!(
                "{} has neither [x509] nor [symmetric_key]",
                config.source
            )));
        }
    };
    let mut options = HubOptions::new(dps::trusted_roots(a.trusted_ca.as_deref())?);
    options.transport = a.transport;
    options.endpoint = a.endpoint.clone();
    options.user_agent = concat!("hsmctl/", env!("CARGO_PKG_VERSION")).to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Transport(format!("cannot start the tokio runtime: {e}")))?;
    let deadline = Duration::from_secs(a.timeout);
    runtime.block_on(async {
        let hub = HubConnection::for_device(&a.hub, &a.device_id, &identity, options)
            .await
            .map_err(|e| dps::cli_error(e, a.timeout))?;
        let mqtt = hub.mqtt_options().await.map_err(|e| dps::cli_error(e, a.timeout))?;
        let (client, mut events) = AsyncClient::new(mqtt, 10);
        let run = async {
            next(&mut events, |p| matches!(p, Packet::ConnAck(_))).await?;
            outln!("connected to {} as {} over {}", a.hub, a.device_id, a.transport.name());
            for body in &a.messages {
                client
                    .publish(hub.topics().telemetry(""), QoS::AtLeastOnce, false, body.clone())
                    .await
                    .map_err(|e| CliError::Transport(e.to_string()))?;
                next(&mut events, |p| matches!(p, Packet::PubAck(_))).await?;
                outln!("sent: {} (acknowledged)", dps::shown(body));
            }
            client
                .disconnect()
                .await
                .map_err(|e| CliError::Transport(e.to_string()))
        };
        tokio::time::timeout(deadline, run)
            .await
            .map_err(|_| CliError::Transport(format!("the hub did not answer within {}s (--timeout)", a.timeout)))?
    })
}

/// Drive the connection until a packet `want` picks arrives; a refused CONNECT or a lost connection is
/// the error.
async fn next(events: &mut EventLoop, want: impl Fn(&Packet) -> bool) -> Result<(), CliError> {
    loop {
        match events.poll().await {
            Ok(Event::Incoming(p)) if want(&p) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(CliError::Transport(format!("the hub connection failed: {e}"))),
        }
    }
}
