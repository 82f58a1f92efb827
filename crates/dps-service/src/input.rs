//! Bulk input, read line by line: JSON lines (one `IndividualEnrollment` or `EnrollmentGroup` per
//! line) or CSV of individual enrollments with a header row:
//!
//! `registrationId,attestation,endorsementKey,certificate,primaryKey,secondaryKey,deviceId,provisioningStatus,iotHubHostName`
//!
//! where `registrationId` and `attestation` (`tpm`, `x509`, `symmetricKey`) are required and the other
//! columns optional (in any order, empty cells absent); `certificate` is the device certificate as the
//! service takes it on one line: base64 DER, or the base64 of the PEM.
//!
//! **Every record is one physical line**, in both formats: enrollment records never need a newline, so a
//! quoted CSV cell cannot span lines, and a line with an unterminated quote is a failed record of its own
//! instead of swallowing the lines after it. Lines end with `\n` or `\r\n`; blank lines are skipped. A
//! line longer than [`MAX_LINE`] bytes is a failed record (read past without being held in memory), as
//! is a line that is not UTF-8. Every failure is an [`Error::Input`] naming the line; reading goes on
//! with the next line.

use std::io::BufRead;
use std::marker::PhantomData;
use std::path::Path;
use std::time::Instant;

use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::bulk::Numbered;
use crate::models::{
    Attestation, IndividualEnrollment, ProvisioningStatus, SymmetricKeyAttestation, TpmAttestation, X509Attestation,
};
use crate::{Error, Result};

/// The longest input line taken, in bytes (without its line end). The largest enrollment record in
/// practice (an x509 chain as base64 PEM) is a few KiB.
pub const MAX_LINE: usize = 64 * 1024;

/// Physical lines of at most [`MAX_LINE`] bytes; a longer line is reported by its length and skipped
/// without being held.
struct Lines<R> {
    reader: R,
    line: u64,
    buf: Vec<u8>,
    failed: bool,
}

/// One physical line: its number and its text, or why it cannot be read.
type Line<'a> = (u64, std::result::Result<&'a str, String>);

impl<R: BufRead> Lines<R> {
    fn new(reader: R) -> Self {
        Lines {
            reader,
            line: 0,
            // Never grown past this: a line is never held beyond it.
            buf: Vec::with_capacity(MAX_LINE + 2),
            failed: false,
        }
    }

    /// The next line that is not blank; `None` at the end of the input (or after a read error, which
    /// is returned once).
    fn next_line(&mut self) -> Option<Line<'_>> {
        loop {
            if self.failed {
                return None;
            }
            self.buf.clear();
            self.line += 1;
            let (mut len, mut blank, mut any, mut overflow, mut newline) = (0u64, true, false, false, false);
            loop {
                let chunk = match self.reader.fill_buf() {
                    Ok(c) => c,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // A read error is not tied to a record: report it once and stop.
                        self.failed = true;
                        return Some((self.line, Err(format!("read failed: {e}"))));
                    }
                };
                if chunk.is_empty() {
                    break;
                }
                any = true;
                let (take, end) = match chunk.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (chunk.len(), false),
                };
                let part = &chunk[..take];
                blank &= part.iter().all(u8::is_ascii_whitespace);
                len += take as u64;
                // Keep at most MAX_LINE bytes and the line end; past that only the length is counted.
                if !overflow && self.buf.len() + take <= MAX_LINE + 2 {
                    self.buf.extend_from_slice(part);
                } else {
                    overflow = true;
                    self.buf.clear();
                }
                self.reader.consume(take);
                if end {
                    newline = true;
                    break;
                }
            }
            if !any {
                return None;
            }
            if blank {
                continue;
            }
            let text = trim_line_end(&self.buf);
            if overflow || text.len() > MAX_LINE {
                let len = if overflow {
                    len - u64::from(newline)
                } else {
                    text.len() as u64
                };
                return Some((
                    self.line,
                    Err(format!(
                        "the line is {len} bytes, longer than the {MAX_LINE}-byte limit"
                    )),
                ));
            }
            return Some((
                self.line,
                std::str::from_utf8(text).map_err(|e| format!("the line is not UTF-8: {e}")),
            ));
        }
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn input_error(source: &str, line: u64, message: String) -> Error {
    Error::Input {
        source_name: source.to_string(),
        line,
        message,
    }
}

/// JSON lines of `T`.
pub struct JsonLines<R, T> {
    lines: Lines<R>,
    source: String,
    _t: PhantomData<T>,
}

impl<R: BufRead, T: DeserializeOwned> JsonLines<R, T> {
    /// `source` names the input in errors (a file name).
    pub fn new(reader: R, source: impl Into<String>) -> Self {
        JsonLines {
            lines: Lines::new(reader),
            source: source.into(),
            _t: PhantomData,
        }
    }
}

impl<R: BufRead, T: DeserializeOwned> Iterator for JsonLines<R, T> {
    type Item = Result<Numbered<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (line, text) = self.lines.next_line()?;
        Some(
            text.and_then(|t| serde_json::from_str(t.trim()).map_err(|e| e.to_string()))
                .map(|r| (Some(line), r))
                .map_err(|m| input_error(&self.source, line, m)),
        )
    }
}

/// CSV rows of individual enrollments, one a line; the header row is read when it is made.
pub struct CsvEnrollments<R> {
    lines: Lines<R>,
    parser: csv_core::Reader,
    columns: Columns,
    source: String,
    scratch: CsvScratch,
}

#[derive(Default)]
struct CsvScratch {
    input: Vec<u8>,
    output: Vec<u8>,
    ends: Vec<usize>,
}

#[derive(Debug, Default)]
struct Columns {
    registration_id: usize,
    attestation: usize,
    endorsement_key: Option<usize>,
    certificate: Option<usize>,
    primary_key: Option<usize>,
    secondary_key: Option<usize>,
    device_id: Option<usize>,
    provisioning_status: Option<usize>,
    iot_hub_host_name: Option<usize>,
}

impl<R: BufRead> CsvEnrollments<R> {
    /// Reads the header row (the first line that is not blank); a bad or missing header is an error
    /// for the whole input, as no row can be read without it.
    pub fn new(reader: R, source: impl Into<String>) -> Result<Self> {
        let source = source.into();
        let mut lines = Lines::new(reader);
        let mut parser = csv_core::Reader::new();
        let mut scratch = CsvScratch::default();
        let columns = match lines.next_line() {
            None => Err((1, "the file is empty: a header row is needed".to_string())),
            Some((n, text)) => text
                .and_then(|t| split(&mut parser, &mut scratch, t))
                .and_then(|h| columns(&h))
                .map_err(|m| (n, m)),
        }
        .map_err(|(n, m)| input_error(&source, n, format!("header row: {m}")))?;
        Ok(CsvEnrollments {
            lines,
            parser,
            columns,
            source,
            scratch,
        })
    }
}

/// The trimmed cells of one CSV line.
fn split(parser: &mut csv_core::Reader, s: &mut CsvScratch, line: &str) -> std::result::Result<Vec<String>, String> {
    use csv_core::ReadRecordResult as R;
    parser.reset();
    // The line with its end put back: a record that ends there is whole; a quote still open swallows
    // the line end and the record stays unfinished.
    s.input.clear();
    s.input.extend_from_slice(line.as_bytes());
    s.input.push(b'\n');
    s.output.resize(s.input.len(), 0);
    s.ends.resize(s.input.len() + 1, 0);
    let (result, read, _, fields) = parser.read_record(&s.input, &mut s.output, &mut s.ends);
    match result {
        R::Record if read == s.input.len() => {}
        R::Record => return Err("a carriage return inside the line (one record a line)".into()),
        _ => {
            return Err(
                "a quote (\") is not closed: a record is one line, and a quoted cell cannot span lines \
                        (a certificate goes in as base64 DER, or the base64 of its PEM)"
                    .into(),
            );
        }
    }
    let mut start = 0;
    s.ends[..fields]
        .iter()
        .map(|&end| {
            let cell = std::str::from_utf8(&s.output[start..end]).map_err(|e| format!("not UTF-8: {e}"));
            start = end;
            cell.map(|c| c.trim().to_string())
        })
        .collect()
}

fn columns(h: &[String]) -> std::result::Result<Columns, String> {
    let mut c = Columns::default();
    let (mut reg, mut att) = (None, None);
    for (i, name) in h.iter().enumerate() {
        let slot = match name.as_str() {
            "registrationId" => &mut reg,
            "attestation" => &mut att,
            "endorsementKey" => &mut c.endorsement_key,
            "certificate" => &mut c.certificate,
            "primaryKey" => &mut c.primary_key,
            "secondaryKey" => &mut c.secondary_key,
            "deviceId" => &mut c.device_id,
            "provisioningStatus" => &mut c.provisioning_status,
            "iotHubHostName" => &mut c.iot_hub_host_name,
            other => return Err(format!("unknown column {other:?}")),
        };
        if slot.replace(i).is_some() {
            return Err(format!("column {name:?} appears twice"));
        }
    }
    c.registration_id = reg.ok_or("the header has no registrationId column")?;
    c.attestation = att.ok_or("the header has no attestation column")?;
    Ok(c)
}

impl<R: BufRead> Iterator for CsvEnrollments<R> {
    type Item = Result<Numbered<IndividualEnrollment>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (line, text) = self.lines.next_line()?;
        let (parser, scratch, cols) = (&mut self.parser, &mut self.scratch, &self.columns);
        Some(
            text.and_then(|t| split(parser, scratch, t))
                .and_then(|cells| record(cols, &cells))
                .map(|e| (Some(line), e))
                .map_err(|m| input_error(&self.source, line, m)),
        )
    }
}

fn record(c: &Columns, r: &[String]) -> std::result::Result<IndividualEnrollment, String> {
    let cell = |i: Option<usize>| i.and_then(|i| r.get(i)).map(String::as_str).filter(|v| !v.is_empty());
    let need = |i: Option<usize>, name: &str| cell(i).ok_or_else(|| format!("{name} is empty"));
    let id = need(Some(c.registration_id), "registrationId")?;
    let kind = need(Some(c.attestation), "attestation")?;
    let attestation = match kind {
        "tpm" => Attestation::tpm(TpmAttestation::new(
            need(c.endorsement_key, "endorsementKey (needed for tpm)")?,
            None,
        )),
        "x509" => Attestation::x509(X509Attestation::client_certificate(need(
            c.certificate,
            "certificate (needed for x509)",
        )?)),
        "symmetricKey" => Attestation::symmetric_key(SymmetricKeyAttestation::new(
            cell(c.primary_key).map(|k| Zeroizing::new(k.to_string())),
            cell(c.secondary_key).map(|k| Zeroizing::new(k.to_string())),
        )),
        other => return Err(format!("attestation {other:?}: expected tpm, x509 or symmetricKey")),
    };
    let mut e = IndividualEnrollment::new(id, attestation);
    e.device_id = cell(c.device_id).map(str::to_string);
    e.common.iot_hub_host_name = cell(c.iot_hub_host_name).map(str::to_string);
    e.common.provisioning_status = match cell(c.provisioning_status) {
        None => None,
        Some("enabled") => Some(ProvisioningStatus::Enabled),
        Some("disabled") => Some(ProvisioningStatus::Disabled),
        Some(other) => return Err(format!("provisioningStatus {other:?}: expected enabled or disabled")),
    };
    Ok(e)
}

/// The format of a bulk input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CSV with a header row (individual enrollments).
    Csv,
    /// One JSON record a line.
    JsonLines,
}

impl Format {
    /// From the file name: `.csv` is CSV, anything else JSON lines.
    pub fn from_path(p: &Path) -> Format {
        match p.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => Format::Csv,
            _ => Format::JsonLines,
        }
    }
}

fn open(path: &Path) -> Result<std::io::BufReader<std::fs::File>> {
    let f = std::fs::File::open(path).map_err(|e| Error::Invalid {
        what: format!("input file {}", path.display()),
        message: e.to_string(),
    })?;
    Ok(std::io::BufReader::with_capacity(64 * 1024, f))
}

/// Individual enrollments from a file, streamed. A CSV file's header row is read here: a bad one is
/// the error.
pub fn enrollments_from_file(
    path: &Path,
    format: Format,
) -> Result<Box<dyn Iterator<Item = Result<Numbered<IndividualEnrollment>>> + Send>> {
    let reader = open(path)?;
    let name = path.display().to_string();
    Ok(match format {
        Format::Csv => Box::new(CsvEnrollments::new(reader, name)?),
        Format::JsonLines => Box::new(JsonLines::new(reader, name)),
    })
}

/// How many records (lines that are not blank, less a CSV header) a file holds: one pass in bounded
/// memory, for a progress total. `None` when `deadline` passes first.
pub fn count_records(path: &Path, format: Format, deadline: Option<Instant>) -> Result<Option<u64>> {
    let mut lines = Lines::new(open(path)?);
    let mut n = 0u64;
    while lines.next_line().is_some() {
        n += 1;
        if n % 4096 == 0 && deadline.is_some_and(|d| Instant::now() > d) {
            return Ok(None);
        }
    }
    Ok(Some(match format {
        Format::Csv => n.saturating_sub(1),
        Format::JsonLines => n,
    }))
}

#[cfg(test)]
#[path = "input_tests.rs"]
mod tests;
