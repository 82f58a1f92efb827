//! `dps-emulator`: run the local DPS emulator from a TOML configuration.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use dps_emulator::{Emulator, EmulatorConfig, ServerOptions, ServiceSettings};

/// A local Azure DPS emulator: serves the DPS device REST API over HTTPS on 127.0.0.1.
#[derive(Parser, Debug)]
#[command(
    name = "dps-emulator",
    version,
    after_help = "On start it prints exactly one line, `listening on 127.0.0.1:PORT`, to stdout (flushed); \
                  by then it accepts connections and the --server-ca-out and --mqtt-port-out files are written.\n\
                  MQTT over TLS listens on --mqtt-port; MQTT over WebSockets (path /$iothub/websocket, \
                  subprotocol mqtt) is served on the HTTPS port.\n\
                  It serves until it receives SIGTERM or SIGINT, then closes every connection and exits with \
                  status 0. Standard input is not read. A bad configuration exits with status 1 and a message \
                  on stderr naming the file and key. Log level: RUST_LOG (default: warn), to stderr."
)]
struct Args {
    /// TOML configuration: id_scope, assigned_hub, [[enrollment]] sections.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0, value_name = "N")]
    port: u16,
    /// Write the PEM of the CA that signed the server certificate here (clients trust it).
    #[arg(long, value_name = "PATH")]
    server_ca_out: Option<PathBuf>,
    /// `Retry-After` (seconds) sent while a registration is assigning.
    #[arg(long, default_value_t = ServerOptions::default().retry_after.as_secs(), value_name = "SECONDS")]
    retry_after: u64,
    /// Connections served at once (HTTPS, MQTT and AMQP together); when all are taken the longest idle one is closed.
    #[arg(long, default_value_t = ServerOptions::default().max_connections, value_name = "N")]
    max_connections: usize,
    /// A request or MQTT packet must arrive whole (TLS handshake included) within this many seconds.
    #[arg(long, default_value_t = ServerOptions::default().request_timeout.as_secs(), value_name = "SECONDS")]
    request_timeout: u64,
    /// Offer only the ChaCha20-Poly1305 cipher suites (for clients run under valgrind, which
    /// cannot follow ring's AES-GCM code).
    #[arg(long)]
    chacha20_only: bool,
    /// Port of the MQTT (TLS) listener on 127.0.0.1; 0 picks a free one (see --mqtt-port-out).
    #[arg(long, default_value_t = 0, value_name = "N")]
    mqtt_port: u16,
    /// Write the MQTT endpoint, `127.0.0.1:PORT` and a newline, here (before the stdout line).
    #[arg(long, value_name = "PATH")]
    mqtt_port_out: Option<PathBuf>,
    /// Port of the AMQP (TLS) listener on 127.0.0.1; 0 picks a free one (see --amqp-port-out). (issue 23)
    #[arg(long, default_value_t = 0, value_name = "N")]
    amqp_port: u16,
    /// Write the AMQP endpoint, `127.0.0.1:PORT` and a newline, here (before the stdout line). (issue 23)
    #[arg(long, value_name = "PATH")]
    amqp_port_out: Option<PathBuf>,
    /// Keep enrollments, groups and registration states here (a SQLite file); overrides `state_dir` of the
    /// configuration. Without either they live in memory only.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Write the service connection string of the first `[[service_policy]]`
    /// (`HostName=127.0.0.1:PORT;SharedAccessKeyName=..;SharedAccessKey=..` and a newline) here, mode 0600,
    /// before the stdout line.
    #[arg(long, value_name = "PATH")]
    connection_string_out: Option<PathBuf>,
    /// Validity of issued device certificates (registrations with a `csr`, IoT Hub
    /// `$iothub/credentials`), 7 to 90 days.
    #[arg(long, default_value_t = 30, value_name = "DAYS")]
    certificate_validity_days: u32,
    /// PEM certificate of the issuing CA (with --issuing-ca-key); default: an ECDSA P-384 root generated at start.
    #[arg(long, value_name = "PATH", requires = "issuing_ca_key")]
    issuing_ca: Option<PathBuf>,
    /// PEM PKCS#8 key of --issuing-ca.
    #[arg(long, value_name = "PATH", requires = "issuing_ca")]
    issuing_ca_key: Option<PathBuf>,
    /// Write the PEM of the issuing CA here (the root of every issued chain).
    #[arg(long, value_name = "PATH")]
    issuing_ca_out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("dps-emulator: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| format!("cannot install the handler for signal {signal}: {e}"))?;
    }
    let config = EmulatorConfig::from_file(&args.config).map_err(|e| e.to_string())?;
    let settings = ServiceSettings::from_file(&args.config).map_err(|e| e.to_string())?;
    if args.max_connections == 0 || args.request_timeout == 0 {
        return Err("--max-connections and --request-timeout must be at least 1".into());
    }
    let options = ServerOptions {
        retry_after: Duration::from_secs(args.retry_after),
        max_connections: args.max_connections,
        request_timeout: Duration::from_secs(args.request_timeout),
        chacha20_only: args.chacha20_only,
        mqtt_port: args.mqtt_port,
        amqp_port: args.amqp_port, // issue 23: AMQP
        state_dir: args.state_dir.clone().or(settings.state_dir),
        service_policies: settings.policies,
        issuance: dps_emulator::IssuanceOptions {
            validity_days: args.certificate_validity_days,
            ca: issuing_ca(args)?,
            ..dps_emulator::IssuanceOptions::default()
        },
    };
    let emulator = Emulator::start_with(config, args.port, options).map_err(|e| e.to_string())?;
    if let Some(path) = &args.server_ca_out {
        std::fs::write(path, emulator.server_ca_pem())
            .map_err(|e| format!("writing the server CA to {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.issuing_ca_out {
        std::fs::write(path, emulator.issuing_ca_pem())
            .map_err(|e| format!("writing the issuing CA to {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.mqtt_port_out {
        std::fs::write(path, format!("{}\n", emulator.mqtt_endpoint()))
            .map_err(|e| format!("writing the MQTT endpoint to {}: {e}", path.display()))?;
    }
    // issue 23: AMQP (begin)
    if let Some(path) = &args.amqp_port_out {
        std::fs::write(path, format!("{}\n", emulator.amqp_endpoint()))
            .map_err(|e| format!("writing the AMQP endpoint to {}: {e}", path.display()))?;
    }
    // issue 23: AMQP (end)
    if let Some(path) = &args.connection_string_out {
        let Some(connection) = emulator.service_connection_string(None) else {
            return Err("--connection-string-out needs a [[service_policy]] in the configuration".into());
        };
        write_private(path, &format!("{}\n", connection.as_str()))
            .map_err(|e| format!("writing the connection string to {}: {e}", path.display()))?;
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", emulator.global_endpoint())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("writing to stdout: {e}"))?;
    drop(stdout);
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    emulator.shutdown();
    Ok(())
}

/// Write a file only its owner can read (it holds a key).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn issuing_ca(args: &Args) -> Result<Option<dps_emulator::IssuingCa>, String> {
    let (Some(cert), Some(key)) = (&args.issuing_ca, &args.issuing_ca_key) else {
        return Ok(None);
    };
    let read = |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()));
    Ok(Some(dps_emulator::IssuingCa {
        certificate_pem: read(cert)?,
        key_pem: zeroize::Zeroizing::new(read(key)?),
    }))
}
