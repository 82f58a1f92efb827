//! `hsmctl provision` on the `dps-device` library: the transport option, the mapping of the library's
//! typed errors to hsmctl's messages, and terminal-safe printing of what the service sent.

use serde_json::Value;

use crate::CliError;

/// Text from the service is shown at most this many characters long.
const MAX_SHOWN: usize = 512;

/// `--transport`: each value is one `dps_device::Transport`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum TransportArg {
    /// HTTPS (port 443 unless the endpoint names one); every attestation.
    Https,
    /// MQTT 3.1.1 over TLS (port 8883 unless the endpoint names one); x509 and symmetric key.
    Mqtt,
    /// MQTT over WebSockets (port 443 unless the endpoint names one, path `/$iothub/websocket`);
    /// x509 and symmetric key.
    MqttWs,
    /// AMQP 1.0 over TLS (port 5671 unless the endpoint names one); x509 and symmetric key. (issue 23)
    Amqp,
    /// AMQP over WebSockets (port 443 unless the endpoint names one, path `/$iothub/websocket`,
    /// subprotocol `AMQPWSB10`); x509 and symmetric key. (issue 23)
    AmqpWs,
}

impl From<TransportArg> for dps_device::Transport {
    fn from(t: TransportArg) -> Self {
        match t {
            TransportArg::Https => dps_device::Transport::Https,
            TransportArg::Mqtt => dps_device::Transport::Mqtt,
            TransportArg::MqttWs => dps_device::Transport::MqttWs,
            TransportArg::Amqp => dps_device::Transport::Amqp, // issue 23
            TransportArg::AmqpWs => dps_device::Transport::AmqpWs, // issue 23
        }
    }
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
            shown(&format!("{status:?}")),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

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
