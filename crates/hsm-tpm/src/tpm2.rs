//! TPM 2.0 constants (TPM 2.0 Part 2, "Structures") that this crate marshals by hand: the raw
//! HMAC-sequence commands (`raw`) and the service side of the attestation (`service`). One
//! place, so a value is written once.

/// TPM_ST: a command or response without sessions.
pub(crate) const TPM_ST_NO_SESSIONS: u16 = 0x8001;
/// TPM_ST: a command or response with sessions.
pub(crate) const TPM_ST_SESSIONS: u16 = 0x8002;

/// TPM_CC_HMAC_Start.
pub(crate) const TPM_CC_HMAC_START: u32 = 0x0000_015b;
/// TPM_CC_SequenceUpdate.
pub(crate) const TPM_CC_SEQUENCE_UPDATE: u32 = 0x0000_015c;
/// TPM_CC_SequenceComplete.
pub(crate) const TPM_CC_SEQUENCE_COMPLETE: u32 = 0x0000_013e;
/// TPM_CC_FlushContext.
pub(crate) const TPM_CC_FLUSH_CONTEXT: u32 = 0x0000_0165;

/// TPM_RS_PW: the password authorization session.
pub(crate) const TPM_RS_PW: u32 = 0x4000_0009;
/// TPM_RH_NULL: the null hierarchy.
pub(crate) const TPM_RH_NULL: u32 = 0x4000_0007;

/// TPM_ALG_RSA.
pub(crate) const TPM_ALG_RSA: u16 = 0x0001;
/// TPM_ALG_HMAC.
pub(crate) const TPM_ALG_HMAC: u16 = 0x0005;
/// TPM_ALG_AES.
pub(crate) const TPM_ALG_AES: u16 = 0x0006;
/// TPM_ALG_KEYEDHASH.
pub(crate) const TPM_ALG_KEYEDHASH: u16 = 0x0008;
/// TPM_ALG_SHA256.
pub(crate) const TPM_ALG_SHA256: u16 = 0x000b;
/// TPM_ALG_NULL.
pub(crate) const TPM_ALG_NULL: u16 = 0x0010;
/// TPM_ALG_CFB.
pub(crate) const TPM_ALG_CFB: u16 = 0x0043;
