//! `hsmctl provision` on the `dps-device` library: the transport option (parsed and explained from
//! `dps_device::Transport`'s own description), the mapping of the library's
//! typed errors to hsmctl's messages, the CAs trusted for the service, and terminal-safe printing of
//! what the service sent (an assignment among it).

use std::path::Path;

use dps_device::Transport;
use serde_json::Value;

use crate::CliError;

/// Text from the service is shown at most this many characters long.
const MAX_SHOWN: usize = 512;

/// `--transport`: the names of `dps_device::Transport::ALL`, each with its help made from the
/// transport's properties; clap lists them in `--help` and in the error for another name.
pub fn transport_parser() -> impl clap::builder::TypedValueParser<Value = Transport> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser as _};
    PossibleValuesParser::new(Transport::ALL.map(|t| PossibleValue::new(t.name()).help(transport_summary(t))))
        .try_map(|name| name.parse::<Transport>())
}

/// One transport in a line: title, stream, port, attestations, proxy.
fn transport_summary(t: Transport) -> String {
    let stream = match (t.websocket(), t.path()) {
        (Some(subprotocol), Some(path)) => format!(" ({}://...{path}, subprotocol {subprotocol})", t.scheme()),
        _ => String::new(),
    };
    let attestations = match t.supports_tpm() {
        true => "x509, symmetric key and TPM",
        false => "x509 and symmetric key",
    };
    let proxy = match t.supports_proxy() {
        true => "; --proxy",
        false => "",
    };
    format!(
        "{}{stream}, port {} unless the endpoint names one; {attestations}{proxy}",
        t.title(),
        t.default_port()
    )
}

/// The names of the transports with `property`, as a command line spells them: `https, mqtt-ws and amqp-ws`.
fn transports_with(property: fn(Transport) -> bool) -> String {
    let names: Vec<&str> = Transport::ALL
        .into_iter()
        .filter(|t| property(*t))
        .map(Transport::name)
        .collect();
    match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The help of `--transport`.
pub fn transport_help() -> String {
    format!(
        "How to talk to DPS. TPM attestation over {} only (DPS has no TPM over MQTT; over AMQP it is the SASL TPM mechanism)",
        transports_with(Transport::supports_tpm)
    )
}

/// The help of `--global-endpoint`: the default port of each transport.
pub fn endpoint_help() -> String {
    let ports: Vec<String> = Transport::ALL
        .into_iter()
        .map(|t| format!("{} ({})", t.default_port(), t.name()))
        .collect();
    format!(
        "DPS endpoint, host[:port], for the chosen transport: the port defaults to {}",
        ports.join(", ")
    )
}

/// The help of `--proxy`: the transports a proxy can carry.
pub fn proxy_help() -> String {
    format!(
        "An HTTP proxy reached with CONNECT, `http://[user:password@]host[:port]` ({} only, as in the C SDK)",
        transports_with(Transport::supports_proxy)
    )
}

/// hsmctl's message for a failed registration; `timeout` is the `--timeout` given. Server text was
/// sanitized by the library and is passed through [`shown`] again (length bound, escapes).
pub fn cli_error(e: dps_device::Error, timeout: u64) -> CliError {
    use dps_device::Error as E;
    match e {
        E::InvalidRequest(m) => CliError::Usage(m),
        E::Identity(e) => CliError::Core(e),
        E::Service(s) => CliError::Service {
            transport: s.transport.to_string(),
            status: s.status,
            error_code: s.error_code,
            tracking_id: s.tracking_id.as_deref().map(shown),
            message: shown(&s.message),
        },
        E::Transport { .. } | E::Tls { .. } | E::ConnectionRefused { .. } => CliError::Transport(shown(&e.to_string())),
        E::Timeout { detail, .. } => CliError::Protocol(format!(
            "provisioning did not finish within {timeout}s (--timeout): {}",
            shown(&detail)
        )),
        E::NotAssigned {
            status,
            error_code,
            message,
        } => CliError::Protocol(format!(
            "registration ended with status {}: {}{}",
            shown(status.as_str()),
            shown(&message),
            error_code.map(|c| format!(" (errorCode {c})")).unwrap_or_default()
        )),
        other => CliError::Protocol(shown(&other.to_string())),
    }
}

/// Text from the service made safe for a terminal: control characters (escape sequences, C1 controls,
/// bidirectional overrides) shown as `\u{..}` escapes, at most [`MAX_SHOWN`] characters.
pub(crate) fn shown(text: &str) -> String {
    let mut out = String::new();
    for (count, c) in text.chars().enumerate() {
        if count == MAX_SHOWN {
            out.push_str(&format!("... ({} more characters)", text.chars().count() - MAX_SHOWN));
            break;
        }
        if c.is_control() || is_bidi_control(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// Pretty JSON whose strings hold no character a terminal acts on: serde_json escapes C0 controls, this
/// escapes the rest (DEL, C1 controls, bidirectional overrides) the same JSON way. The result parses to the
/// same value.
pub(crate) fn json_for_terminal(value: &Value) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c != '\n' && (c.is_control() || is_bidi_control(c)) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The CAs trusted for the service: a PEM file, or the Mozilla root store.
pub fn trusted_roots(path: Option<&Path>) -> Result<rustls::RootCertStore, CliError> {
    Ok(match path {
        Some(p) => tlsio_bridge::roots_from_pem(
            &format!("trusted CA {}", p.display()),
            &hsm_core::pem::read_file("read trusted CA", p)?,
        )?,
        None => rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    })
}

/// Print an assignment: the registration state as JSON, or its main fields.
pub fn report(result: &dps_device::Assignment, json: bool) {
    // Everything here comes from the service: made safe for a terminal.
    if json {
        outln!(
            "{}",
            json_for_terminal(&serde_json::to_value(&result.state).unwrap_or_default())
        );
    } else {
        outln!("registration id: {}", shown(&result.registration_id));
        outln!("status: {}", shown(result.status.as_str()));
        outln!("assigned hub: {}", shown(&result.assigned_hub));
        outln!("device id: {}", shown(&result.device_id));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_transport_option_is_made_from_the_library_s_table() {
        let cmd = clap::Command::new("t").arg(clap::Arg::new("t").long("transport").value_parser(transport_parser()));
        for t in Transport::ALL {
            let m = cmd
                .clone()
                .try_get_matches_from(["t", "--transport", t.name()])
                .unwrap();
            assert_eq!(m.get_one::<Transport>("t"), Some(&t));
        }
        let e = cmd
            .clone()
            .try_get_matches_from(["t", "--transport", "coap"])
            .unwrap_err()
            .to_string();
        for t in Transport::ALL {
            assert!(e.contains(t.name()), "{e}");
        }
        assert!(transport_summary(Transport::MqttWs).contains("/$iothub/websocket"));
        assert!(!transport_summary(Transport::Mqtt).contains("--proxy"));
        assert!(
            transport_help().contains("https, amqp and amqp-ws only"),
            "{}",
            transport_help()
        );
        assert!(endpoint_help().contains("8883 (mqtt)"), "{}", endpoint_help());
        assert!(
            proxy_help().contains("https, mqtt-ws and amqp-ws only"),
            "{}",
            proxy_help()
        );
    }

    #[test]
    fn shown_escapes_controls_and_truncates() {
        assert_eq!(
            shown("hub\u{1b}[31m\u{9b}2J\u{202e}x\n"),
            "hub\\u{1b}[31m\\u{9b}2J\\u{202e}x\\u{a}"
        );
        let long = "a".repeat(2000);
        let s = shown(&long);
        assert!(s.starts_with(&"a".repeat(MAX_SHOWN)));
        assert!(s.ends_with("... (1488 more characters)"), "{s}");
        assert_eq!(shown("plain text, é"), "plain text, é");
    }

    #[test]
    fn json_for_terminal_escapes_and_round_trips() {
        let value = json!({"assignedHub": "a\u{1b}]0;x\u{7}\u{9b}2J\u{202e}b"});
        let text = json_for_terminal(&value);
        assert!(
            !text
                .chars()
                .any(|c| c != '\n' && (c.is_control() || is_bidi_control(c))),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
    }
}
