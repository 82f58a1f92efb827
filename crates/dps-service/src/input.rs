//! Bulk input, read record by record: JSON lines (one `IndividualEnrollment` or `EnrollmentGroup` per
//! line, blank lines skipped) or CSV of individual enrollments with a header row:
//!
//! `registrationId,attestation,endorsementKey,certificate,primaryKey,secondaryKey,deviceId,provisioningStatus,iotHubHostName`
//!
//! where `registrationId` and `attestation` (`tpm`, `x509`, `symmetricKey`) are required and the other
//! columns optional (in any order, empty cells absent); `certificate` is the device certificate as the
//! service takes it: base64 DER (one line) or PEM (a quoted cell). A bad record is an [`Error::Input`] naming the line; reading goes on.

use std::io::BufRead;
use std::marker::PhantomData;
use std::path::Path;

use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::bulk::Numbered;
use crate::models::{
    Attestation, IndividualEnrollment, ProvisioningStatus, SymmetricKeyAttestation, TpmAttestation, X509Attestation,
};
use crate::{Error, Result};

/// JSON lines of `T`.
pub struct JsonLines<R, T> {
    reader: R,
    source: String,
    line: u64,
    buf: String,
    failed: bool,
    _t: PhantomData<T>,
}

impl<R: BufRead, T: DeserializeOwned> JsonLines<R, T> {
    /// `source` names the input in errors (a file name).
    pub fn new(reader: R, source: impl Into<String>) -> Self {
        JsonLines {
            reader,
            source: source.into(),
            line: 0,
            buf: String::new(),
            failed: false,
            _t: PhantomData,
        }
    }
}

impl<R: BufRead, T: DeserializeOwned> Iterator for JsonLines<R, T> {
    type Item = Result<Numbered<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed {
            self.buf.clear();
            self.line += 1;
            match self.reader.read_line(&mut self.buf) {
                Ok(0) => return None,
                Ok(_) if self.buf.trim().is_empty() => continue,
                Ok(_) => {
                    return Some(
                        serde_json::from_str(self.buf.trim())
                            .map(|r| (Some(self.line), r))
                            .map_err(|e| input_error(&self.source, self.line, e.to_string())),
                    );
                }
                Err(e) => {
                    // A read error is not tied to a record: report it once and stop.
                    self.failed = true;
                    return Some(Err(input_error(&self.source, self.line, format!("read failed: {e}"))));
                }
            }
        }
        None
    }
}

fn input_error(source: &str, line: u64, message: String) -> Error {
    Error::Input {
        source_name: source.to_string(),
        line,
        message,
    }
}

/// CSV rows of individual enrollments.
pub struct CsvEnrollments<R> {
    records: csv::StringRecordsIntoIter<R>,
    columns: Result<Columns>,
    source: String,
    failed_header: bool,
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

impl<R: std::io::Read> CsvEnrollments<R> {
    pub fn new(reader: R, source: impl Into<String>) -> Self {
        let source = source.into();
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .from_reader(reader);
        let columns = match rdr.headers() {
            Ok(h) => columns(h).map_err(|m| input_error(&source, 1, m)),
            Err(e) => Err(input_error(&source, 1, e.to_string())),
        };
        CsvEnrollments {
            records: rdr.into_records(),
            columns,
            source,
            failed_header: false,
        }
    }
}

fn columns(h: &csv::StringRecord) -> std::result::Result<Columns, String> {
    let mut c = Columns::default();
    let (mut reg, mut att) = (None, None);
    for (i, name) in h.iter().enumerate() {
        let slot = match name {
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

impl<R: std::io::Read> Iterator for CsvEnrollments<R> {
    type Item = Result<Numbered<IndividualEnrollment>>;

    fn next(&mut self) -> Option<Self::Item> {
        let cols = match &self.columns {
            Ok(c) => c,
            Err(e) => {
                if self.failed_header {
                    return None;
                }
                self.failed_header = true;
                return Some(Err(input_error(&self.source, 1, e.to_string())));
            }
        };
        let row = self.records.next()?;
        Some(match row {
            Ok(r) => {
                let line = r.position().map(|p| p.line()).unwrap_or(0);
                record(cols, &r)
                    .map(|e| (Some(line), e))
                    .map_err(|m| input_error(&self.source, line, m))
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                Err(input_error(&self.source, line, e.to_string()))
            }
        })
    }
}

fn record(c: &Columns, r: &csv::StringRecord) -> std::result::Result<IndividualEnrollment, String> {
    let cell = |i: Option<usize>| i.and_then(|i| r.get(i)).filter(|v| !v.is_empty());
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
    Csv,
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

/// Individual enrollments from a file, streamed.
pub fn enrollments_from_file(
    path: &Path,
    format: Format,
) -> Result<Box<dyn Iterator<Item = Result<Numbered<IndividualEnrollment>>> + Send>> {
    let f = std::fs::File::open(path).map_err(|e| Error::Invalid {
        what: format!("input file {}", path.display()),
        message: e.to_string(),
    })?;
    let name = path.display().to_string();
    let reader = std::io::BufReader::new(f);
    Ok(match format {
        Format::Csv => Box::new(CsvEnrollments::new(reader, name)),
        Format::JsonLines => Box::new(JsonLines::new(reader, name)),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_become_enrollments_and_bad_rows_name_their_line() {
        let text = "registrationId,attestation,primaryKey,endorsementKey,provisioningStatus\n\
                    dev-1,symmetricKey,a2V5,,\n\
                    dev-2,tpm,,AToAAQ==,disabled\n\
                    dev-3,tpm,,,\n\
                    \"dev,4\",dice,,,\n\
                    dev-5,symmetricKey,,,paused\n";
        let rows: Vec<_> = CsvEnrollments::new(text.as_bytes(), "f.csv").collect();
        assert_eq!(rows.len(), 5);
        let (line, e1) = rows[0].as_ref().unwrap();
        assert_eq!((*line, e1.registration_id.as_str()), (Some(2), "dev-1"));
        let (_, e2) = rows[1].as_ref().unwrap();
        assert_eq!(e2.common.provisioning_status, Some(ProvisioningStatus::Disabled));
        assert!(
            e2.attestation
                .tpm
                .as_ref()
                .is_some_and(|t| t.endorsement_key == "AToAAQ==")
        );
        for (i, needle) in [
            (2, "line 4: endorsementKey"),
            (3, "line 5: attestation \"dice\""),
            (4, "line 6: provisioningStatus"),
        ] {
            let e = rows[i].as_ref().unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn csv_header_errors_are_reported_once() {
        let rows: Vec<_> = CsvEnrollments::new("registrationId,colour\nx,y\n".as_bytes(), "f.csv").collect();
        assert_eq!(rows.len(), 1);
        assert!(
            rows[0]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("unknown column \"colour\"")
        );
    }

    #[test]
    fn json_lines_skip_blanks_and_name_bad_lines() {
        let text = "{\"registrationId\":\"a\",\"attestation\":{\"type\":\"symmetricKey\"}}\n\n{oops\n";
        let rows: Vec<Result<Numbered<IndividualEnrollment>>> = JsonLines::new(text.as_bytes(), "f.jsonl").collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].as_ref().unwrap().0, Some(1));
        assert!(rows[1].as_ref().unwrap_err().to_string().starts_with("f.jsonl line 3:"));
    }
}
