//! The device transports and everything that differs between them, in one place: the name a command
//! line spells, the default port, the URL scheme and path, TLS, WebSocket, and which attestations,
//! proxies and calls each supports. Every property is an exhaustive `match`: a new variant does not
//! compile until each property says what it is for it (the plan: `docs/adding-a-transport.md`).
//!
//! The library reads these properties instead of matching on the variants; the only other match is the
//! dispatch to the connect module of each transport (`session.rs`).

use std::fmt;
use std::str::FromStr;

/// How the device talks to DPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// HTTPS, port 443 by default.
    Https,
    /// MQTT 3.1.1 over TLS, port 8883 by default. No TPM attestation (DPS accepts it over HTTPS and AMQP only).
    Mqtt,
    /// MQTT 3.1.1 over WebSockets over TLS (path `/$iothub/websocket`, subprotocol `mqtt`), port 443 by
    /// default. No TPM attestation.
    MqttWs,
    /// AMQP 1.0 over TLS, port 5671 by default (the C SDK's `prov_transport_amqp_client.c`: SASL PLAIN for
    /// a symmetric key, the TLS client certificate for x509, the SASL `TPM` mechanism for a TPM).
    Amqp,
    /// AMQP 1.0 over WebSockets over TLS (path `/$iothub/websocket`, subprotocol `AMQPWSB10`: the C SDK's
    /// `prov_transport_amqp_ws_client.c`), port 443 by default; the same authentication as [`Transport::Amqp`].
    AmqpWs,
}

impl Transport {
    /// Every transport, in the order tables and help texts list them.
    pub const ALL: [Transport; 5] = [
        Transport::Https,
        Transport::Mqtt,
        Transport::MqttWs,
        Transport::Amqp,
        Transport::AmqpWs,
    ];

    /// The name a command line or a configuration spells (`https`, `mqtt`, `mqtt-ws`); [`FromStr`]
    /// reads it back.
    pub const fn name(self) -> &'static str {
        match self {
            Transport::Https => "https",
            Transport::Mqtt => "mqtt",
            Transport::MqttWs => "mqtt-ws",
            Transport::Amqp => "amqp",
            Transport::AmqpWs => "amqp-ws",
        }
    }

    /// The name for people (messages, tables): `HTTPS`, `MQTT`, `MQTT over WebSockets`. Also what
    /// `Display` prints.
    pub const fn title(self) -> &'static str {
        match self {
            Transport::Https => "HTTPS",
            Transport::Mqtt => "MQTT",
            Transport::MqttWs => "MQTT over WebSockets",
            Transport::Amqp => "AMQP",
            Transport::AmqpWs => "AMQP over WebSockets",
        }
    }

    /// The port used when the endpoint names none.
    pub const fn default_port(self) -> u16 {
        match self {
            Transport::Https => 443,
            Transport::Mqtt => 8883,
            Transport::MqttWs => 443,
            Transport::Amqp => 5671,
            Transport::AmqpWs => 443,
        }
    }

    /// The URL scheme of the connection (`https`, `mqtts`, `wss`).
    pub const fn scheme(self) -> &'static str {
        match self {
            Transport::Https => "https",
            Transport::Mqtt => "mqtts",
            Transport::MqttWs => "wss",
            Transport::Amqp => "amqps",
            Transport::AmqpWs => "wss",
        }
    }

    /// The path the connection opens, when it opens one (the WebSocket upgrade); HTTPS requests have a
    /// path of their own per call.
    pub const fn path(self) -> Option<&'static str> {
        match self {
            Transport::Https | Transport::Mqtt | Transport::Amqp => None,
            Transport::MqttWs | Transport::AmqpWs => Some("/$iothub/websocket"),
        }
    }

    /// Whether the connection is TLS (every DPS transport is).
    pub const fn tls(self) -> bool {
        match self {
            Transport::Https | Transport::Mqtt | Transport::MqttWs | Transport::Amqp | Transport::AmqpWs => true,
        }
    }

    /// The WebSocket subprotocol, for a transport carried over WebSockets.
    pub const fn websocket(self) -> Option<&'static str> {
        match self {
            Transport::Https | Transport::Mqtt | Transport::Amqp => None,
            Transport::MqttWs => Some("mqtt"),
            Transport::AmqpWs => Some("AMQPWSB10"),
        }
    }

    /// Whether this client attests with a TPM over it, as DPS takes it: over HTTPS (the challenge is a
    /// 401 with the activation key) and over AMQP and AMQP-WS (the challenge inside the SASL `TPM`
    /// mechanism). DPS has no TPM over MQTT: there a TPM attestation is refused before connecting.
    pub const fn supports_tpm(self) -> bool {
        match self {
            Transport::Https | Transport::Amqp | Transport::AmqpWs => true,
            Transport::Mqtt | Transport::MqttWs => false,
        }
    }

    /// Whether an HTTP CONNECT proxy (`Options::proxy`) can carry it: HTTPS and the WebSocket
    /// transports, as in the C SDK; plain MQTT refuses a proxy before connecting.
    pub const fn supports_proxy(self) -> bool {
        match self {
            Transport::Https | Transport::MqttWs | Transport::AmqpWs => true,
            Transport::Mqtt | Transport::Amqp => false,
        }
    }

    /// Whether the device registration status lookup exists: DPS has it over HTTPS only.
    pub const fn supports_status_lookup(self) -> bool {
        match self {
            Transport::Https => true,
            Transport::Mqtt | Transport::MqttWs | Transport::Amqp | Transport::AmqpWs => false,
        }
    }

    /// Whether the service authenticates the device once, when it connects (a refusal is a refused
    /// connection), rather than on each request (a refusal is a service error of the request).
    pub const fn authenticates_at_connect(self) -> bool {
        match self {
            Transport::Https => false,
            Transport::Mqtt | Transport::MqttWs | Transport::Amqp | Transport::AmqpWs => true,
        }
    }

    /// The names of every transport, as a command line spells them, joined by `", "`.
    pub fn names() -> String {
        Transport::ALL.map(Transport::name).join(", ")
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

/// A transport name that is none of [`Transport::ALL`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown transport {given:?}: expected one of {}", Transport::names())]
pub struct UnknownTransport {
    /// What was given.
    pub given: String,
}

impl FromStr for Transport {
    type Err = UnknownTransport;

    /// A transport by its [`Transport::name`] (ASCII case ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Transport::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownTransport { given: s.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_are_distinct() {
        for t in Transport::ALL {
            assert_eq!(t.name().parse::<Transport>(), Ok(t));
            assert_eq!(t.name().to_uppercase().parse::<Transport>(), Ok(t));
            assert_eq!(t.to_string(), t.title());
        }
        let mut names = Transport::ALL.map(Transport::name).to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Transport::ALL.len());
        let e = "coap".parse::<Transport>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown transport \"coap\": expected one of https, mqtt, mqtt-ws, amqp, amqp-ws"
        );
    }

    #[test]
    fn the_websocket_transports_have_a_path_and_a_subprotocol() {
        for t in Transport::ALL {
            assert_eq!(t.websocket().is_some(), t.path().is_some(), "{t}");
            assert_eq!(t.websocket().is_some(), t.scheme() == "wss", "{t}");
            assert!(t.tls(), "{t}");
        }
    }
}
