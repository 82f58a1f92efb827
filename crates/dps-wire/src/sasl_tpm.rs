//! The SASL `TPM` mechanism of DPS over AMQP: TPM attestation inside the SASL exchange (over HTTPS the
//! same challenge is a `401`). The bytes of each SASL frame's `initial-response`, `challenge` and
//! `response`, as the C SDK (`prov_sasl_tpm.c`) and the Node SDK (`azure-iot-provisioning-device-amqp`,
//! `sasl_tpm.ts`) frame them:
//!
//! 1. device, `sasl-init` with mechanism `TPM`: a control byte `0x00`, the id scope, `NUL`, the
//!    registration id, `NUL`, the endorsement key (`TPM2B_PUBLIC`);
//! 2. service, `sasl-challenge`: one byte without the segment bit (`0x00`): send the storage root key;
//! 3. device, `sasl-response`: `0x00` then the storage root key (`TPM2B_PUBLIC`);
//! 4. service, `sasl-challenge`s: the activation blob (the bytes of HTTPS's base64 `authenticationKey`)
//!    in segments, each a control byte `0x80 | sequence` (`| 0x40` on the last) then its bytes; the
//!    sequence counts the segments from 0 in the low two bits (the C SDK checks it), so at most
//!    [`MAX_SEGMENTS`];
//! 5. device, `sasl-response` to each segment but the last: the single byte `0x00`; to the last (its key
//!    activated in the TPM): `0x00` then the SAS token signed with that key;
//! 6. service, `sasl-outcome`: `ok` when the token verifies.
//!
//! An AMQP SASL frame may be as small as 512 bytes, so the service cuts the blob into segments of
//! [`MAX_SEGMENT`] bytes and the device's frames stay within [`MAX_FRAME_DATA`] (the C SDK's
//! `MAX_FRAME_DATA_LEN`). Every parser here is bounded by its input: nothing is allocated beyond it.

/// The SASL mechanism name.
pub const MECHANISM: &str = "TPM";
/// The most bytes of an init, a response, or a challenge: the C SDK's `MAX_FRAME_DATA_LEN` (470) and the
/// control byte, which keeps each SASL frame under AMQP's 512-byte minimum frame size.
pub const MAX_FRAME_DATA: usize = 471;
/// The bytes of the activation blob a service puts in one challenge segment.
pub const MAX_SEGMENT: usize = 400;
/// The most segments of an activation blob: the sequence is two bits.
pub const MAX_SEGMENTS: usize = 4;
/// The service's first challenge: the storage root key, please.
pub const SRK_REQUEST: [u8; 1] = [0x00];
/// The device's answer to a segment that is not the last.
pub const SEGMENT_ACK: [u8; 1] = [0x00];

const SEGMENT_BIT: u8 = 0x80;
const LAST_BIT: u8 = 0x40;
const SEQUENCE_BITS: u8 = 0x03;

/// Why bytes of the SASL `TPM` exchange were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslTpmError {
    /// The frame is empty (it has no control byte).
    #[error("the SASL TPM {0} is empty")]
    Empty(&'static str),
    /// The control byte is not the one this step takes.
    #[error("the SASL TPM {what} starts with control byte {byte:#04x}, not 0x00")]
    Control {
        /// Which frame.
        what: &'static str,
        /// The control byte received.
        byte: u8,
    },
    /// A field of the init is missing its `NUL` or is not UTF-8.
    #[error("the SASL TPM init has no {0} ended by NUL (UTF-8)")]
    Field(&'static str),
    /// A field is empty or holds a character it may not.
    #[error("the SASL TPM {0} is empty or has a NUL")]
    BadValue(&'static str),
    /// The frame is larger than one SASL frame may carry.
    #[error("the SASL TPM {what} has {len} bytes: more than the {MAX_FRAME_DATA} of one frame")]
    TooLarge {
        /// Which frame.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// The SAS token of the final response is not UTF-8.
    #[error("the SASL TPM token is not UTF-8")]
    TokenNotUtf8,
    /// A challenge segment out of sequence.
    #[error("SASL TPM challenge segment {got} came where segment {expected} was due")]
    Sequence {
        /// The sequence number due.
        expected: u8,
        /// The one received.
        got: u8,
    },
    /// More segments than the two-bit sequence can count, or a blob too large for them.
    #[error("the SASL TPM activation blob takes more than {MAX_SEGMENTS} segments")]
    TooManySegments,
}

/// The device's `sasl-init` bytes: who it is and its endorsement key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmInit<'a> {
    /// The DPS id scope.
    pub id_scope: &'a str,
    /// The registration id.
    pub registration_id: &'a str,
    /// The endorsement key, a marshalled `TPM2B_PUBLIC`.
    pub endorsement_key: &'a [u8],
}

impl<'a> TpmInit<'a> {
    /// The init bytes: `0x00`, scope, `NUL`, registration id, `NUL`, EK; refused when a name is empty or
    /// has a `NUL`, the EK is empty, or it all exceeds one frame.
    pub fn encode(&self) -> Result<Vec<u8>, SaslTpmError> {
        check_name("id scope", self.id_scope)?;
        check_name("registration id", self.registration_id)?;
        if self.endorsement_key.is_empty() {
            return Err(SaslTpmError::BadValue("endorsement key"));
        }
        let len = 3 + self.id_scope.len() + self.registration_id.len() + self.endorsement_key.len();
        if len > MAX_FRAME_DATA {
            return Err(SaslTpmError::TooLarge { what: "init", len });
        }
        let mut out = Vec::with_capacity(len);
        out.push(0x00);
        out.extend_from_slice(self.id_scope.as_bytes());
        out.push(0);
        out.extend_from_slice(self.registration_id.as_bytes());
        out.push(0);
        out.extend_from_slice(self.endorsement_key);
        Ok(out)
    }

    /// Read init bytes (a single frame: the C SDK's segmented init, for an EK and names over one
    /// frame, is refused).
    pub fn decode(bytes: &'a [u8]) -> Result<Self, SaslTpmError> {
        let rest = body("init", bytes)?;
        let (id_scope, rest) = field("id scope", rest)?;
        let (registration_id, endorsement_key) = field("registration id", rest)?;
        check_name("id scope", id_scope)?;
        check_name("registration id", registration_id)?;
        if endorsement_key.is_empty() {
            return Err(SaslTpmError::BadValue("endorsement key"));
        }
        Ok(TpmInit {
            id_scope,
            registration_id,
            endorsement_key,
        })
    }
}

/// The device's response with its storage root key: `0x00` then the key.
pub fn encode_storage_root_key(srk: &[u8]) -> Result<Vec<u8>, SaslTpmError> {
    if srk.is_empty() {
        return Err(SaslTpmError::BadValue("storage root key"));
    }
    prefixed("storage root key response", srk)
}

/// Read the storage root key response.
pub fn decode_storage_root_key(bytes: &[u8]) -> Result<&[u8], SaslTpmError> {
    let srk = body("storage root key response", bytes)?;
    if srk.is_empty() {
        return Err(SaslTpmError::BadValue("storage root key"));
    }
    Ok(srk)
}

/// The device's final response: `0x00` then the SAS token.
pub fn encode_token(token: &str) -> Result<Vec<u8>, SaslTpmError> {
    if token.is_empty() {
        return Err(SaslTpmError::BadValue("SAS token"));
    }
    prefixed("token response", token.as_bytes())
}

/// Read the final response's SAS token.
pub fn decode_token(bytes: &[u8]) -> Result<&str, SaslTpmError> {
    let token = body("token response", bytes)?;
    if token.is_empty() || token.contains(&0) {
        return Err(SaslTpmError::BadValue("SAS token"));
    }
    std::str::from_utf8(token).map_err(|_| SaslTpmError::TokenNotUtf8)
}

/// Whether `bytes` is the device's acknowledgement of a segment ([`SEGMENT_ACK`]).
pub fn is_segment_ack(bytes: &[u8]) -> bool {
    bytes == SEGMENT_ACK
}

/// The service's challenges carrying `blob`, in order.
pub fn challenge_segments(blob: &[u8]) -> Result<Vec<Vec<u8>>, SaslTpmError> {
    if blob.is_empty() {
        return Err(SaslTpmError::BadValue("activation blob"));
    }
    let count = blob.len().div_ceil(MAX_SEGMENT);
    if count > MAX_SEGMENTS {
        return Err(SaslTpmError::TooManySegments);
    }
    Ok(blob
        .chunks(MAX_SEGMENT)
        .enumerate()
        .map(|(i, chunk)| {
            // `i < MAX_SEGMENTS`: the cast keeps the two bits.
            let mut control = SEGMENT_BIT | (i as u8 & SEQUENCE_BITS);
            if i + 1 == count {
                control |= LAST_BIT;
            }
            let mut segment = Vec::with_capacity(chunk.len() + 1);
            segment.push(control);
            segment.extend_from_slice(chunk);
            segment
        })
        .collect())
}

/// A service challenge as the device reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge<'a> {
    /// Send the storage root key (a control byte without the segment bit).
    StorageRootKey,
    /// A segment of the activation blob.
    Segment {
        /// The sequence number (two bits).
        sequence: u8,
        /// Whether it is the last.
        last: bool,
        /// Its bytes.
        data: &'a [u8],
    },
}

impl<'a> Challenge<'a> {
    /// Read a challenge.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, SaslTpmError> {
        let (&control, data) = bytes.split_first().ok_or(SaslTpmError::Empty("challenge"))?;
        if bytes.len() > MAX_FRAME_DATA {
            return Err(SaslTpmError::TooLarge {
                what: "challenge",
                len: bytes.len(),
            });
        }
        if control & SEGMENT_BIT == 0 {
            return Ok(Challenge::StorageRootKey);
        }
        Ok(Challenge::Segment {
            sequence: control & SEQUENCE_BITS,
            last: control & LAST_BIT != 0,
            data,
        })
    }
}

/// The device's assembly of the activation blob from its segments, in sequence, at most
/// [`MAX_SEGMENTS`] of them.
#[derive(Debug, Default)]
pub struct BlobAssembler {
    blob: Vec<u8>,
    segments: usize,
}

impl BlobAssembler {
    /// Take one segment: `Some(blob)` after the last one, `None` while more are due.
    pub fn push(&mut self, sequence: u8, last: bool, data: &[u8]) -> Result<Option<Vec<u8>>, SaslTpmError> {
        if self.segments >= MAX_SEGMENTS {
            return Err(SaslTpmError::TooManySegments);
        }
        // `segments < MAX_SEGMENTS`: the cast keeps the two bits.
        let expected = self.segments as u8 & SEQUENCE_BITS;
        if sequence != expected {
            return Err(SaslTpmError::Sequence {
                expected,
                got: sequence,
            });
        }
        self.segments += 1;
        self.blob.extend_from_slice(data);
        Ok(last.then(|| std::mem::take(&mut self.blob)))
    }
}

fn check_name(what: &'static str, value: &str) -> Result<(), SaslTpmError> {
    match value.is_empty() || value.contains('\0') {
        true => Err(SaslTpmError::BadValue(what)),
        false => Ok(()),
    }
}

fn prefixed(what: &'static str, data: &[u8]) -> Result<Vec<u8>, SaslTpmError> {
    let len = data.len() + 1;
    if len > MAX_FRAME_DATA {
        return Err(SaslTpmError::TooLarge { what, len });
    }
    let mut out = Vec::with_capacity(len);
    out.push(0x00);
    out.extend_from_slice(data);
    Ok(out)
}

/// The bytes after a `0x00` control byte, within one frame.
fn body<'a>(what: &'static str, bytes: &'a [u8]) -> Result<&'a [u8], SaslTpmError> {
    let (&control, rest) = bytes.split_first().ok_or(SaslTpmError::Empty(what))?;
    if control != 0x00 {
        return Err(SaslTpmError::Control { what, byte: control });
    }
    if bytes.len() > MAX_FRAME_DATA {
        return Err(SaslTpmError::TooLarge { what, len: bytes.len() });
    }
    Ok(rest)
}

/// A UTF-8 field ended by `NUL`, and what follows it.
fn field<'a>(what: &'static str, bytes: &'a [u8]) -> Result<(&'a str, &'a [u8]), SaslTpmError> {
    let end = bytes.iter().position(|b| *b == 0).ok_or(SaslTpmError::Field(what))?;
    let value = std::str::from_utf8(&bytes[..end]).map_err(|_| SaslTpmError::Field(what))?;
    Ok((value, &bytes[end + 1..]))
}

#[cfg(test)]
#[path = "sasl_tpm_tests.rs"]
mod tests;
