//! TPM attestation over AMQP: the SDKs' SASL mechanism `TPM` (framing in `dps_wire::sasl_tpm`), run by
//! this module on the stream before fe2o3-amqp opens the connection on it.
//!
//! fe2o3's client takes only its own SASL profiles (ANONYMOUS, PLAIN, SCRAM), with no hook for another
//! mechanism; so the exchange is ours, with fe2o3's own SASL frame codec (`frames::sasl::Frame` over its
//! `Transport`, the AMQP types encoded by serde_amqp): the SASL protocol header, `sasl-mechanisms`, the
//! init with the EK, the SRK on the first challenge, the activation blob's segments acknowledged one by
//! one, its key activated in the TPM and the SAS token signed with it as the last response, `sasl-outcome`.
//! The stream then goes back to fe2o3 for the AMQP header and `open`, as after its own SASL.
//!
//! Bounded: frames over AMQP's 512-byte SASL minimum are refused by the codec, the SRK is sent once, at
//! most `dps_wire::sasl_tpm::MAX_SEGMENTS` segments are taken, and the caller's deadline covers a
//! service that stops answering.

use fe2o3_amqp::frames::sasl::Frame;
use fe2o3_amqp::transport::Transport as AmqpTransport;
use fe2o3_amqp::types::primitives::{Binary, Symbol};
use fe2o3_amqp::types::sasl::{SaslCode, SaslInit, SaslResponse};
use futures_util::{SinkExt as _, StreamExt as _};
use ws_stream::Prefixed;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use dps_wire::sasl_tpm::{self, BlobAssembler, Challenge, TpmInit};

use super::websocket::{io_error, transport_error};
use crate::error::protocol;
use crate::{Error, ProvisioningClient, SharedTpm, Transport, with_tpm};

/// The SASL protocol header: `AMQP` 3 1 0 0.
const SASL_HEADER: [u8; 8] = *b"AMQP\x03\x01\x00\x00";
/// AMQP's minimum max-frame-size, the bound of every SASL frame.
const SASL_FRAME: usize = 512;

/// What the `TPM` mechanism needs: the TPM (its keys, the activation, the token signature) and the
/// client (the token's audience and expiry).
pub(crate) struct TpmSasl<'a> {
    pub(crate) tpm: &'a SharedTpm,
    pub(crate) client: &'a ProvisioningClient,
    pub(crate) endorsement_key: &'a [u8],
    pub(crate) storage_root_key: &'a [u8],
}

/// Run the SASL `TPM` exchange on `stream`; the stream (ready for the AMQP header, with what the server
/// already sent after its outcome: it may send its AMQP header at once) and the SAS token the service
/// admitted.
pub(crate) async fn authenticate<S>(
    t: Transport,
    mut stream: S,
    login: &TpmSasl<'_>,
    id_scope: &str,
    registration_id: &str,
) -> Result<(Prefixed<S>, String), Error>
where
    S: AsyncRead + AsyncWrite + std::fmt::Debug + Unpin,
{
    // Flushed: a WebSocket stream sends a message only then.
    let sent = async {
        stream.write_all(&SASL_HEADER).await?;
        stream.flush().await
    };
    sent.await
        .map_err(|e| io_error(t, "sending the SASL protocol header", e))?;
    let mut header = [0u8; 8];
    stream
        .read_exact(&mut header)
        .await
        .map_err(|e| io_error(t, "reading the SASL protocol header", e))?;
    if header != SASL_HEADER {
        return Err(protocol(
            t,
            format!("the server answered the SASL protocol header with {header:02x?}"),
        ));
    }
    let mut frames = AmqpTransport::<S, Frame>::bind(stream, SASL_FRAME, None);
    let token = exchange(t, &mut frames, login, id_scope, registration_id).await?;
    let (write, read) = frames.into_framed_codec();
    let early = read.read_buffer().to_vec();
    Ok((
        Prefixed::new(early, read.into_inner().unsplit(write.into_inner())),
        token,
    ))
}

async fn exchange<S>(
    t: Transport,
    frames: &mut AmqpTransport<S, Frame>,
    login: &TpmSasl<'_>,
    id_scope: &str,
    registration_id: &str,
) -> Result<String, Error>
where
    S: AsyncRead + AsyncWrite + std::fmt::Debug + Unpin,
{
    let Frame::Mechanisms(offered) = next(t, frames).await? else {
        return Err(protocol(t, "the server's first SASL frame is not sasl-mechanisms"));
    };
    if !offered
        .sasl_server_mechanisms
        .iter()
        .any(|m| m.as_str() == sasl_tpm::MECHANISM)
    {
        return Err(Error::transport(
            t,
            "the server does not offer the SASL TPM mechanism (TPM attestation over AMQP)",
        ));
    }
    let init = TpmInit {
        id_scope,
        registration_id,
        endorsement_key: login.endorsement_key,
    }
    .encode()
    .map_err(|e| Error::InvalidRequest(e.to_string()))?;
    send(
        t,
        frames,
        Frame::Init(SaslInit {
            mechanism: Symbol::from(sasl_tpm::MECHANISM),
            initial_response: Some(Binary::from(init)),
            hostname: None,
        }),
    )
    .await?;
    let mut srk_sent = false;
    let mut blob = BlobAssembler::default();
    let mut token: Option<String> = None;
    loop {
        let challenge = match next(t, frames).await? {
            Frame::Challenge(c) => c.challenge,
            Frame::Outcome(outcome) => {
                return match (outcome.code, token) {
                    (SaslCode::Ok, Some(token)) => Ok(token),
                    (SaslCode::Ok, None) => Err(protocol(t, "SASL TPM outcome ok before the activation")),
                    (code, _) => Err(super::refusal::sasl_refused(t, &code, "the TPM attestation", None)),
                };
            }
            _ => return Err(protocol(t, "a SASL frame other than a challenge or the outcome")),
        };
        if token.is_some() {
            return Err(protocol(t, "a SASL TPM challenge after the SAS token"));
        }
        let bad = |e: sasl_tpm::SaslTpmError| protocol(t, e.to_string());
        let response = match Challenge::decode(&challenge).map_err(bad)? {
            Challenge::StorageRootKey if !srk_sent => {
                srk_sent = true;
                sasl_tpm::encode_storage_root_key(login.storage_root_key).map_err(bad)?
            }
            Challenge::StorageRootKey => return Err(protocol(t, "the SASL TPM challenge asked for the SRK twice")),
            Challenge::Segment { .. } if !srk_sent => {
                return Err(protocol(t, "a SASL TPM blob segment before the SRK was asked for"));
            }
            Challenge::Segment { sequence, last, data } => match blob.push(sequence, last, data).map_err(bad)? {
                None => sasl_tpm::SEGMENT_ACK.to_vec(),
                Some(key) => {
                    with_tpm(login.tpm, move |tpm| tpm.activate_identity_key(&key)).await?;
                    let signed = login.client.tpm_token(registration_id, login.tpm).await?;
                    let response = sasl_tpm::encode_token(&signed).map_err(bad)?;
                    token = Some(signed);
                    response
                }
            },
        };
        send(
            t,
            frames,
            Frame::Response(SaslResponse {
                response: Binary::from(response),
            }),
        )
        .await?;
    }
}

async fn next<S>(t: Transport, frames: &mut AmqpTransport<S, Frame>) -> Result<Frame, Error>
where
    S: AsyncRead + AsyncWrite + std::fmt::Debug + Unpin,
{
    match frames.next().await {
        Some(Ok(frame)) => Ok(frame),
        Some(Err(e)) => Err(transport_error(t, "reading a SASL frame", e)),
        None => Err(Error::transport(t, "the server closed the connection during SASL")),
    }
}

async fn send<S>(t: Transport, frames: &mut AmqpTransport<S, Frame>, frame: Frame) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + std::fmt::Debug + Unpin,
{
    frames
        .send(frame)
        .await
        .map_err(|e| transport_error(t, "sending a SASL frame", e))
}
