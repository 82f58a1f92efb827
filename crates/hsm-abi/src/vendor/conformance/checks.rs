//! The checks of one concern each: the caller-buffer rule, signatures (verified independently),
//! concurrency, the TPM group and the symmetric group.

use std::sync::Arc;

use hsm_core::{Error, SignatureScheme, SigningKey};

use super::options::Options;
use super::report::{Outcome, Run, expect_failure};
use crate::ffi::errors::{HSM_ABI_ERR_BUFFER_TOO_SMALL, HSM_ABI_ERR_UNSUPPORTED, HSM_ABI_OK};
use crate::ffi::signer_types::HSM_ABI_KEY_INFO;
use crate::vendor::{BytesField, RawIdentity, VendorKey, verify_signature};

/// The caller-buffer rule on one field: size query, exact, larger, short buffer, NULL len,
/// stable output.
pub(super) fn buffer_rule(run: &mut Run<'_>, raw: &RawIdentity, field: BytesField) {
    let name = field.name();
    let Some(query) = raw.probe_bytes(field, None) else {
        run.record(name.to_string(), Outcome::Skip("NULL in the table".into()));
        return;
    };
    if query.rc == HSM_ABI_ERR_UNSUPPORTED {
        run.record(name.to_string(), Outcome::Skip("unsupported for this identity".into()));
        return;
    }
    let needed = query.len;
    let r = match query.rc {
        HSM_ABI_ERR_BUFFER_TOO_SMALL if needed > 0 && needed <= crate::ffi::vendor::MAX_OUTPUT => {
            Ok(format!("{needed} bytes"))
        }
        HSM_ABI_ERR_BUFFER_TOO_SMALL => Err(format!("asks for an implausible size {needed}")),
        rc => Err(format!(
            "a NULL buffer must give HSM_ABI_ERR_BUFFER_TOO_SMALL and the size; got {rc} ({})",
            raw.table().explain(rc)
        )),
    };
    let ok = r.is_ok();
    run.check(format!("{name}: size query (buf NULL)"), r);
    if !ok {
        return;
    }
    let Some(exact) = raw.probe_bytes(field, Some(needed)) else {
        return;
    };
    let exact_ok = exact.rc == HSM_ABI_OK && exact.len == needed && !exact.overrun;
    run.check(
        format!("{name}: buffer of the size asked for"),
        if exact_ok {
            Ok(String::new())
        } else {
            Err(format!("rc {}, len {}, overrun {}", exact.rc, exact.len, exact.overrun))
        },
    );
    if let Some(large) = raw.probe_bytes(field, Some(needed + 100)) {
        run.check(
            format!("{name}: larger buffer, same output"),
            if large.rc == HSM_ABI_OK && large.data == exact.data && !large.overrun {
                Ok(String::new())
            } else {
                Err(format!(
                    "rc {}, len {} (expected {needed}), same bytes {}",
                    large.rc,
                    large.len,
                    large.data == exact.data
                ))
            },
        );
    }
    if let Some(short) = raw.probe_bytes(field, Some(needed - 1)) {
        run.check(
            format!("{name}: short buffer is refused with the needed size"),
            if short.rc == HSM_ABI_ERR_BUFFER_TOO_SMALL && short.len == needed && !short.overrun {
                Ok(String::new())
            } else {
                Err(format!(
                    "rc {} (expected {HSM_ABI_ERR_BUFFER_TOO_SMALL}), len {} (expected {needed}), wrote past the end {}",
                    short.rc, short.len, short.overrun
                ))
            },
        );
    }
    if let Some(rc) = raw.probe_bytes_null_len(field) {
        run.check(format!("{name}: NULL len is refused"), expect_failure("NULL len", rc));
    }
}

pub(super) fn sign_checks(
    run: &mut Run<'_>,
    raw: &Arc<RawIdentity>,
    info: &HSM_ABI_KEY_INFO,
    key: &Arc<VendorKey>,
    opts: &Options,
) {
    let spki = match key.public_key_spki() {
        Ok(s) => s,
        Err(e) => {
            run.check("public key", Err(e.to_string()));
            return;
        }
    };
    let max = info.max_signature_len as usize;
    let messages: [Vec<u8>; 3] = [
        Vec::new(),
        b"hsm-abi conformance".to_vec(),
        (0..65_536u32).map(|i| (i % 251) as u8).collect(),
    ];
    for scheme in key.schemes() {
        for msg in &messages {
            let p = raw.probe_sign(scheme.code(), msg, Some(max));
            let r = if p.overrun {
                Err(format!("wrote past max_signature_len = {max}"))
            } else if p.rc != HSM_ABI_OK {
                Err(format!("rc {} ({})", p.rc, raw.table().explain(p.rc)))
            } else if p.len > max {
                Err(format!("signature length {} exceeds max_signature_len {max}", p.len))
            } else {
                verify_signature(&spki, scheme, msg, &p.data)
                    .map(|()| format!("{} bytes, verified by ring", p.len))
                    .map_err(|e| e.to_string())
            };
            run.check(format!("sign {scheme}, {}-byte message", msg.len()), r);
        }
        let q = raw.probe_sign(scheme.code(), b"x", None);
        run.check(
            format!("sign {scheme}: size query (sig NULL)"),
            if q.rc == HSM_ABI_ERR_BUFFER_TOO_SMALL && q.len > 0 && q.len <= max {
                Ok(format!("{} bytes", q.len))
            } else {
                Err(format!(
                    "rc {}, len {} (expected {HSM_ABI_ERR_BUFFER_TOO_SMALL} and 1..={max})",
                    q.rc, q.len
                ))
            },
        );
        let s = raw.probe_sign(scheme.code(), b"x", Some(8));
        run.check(
            format!("sign {scheme}: 8-byte buffer is refused"),
            if s.rc == HSM_ABI_ERR_BUFFER_TOO_SMALL && s.len > 8 && !s.overrun {
                Ok(format!("needs {}", s.len))
            } else {
                Err(format!("rc {}, len {}, wrote past the end {}", s.rc, s.len, s.overrun))
            },
        );
    }
    if let Some(scheme) = key.schemes().first() {
        run.check(
            "sign with a NULL message of length 16 is refused",
            expect_failure("sign(msg NULL)", raw.probe_sign_bad_pointers(scheme.code(), true)),
        );
        run.check(
            "sign with a NULL sig_len is refused",
            expect_failure("sign(sig_len NULL)", raw.probe_sign_bad_pointers(scheme.code(), false)),
        );
    }
    let p = raw.probe_sign(0x9999, b"x", Some(max));
    run.check(
        "sign with unknown scheme 0x9999 is refused",
        expect_failure("sign(0x9999)", p.rc),
    );
    if let Some(other) = SignatureScheme::ALL.into_iter().find(|s| !key.schemes().contains(s)) {
        let p = raw.probe_sign(other.code(), b"x", Some(1024));
        run.check(
            format!("sign with {other} (not listed by key_info) is refused"),
            expect_failure("sign", p.rc),
        );
    }

    // Concurrency: one identity shared by N threads, and N identities opened at once.
    let threads = opts.threads.max(1);
    let per = opts.signs_per_thread.max(1);
    let shared: Result<usize, String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let key = key.clone();
                s.spawn(move || -> Result<usize, String> {
                    let scheme = key.schemes().first().copied().ok_or("no scheme")?;
                    for i in 0..per {
                        let msg = format!("thread {t} message {i}");
                        key.sign(scheme, msg.as_bytes())
                            .map_err(|e| format!("thread {t}: {e}"))?;
                    }
                    Ok(per)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "a thread panicked".to_string())?)
            .sum()
    });
    run.check(
        format!("{threads} threads sign concurrently on one identity (each signature verified)"),
        shared.map(|n| format!("{n} signatures")),
    );
    let table = raw.table().clone();
    let identity = opts.identity.clone();
    let separate: Result<usize, String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let table = table.clone();
                let identity = identity.clone();
                s.spawn(move || -> Result<usize, String> {
                    let raw = Arc::new(table.open(&identity).map_err(|e| format!("thread {t}: {e}"))?);
                    let key = VendorKey::new(raw).map_err(|e| format!("thread {t}: {e}"))?;
                    let scheme = key.schemes().first().copied().ok_or("no scheme")?;
                    key.sign(scheme, b"separate identities")
                        .map_err(|e| format!("thread {t}: {e}"))?;
                    Ok(1)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "a thread panicked".to_string())?)
            .sum()
    });
    run.check(
        format!("{threads} threads open, sign and close their own identities"),
        separate.map(|n| format!("{n} identities")),
    );
}

pub(super) fn tpm_checks(run: &mut Run<'_>, raw: &RawIdentity) {
    if !raw.table().capabilities().tpm {
        run.record("TPM group", Outcome::Skip("NULL in the table".into()));
        return;
    }
    for field in [BytesField::EndorsementKey, BytesField::StorageRootKey] {
        match raw.bytes(field) {
            Ok(b) => {
                let declared = b.get(..2).map(|s| usize::from(u16::from_be_bytes([s[0], s[1]])));
                run.check(
                    format!("{} is a TPM2B", field.name()),
                    if declared == Some(b.len().saturating_sub(2)) && b.len() > 2 {
                        Ok(format!("{} bytes", b.len()))
                    } else {
                        Err("the 2-byte size does not match the length".into())
                    },
                );
            }
            Err(Error::Unsupported { .. }) => {
                run.record(field.name(), Outcome::Skip("unsupported for this identity".into()))
            }
            Err(e) => run.check(field.name(), Err(e.to_string())),
        }
    }
    match raw.probe_activate(&[0, 1, 2]) {
        Some(HSM_ABI_ERR_UNSUPPORTED) => run.record(
            "activate_identity_key",
            Outcome::Skip("unsupported for this identity".into()),
        ),
        Some(rc) => run.check(
            "activate_identity_key refuses a truncated blob",
            expect_failure("activate_identity_key(3 bytes)", rc),
        ),
        None => {}
    }
    if let Some(p) = raw.probe_sign_with_identity(b"x", None) {
        run.check(
            "sign_with_identity answers a size query or an error, without crashing",
            Ok(format!("rc {} (a real check needs an activated identity key)", p.rc)),
        );
    }
}

pub(super) fn symmetric_checks(run: &mut Run<'_>, raw: &RawIdentity) {
    if !raw.table().capabilities().symmetric {
        run.record("symmetric group", Outcome::Skip("NULL in the table".into()));
        return;
    }
    match raw.text(BytesField::RegistrationId) {
        Ok(id) => run.check("get_registration_id is UTF-8 text", Ok(id)),
        Err(Error::Unsupported { .. }) => {
            run.record("symmetric group", Outcome::Skip("unsupported for this identity".into()));
            return;
        }
        Err(e) => run.check("get_registration_id is UTF-8 text", Err(e.to_string())),
    }
    let data = b"0ne00000A0A%2fregistrations%2fdevice-0001\n1767225600";
    let a = raw.probe_hmac(data, false);
    let b = raw.probe_hmac(data, false);
    let mac = match (a, b) {
        (Some((HSM_ABI_OK, a, false)), Some((HSM_ABI_OK, b, false))) if a == b => {
            run.check("hmac_sha256 is deterministic", Ok(String::new()));
            Some(a)
        }
        other => {
            run.check("hmac_sha256 is deterministic", Err(format!("{other:?}")));
            None
        }
    };
    if let Some((rc, _, _)) = raw.probe_hmac(data, true) {
        run.check(
            "hmac_sha256 with a NULL mac is refused",
            expect_failure("hmac_sha256(NULL)", rc),
        );
    }
    if raw.table().capabilities().symmetric_key_export {
        match (raw.bytes(BytesField::SymmetricKey), mac) {
            (Ok(key), Some(mac)) => {
                let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
                let expected = ring::hmac::sign(&k, data);
                run.check(
                    "hmac_sha256 equals HMAC-SHA256 with get_symmetric_key (ring)",
                    if expected.as_ref() == mac {
                        Ok(String::new())
                    } else {
                        Err("the MACs differ".into())
                    },
                );
            }
            (Err(e), _) => run.check("get_symmetric_key", Err(e.to_string())),
            _ => {}
        }
    }
}
