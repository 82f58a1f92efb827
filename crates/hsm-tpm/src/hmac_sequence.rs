//! HMAC sequences (TPM2_HMAC_Start / SequenceUpdate / SequenceComplete) as raw TPM commands.
//!
//! tss-esapi 7 does not wrap the sequence commands, so inputs larger than TPM_PT_INPUT_BUFFER
//! are sent here, marshalled by hand, over the same transport the TCTI names: `swtpm` (raw
//! commands on TCP) or `device` (a character device). The ESAPI context is closed meanwhile
//! (the caller holds the connection lock), because swtpm and /dev/tpm0 serve one client.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use hsm_core::{Error, Origin, Result};

use crate::tpm2::{
    TPM_ALG_SHA256, TPM_CC_FLUSH_CONTEXT, TPM_CC_HMAC_START, TPM_CC_SEQUENCE_COMPLETE, TPM_CC_SEQUENCE_UPDATE,
    TPM_RH_NULL, TPM_RS_PW, TPM_ST_NO_SESSIONS, TPM_ST_SESSIONS,
};

const MAX_RESPONSE: usize = 4096;

enum Transport {
    Tcp(TcpStream),
    Device(std::fs::File),
}

fn io_error(op: &str, e: impl std::fmt::Display) -> Error {
    // Reported in the TCTI layer (TSS2_TCTI_RC_IO_ERROR) like the TCTIs do.
    Error::Device {
        origin: Origin::Tpm,
        op: op.to_string(),
        rv: 0x000a_000a,
        message: e.to_string(),
    }
}

fn tcti_options(conf: &str) -> (&str, &str) {
    conf.split_once(':').unwrap_or((conf, ""))
}

impl Transport {
    fn open(tcti: &str) -> Result<Self> {
        let (name, conf) = tcti_options(tcti.trim());
        match name {
            "swtpm" => {
                let mut host = "localhost";
                let mut port = "2321";
                for kv in conf.split(',').filter(|s| !s.is_empty()) {
                    match kv.split_once('=') {
                        Some(("host", v)) => host = v,
                        Some(("port", v)) => port = v,
                        _ => {
                            return Err(Error::unsupported(
                                format!("the raw TPM transport for `{tcti}`"),
                                format!("TCTI option `{kv}` (host= and port= are understood)"),
                            ));
                        }
                    }
                }
                let port: u16 = port
                    .parse()
                    .map_err(|e| Error::invalid("tcti", format!("port `{port}`: {e}")))?;
                let addr = (host, port)
                    .to_socket_addrs()
                    .map_err(|e| io_error(&format!("resolve {host}:{port}"), e))?
                    .next()
                    .ok_or_else(|| io_error("resolve", format!("{host}:{port} has no address")))?;
                let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                    .map_err(|e| io_error(&format!("connect to the TPM at {addr}"), e))?;
                stream
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .and_then(|_| stream.set_nodelay(true))
                    .map_err(|e| io_error("configure the TPM socket", e))?;
                Ok(Transport::Tcp(stream))
            }
            "device" => {
                let path = if conf.is_empty() { "/dev/tpmrm0" } else { conf };
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .map_err(|e| io_error(&format!("open {path}"), e))?;
                Ok(Transport::Device(file))
            }
            other => Err(Error::unsupported(
                format!("TCTI `{other}`"),
                "HMAC of inputs larger than the TPM input buffer (use the swtpm or device TCTI)",
            )),
        }
    }

    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>> {
        match self {
            Transport::Tcp(s) => {
                s.write_all(command).map_err(|e| io_error("send a TPM command", e))?;
                let mut header = [0u8; 10];
                s.read_exact(&mut header)
                    .map_err(|e| io_error("read a TPM response", e))?;
                let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
                if !(10..=MAX_RESPONSE).contains(&size) {
                    return Err(io_error("read a TPM response", format!("bad response size {size}")));
                }
                let mut out = header.to_vec();
                out.resize(size, 0);
                s.read_exact(&mut out[10..])
                    .map_err(|e| io_error("read a TPM response", e))?;
                Ok(out)
            }
            Transport::Device(f) => {
                f.write_all(command).map_err(|e| io_error("send a TPM command", e))?;
                let mut out = vec![0u8; MAX_RESPONSE];
                let n = f.read(&mut out).map_err(|e| io_error("read a TPM response", e))?;
                out.truncate(n);
                Ok(out)
            }
        }
    }

    /// Send a command; returns the bytes after the 10-byte header. Retries RETRY/YIELDED/TESTING.
    fn command(&mut self, op: &str, command: &[u8]) -> Result<Vec<u8>> {
        let mut attempt = 0u64;
        loop {
            let response = self.transmit(command)?;
            if response.len() < 10 {
                return Err(io_error(op, format!("response of {} bytes", response.len())));
            }
            let rc = u32::from_be_bytes([response[6], response[7], response[8], response[9]]);
            if rc == 0 {
                return Ok(response[10..].to_vec());
            }
            if crate::error::is_retryable(rc) && attempt < 20 {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(attempt * 5));
                continue;
            }
            return Err(Error::Device {
                origin: Origin::Tpm,
                op: op.to_string(),
                rv: u64::from(rc),
                message: format!("the TPM answered 0x{rc:x}"),
            });
        }
    }
}

fn build(tag: u16, cc: u32, handle: u32, with_auth: bool, params: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(32 + params.len());
    c.extend_from_slice(&tag.to_be_bytes());
    c.extend_from_slice(&[0; 4]);
    c.extend_from_slice(&cc.to_be_bytes());
    c.extend_from_slice(&handle.to_be_bytes());
    if with_auth {
        // One password session with an empty password: handle, nonce (empty), attributes
        // (continueSession), hmac (empty).
        c.extend_from_slice(&9u32.to_be_bytes());
        c.extend_from_slice(&TPM_RS_PW.to_be_bytes());
        c.extend_from_slice(&0u16.to_be_bytes());
        c.push(0x01);
        c.extend_from_slice(&0u16.to_be_bytes());
    }
    c.extend_from_slice(params);
    let size = (c.len() as u32).to_be_bytes();
    c[2..6].copy_from_slice(&size);
    c
}

fn tpm2b(data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(2 + data.len());
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// HMAC-SHA256 of `data` with the key persisted at `key_handle`, in `chunk`-byte pieces.
pub(crate) fn hmac_sha256_sequence(tcti: &str, key_handle: u32, data: &[u8], chunk: usize) -> Result<Vec<u8>> {
    let chunk = chunk.clamp(1, 1024);
    let mut t = Transport::open(tcti)?;
    let mut params = tpm2b(&[]);
    params.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    let r = t.command(
        "TPM2_HMAC_Start with the identity key",
        &build(TPM_ST_SESSIONS, TPM_CC_HMAC_START, key_handle, true, &params),
    )?;
    let seq = r
        .first_chunk::<4>()
        .map(|b| u32::from_be_bytes(*b))
        .ok_or_else(|| io_error("TPM2_HMAC_Start", "no sequence handle in the response"))?;
    let result = (|| {
        let (body, last) = data.split_at(data.len() - data.len().min(chunk));
        for piece in body.chunks(chunk) {
            t.command(
                "TPM2_SequenceUpdate",
                &build(TPM_ST_SESSIONS, TPM_CC_SEQUENCE_UPDATE, seq, true, &tpm2b(piece)),
            )?;
        }
        let mut params = tpm2b(last);
        params.extend_from_slice(&TPM_RH_NULL.to_be_bytes());
        let r = t.command(
            "TPM2_SequenceComplete",
            &build(TPM_ST_SESSIONS, TPM_CC_SEQUENCE_COMPLETE, seq, true, &params),
        )?;
        // parameterSize (u32), then TPM2B_DIGEST result, then the validation ticket.
        let digest = r
            .get(4..)
            .and_then(|p| p.split_first_chunk::<2>())
            .and_then(|(size, rest)| rest.get(..usize::from(u16::from_be_bytes(*size))))
            .ok_or_else(|| io_error("TPM2_SequenceComplete", "malformed response"))?;
        Ok(digest.to_vec())
    })();
    if result.is_err() {
        // The sequence object is only freed by SequenceComplete; flush it on failure.
        let _ = t.command(
            "TPM2_FlushContext",
            &build(TPM_ST_NO_SESSIONS, TPM_CC_FLUSH_CONTEXT, seq, false, &[]),
        );
    }
    result
}
