//! The conformance report: each check's outcome, recorded as it ends.

use std::ffi::c_int;

use hsm_core::SignatureScheme;

use crate::ffi::errors::HSM_ABI_OK;
use crate::ffi::signer_types::HSM_ABI_KEY_INFO;

/// How a check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It passed; the text says what was seen.
    Pass(String),
    /// It failed; the text says why.
    Fail(String),
    /// It did not run; the text says why (an optional entry the table leaves NULL).
    Skip(String),
}

/// One check of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// How it ended.
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
    /// Every check, in the order they ran.
    pub checks: Vec<Check>,
}

impl Report {
    /// How many checks passed.
    pub fn passed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Pass(_)))
    }
    /// How many checks failed.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Fail(_)))
    }
    /// How many checks were skipped.
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

pub(super) struct Run<'a> {
    pub(super) report: Report,
    pub(super) progress: &'a mut dyn FnMut(&Check),
}

impl Run<'_> {
    pub(super) fn record(&mut self, name: impl Into<String>, outcome: Outcome) {
        let c = Check {
            name: name.into(),
            outcome,
        };
        (self.progress)(&c);
        self.report.checks.push(c);
    }

    pub(super) fn check(&mut self, name: impl Into<String>, r: Result<String, String>) {
        self.record(
            name,
            match r {
                Ok(d) => Outcome::Pass(d),
                Err(d) => Outcome::Fail(d),
            },
        );
    }
}

pub(super) fn expect_failure(what: &str, rc: c_int) -> Result<String, String> {
    if rc == HSM_ABI_OK {
        Err(format!("{what} returned 0 (success); it must return an error"))
    } else {
        Ok(format!("refused with {rc}"))
    }
}

pub(super) fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

pub(super) fn describe(info: &HSM_ABI_KEY_INFO) -> String {
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
