//! The conformance run of a vendor table: every field, bad inputs, the caller-buffer rule,
//! concurrency, and signatures verified independently (ring), with a PASS/FAIL/SKIP report.
//!
//! `hsmctl conformance --vendor-lib PATH --identity ID` prints this report. A crash of the
//! vendor library during a probe ends the process: each check is reported through `progress`
//! before it runs, so the last line names the probe that crashed.

use std::ffi::c_int;
use std::sync::Arc;

use hsm_core::{Error, SignatureScheme, SigningKey, X509Identity};

use super::{BytesField, RawIdentity, VendorKey, VendorTable, VendorX509, verify_signature};
use crate::ffi::errors::{HSM_ABI_ERR_BUFFER_TOO_SMALL, HSM_ABI_ERR_UNSUPPORTED, HSM_ABI_OK};
use crate::ffi::signer_types::HSM_ABI_KEY_INFO;

/// How a check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass(String),
    Fail(String),
    Skip(String),
}

/// One check of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub outcome: Outcome,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            Outcome::Pass(d) if d.is_empty() => write!(f, "PASS {}", self.name),
            Outcome::Pass(d) => write!(f, "PASS {}: {d}", self.name),
            Outcome::Fail(d) => write!(f, "FAIL {}: {d}", self.name),
            Outcome::Skip(d) => write!(f, "SKIP {}: {d}", self.name),
        }
    }
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The table's name and where it came from.
    pub backend: String,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn passed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Pass(_)))
    }
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Fail(_)))
    }
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skip(_)))
    }
    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.checks.iter().filter(|c| f(&c.outcome)).count()
    }
    /// True when nothing failed.
    pub fn ok(&self) -> bool {
        self.failed() == 0
    }
    /// The summary line.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} passed, {} failed, {} skipped: {}",
            self.backend,
            self.passed(),
            self.failed(),
            self.skipped(),
            if self.ok() { "CONFORMANT" } else { "NOT CONFORMANT" }
        )
    }
}

/// Options of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The identity string passed to `open`.
    pub identity: String,
    /// Threads of the concurrency checks.
    pub threads: usize,
    /// Signatures per thread.
    pub signs_per_thread: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            identity: String::new(),
            threads: 8,
            signs_per_thread: 25,
        }
    }
}

struct Run<'a> {
    report: Report,
    progress: &'a mut dyn FnMut(&Check),
}

impl Run<'_> {
    fn record(&mut self, name: impl Into<String>, outcome: Outcome) {
        let c = Check {
            name: name.into(),
            outcome,
        };
        (self.progress)(&c);
        self.report.checks.push(c);
    }

    fn check(&mut self, name: impl Into<String>, r: Result<String, String>) {
        self.record(
            name,
            match r {
                Ok(d) => Outcome::Pass(d),
                Err(d) => Outcome::Fail(d),
            },
        );
    }
}

fn expect_failure(what: &str, rc: c_int) -> Result<String, String> {
    if rc == HSM_ABI_OK {
        Err(format!("{what} returned 0 (success); it must return an error"))
    } else {
        Ok(format!("refused with {rc}"))
    }
}

/// Run every check on `table` with `opts.identity`; `progress` sees each check as it ends.
pub fn run(table: &Arc<VendorTable>, opts: &Options, progress: &mut dyn FnMut(&Check)) -> Report {
    let mut run = Run {
        report: Report {
            backend: format!("vendor backend \"{}\" ({})", table.name(), table.origin()),
            checks: Vec::new(),
        },
        progress,
    };
    let caps = table.capabilities();
    run.check(
        "table: version, struct_size, mandatory fields, complete groups",
        Ok(format!(
            "version {}; optional: get_public_key {}, error_string {}, TPM group {}, symmetric group {} (get_symmetric_key {})",
            table.version(),
            yes(caps.public_key),
            yes(caps.error_string),
            yes(caps.tpm),
            yes(caps.symmetric),
            yes(caps.symmetric_key_export),
        )),
    );

    // ---- open / close ----
    table.probe_close_null();
    run.check("close(NULL) is a no-op", Ok(String::new()));
    match table.probe_open(None) {
        Ok((rc, None)) => run.check("open(NULL identity) is refused", expect_failure("open(NULL)", rc)),
        Ok((_, Some(_))) => run.check("open(NULL identity) is refused", Err("it succeeded".into())),
        Err(e) => run.check("open(NULL identity) is refused", Err(e.to_string())),
    }
    match table.probe_open_null_out(&opts.identity) {
        Ok(rc) => run.check(
            "open(identity, NULL out) is refused",
            expect_failure("open with out NULL", rc),
        ),
        Err(e) => run.check("open(identity, NULL out) is refused", Err(e.to_string())),
    }
    let bogus = format!("{}\u{1}no-such-identity", opts.identity);
    match table.probe_open(Some(&bogus)) {
        Ok((rc, None)) => run.check("open(unknown identity) is refused", expect_failure("open", rc)),
        Ok((_, Some(_))) => run.record(
            "open(unknown identity) is refused",
            Outcome::Skip("the backend accepts any identity string".into()),
        ),
        Err(e) => run.check("open(unknown identity) is refused", Err(e.to_string())),
    }
    let raw = match table.open(&opts.identity) {
        Ok(raw) => {
            run.check(format!("open({:?})", opts.identity), Ok(String::new()));
            Arc::new(raw)
        }
        Err(e) => {
            run.check(format!("open({:?})", opts.identity), Err(e.to_string()));
            return run.report;
        }
    };

    // ---- byte fields and the caller-buffer rule ----
    for field in BytesField::ALL {
        buffer_rule(&mut run, &raw, field);
    }

    // ---- certificate, common name, public key ----
    let chain = match super::certificate_chain(raw.as_ref()) {
        Ok(chain) => {
            run.check(
                "certificate chain is PEM, leaf first",
                Ok(format!("{} certificate(s)", chain.len())),
            );
            Some(chain)
        }
        Err(e) => {
            run.check("certificate chain is PEM, leaf first", Err(e.to_string()));
            None
        }
    };
    if let Some(leaf) = chain.as_ref().and_then(|c| c.first()) {
        let cn = hsm_core::pem::common_name(leaf);
        let got = raw.text(BytesField::CommonName);
        run.check(
            "get_common_name equals the leaf certificate's CN",
            match (cn, got) {
                (Ok(a), Ok(b)) if a == b => Ok(a),
                (Ok(a), Ok(b)) => Err(format!("get_common_name {b:?}, certificate CN {a:?}")),
                (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
            },
        );
        if caps.public_key {
            run.check(
                "get_public_key equals the leaf certificate's key",
                match (hsm_core::pem::public_key_spki(leaf), raw.bytes(BytesField::PublicKey)) {
                    (Ok(a), Ok(b)) if a == b => Ok(format!("{} bytes", a.len())),
                    (Ok(_), Ok(_)) => Err("the keys differ".into()),
                    (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
                },
            );
        }
    }

    // ---- key_info ----
    let (rc, _) = raw.probe_key_info(4);
    run.check(
        "key_info with struct_size 4 is refused",
        expect_failure("key_info(struct_size 4)", rc),
    );
    run.check(
        "key_info(NULL) is refused",
        expect_failure("key_info(NULL)", raw.probe_key_info_null()),
    );
    let info = match raw.key_info_checked() {
        Ok(info) => {
            run.check("key_info describes a usable key", Ok(describe(&info)));
            Some(info)
        }
        Err(e) => {
            run.check("key_info describes a usable key", Err(e.to_string()));
            None
        }
    };
    let key = match VendorKey::new(raw.clone()) {
        Ok(k) => {
            run.check(
                "key_info matches the certificate's key",
                Ok(format!("{:?}", k.algorithm())),
            );
            Some(Arc::new(k))
        }
        Err(e) => {
            run.check("key_info matches the certificate's key", Err(e.to_string()));
            None
        }
    };

    // ---- sign ----
    if let (Some(info), Some(key)) = (info, key) {
        sign_checks(&mut run, &raw, &info, &key, opts);
    } else {
        run.record("sign", Outcome::Skip("no usable key description".into()));
    }

    // ---- optional groups ----
    tpm_checks(&mut run, &raw);
    symmetric_checks(&mut run, &raw);

    // ---- error strings ----
    if caps.error_string {
        let text = table.explain(987_654);
        run.check(
            "error_string answers for an unknown code",
            Ok(format!("code 987654: {text:?}")),
        );
    }

    // ---- the backend as the SDK and rustls see it ----
    drop(raw);
    let source_free = VendorX509Probe::open(table, &opts.identity);
    run.check("the wrapped x509 identity (as the SDK and TLS use it)", source_free);
    run.report
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn describe(info: &HSM_ABI_KEY_INFO) -> String {
    let schemes: Vec<String> = info.schemes[..(info.scheme_count as usize).min(info.schemes.len())]
        .iter()
        .map(|c| {
            SignatureScheme::try_from(*c)
                .map(|s| s.name().to_string())
                .unwrap_or_else(|_| format!("0x{c:04x}"))
        })
        .collect();
    format!(
        "algorithm {}, {} , schemes [{}], max_signature_len {}",
        info.algorithm,
        info.curve_or_bits,
        schemes.join(", "),
        info.max_signature_len
    )
}

/// The caller-buffer rule on one field: size query, exact, larger, short buffer, NULL len,
/// stable output.
fn buffer_rule(run: &mut Run<'_>, raw: &RawIdentity, field: BytesField) {
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

fn sign_checks(
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

fn tpm_checks(run: &mut Run<'_>, raw: &RawIdentity) {
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

fn symmetric_checks(run: &mut Run<'_>, raw: &RawIdentity) {
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

/// Open the identity through the safe wrapper, as the registry does for `backend = "vendor"`.
struct VendorX509Probe;

impl VendorX509Probe {
    fn open(table: &Arc<VendorTable>, identity: &str) -> Result<String, String> {
        let raw = Arc::new(table.open(identity).map_err(|e| e.to_string())?);
        let id = VendorX509::from_raw(raw, String::new()).map_err(|e| e.to_string())?;
        let cn = id.common_name().map_err(|e| e.to_string())?;
        let key = id.signing_key().map_err(|e| e.to_string())?;
        let scheme = key.schemes().first().copied().ok_or("no scheme")?;
        key.sign(scheme, b"wrapped").map_err(|e| e.to_string())?;
        Ok(format!("common name {cn:?}, {scheme} signature verified"))
    }
}
