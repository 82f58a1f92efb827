//! [`Session`]: the connection of whichever transport the client uses, and the only place outside
//! `transport.rs` that matches on the transports: [`Session::open`] picks the connect module
//! (`https.rs`, `mqtt/`, `amqp/`), and the [`Connection`] calls go to it.

use tokio::time::Instant;

use crate::session::{Call, Connect, Connection};
use crate::{Error, Reply, Transport, amqp, https, mqtt};

/// A connection of whichever transport the client uses.
pub(crate) enum Session {
    Https(https::Https),
    Mqtt(Box<mqtt::Mqtt>),
    Amqp(Box<amqp::Amqp>),
}

impl Session {
    /// Connect with the connect module of `c.transport`.
    pub(crate) async fn open(c: Connect<'_>) -> Result<Session, Error> {
        Ok(match c.transport {
            Transport::Https => Session::Https(https::Https::connect(&c)?),
            Transport::Mqtt | Transport::MqttWs => Session::Mqtt(Box::new(mqtt::Mqtt::connect(&c).await?)),
            Transport::Amqp | Transport::AmqpWs => Session::Amqp(Box::new(amqp::Amqp::connect(&c).await?)),
        })
    }
}

impl Session {
    /// The SAS token of a TPM attestation made while connecting (AMQP's SASL `TPM`).
    pub(crate) fn tpm_token(&self) -> Option<&str> {
        match self {
            Session::Amqp(a) => a.tpm_token(),
            Session::Https(_) | Session::Mqtt(_) => None,
        }
    }
}

impl Connection for Session {
    async fn call(&mut self, call: Call<'_>, auth: Option<&str>, deadline: Instant) -> Result<Reply, Error> {
        match self {
            Session::Https(h) => h.call(call, auth, deadline).await,
            Session::Mqtt(m) => m.call(call, auth, deadline).await,
            Session::Amqp(a) => a.call(call, auth, deadline).await,
        }
    }

    async fn close(self, deadline: Instant) -> Result<(), Error> {
        match self {
            Session::Https(h) => h.close(deadline).await,
            Session::Mqtt(m) => m.close(deadline).await,
            Session::Amqp(a) => a.close(deadline).await,
        }
    }
}
