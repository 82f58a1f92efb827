//! Bulk operations at factory scale: records streamed from any iterator (a CSV or JSON-lines file, see
//! [`crate::input`]), sent in calls of [`MAX_BULK`], with a bounded number of calls in flight. Every
//! record gets a report naming its id; nothing is held beyond the calls in flight, so memory does not
//! grow with the input.
//!
//! Re-running a `create` over records that already exist reports them as [`Outcome::AlreadyExists`],
//! not as failures. A call that gets no answer (or a 429/5xx) is retried; a record a lost answer had
//! already created then reports `AlreadyExists` on the retry, so nothing acknowledged is counted twice
//! and nothing is lost.

use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::client::{MAX_BULK, ServiceClient};
use crate::models::{BulkMode, BulkResult, EnrollmentGroup, IndividualEnrollment};
use crate::{Error, Result};

/// A record the bulk API takes.
pub trait BulkRecord: Serialize + Send {
    /// `registrationId` or `enrollmentGroupId`.
    fn id(&self) -> &str;
    /// One bulk call.
    fn call(client: &ServiceClient, mode: BulkMode, items: &[Self]) -> Result<BulkResult>
    where
        Self: Sized;
}

impl BulkRecord for IndividualEnrollment {
    fn id(&self) -> &str {
        &self.registration_id
    }
    fn call(client: &ServiceClient, mode: BulkMode, items: &[Self]) -> Result<BulkResult> {
        client.bulk_enrollments(mode, items)
    }
}

impl BulkRecord for EnrollmentGroup {
    fn id(&self) -> &str {
        &self.enrollment_group_id
    }
    fn call(client: &ServiceClient, mode: BulkMode, items: &[Self]) -> Result<BulkResult> {
        client.bulk_groups(mode, items)
    }
}

#[derive(Debug, Clone)]
pub struct BulkOptions {
    pub mode: BulkMode,
    /// Calls in flight at once (>= 1).
    pub in_flight: usize,
    /// Records per call (1..=10).
    pub chunk: usize,
    /// Retries of a call that got no answer or a 429/5xx.
    pub retries: u32,
    /// First delay between retries; doubled each time, at most 5 s.
    pub retry_delay: Duration,
}

impl Default for BulkOptions {
    fn default() -> Self {
        BulkOptions {
            mode: BulkMode::Create,
            in_flight: 4,
            chunk: MAX_BULK,
            retries: 5,
            retry_delay: Duration::from_millis(200),
        }
    }
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// `create` of a record the service already has (a re-run): not a failure.
    AlreadyExists,
    Failed {
        code: Option<i64>,
        message: String,
    },
}

/// The report of one record: its id (empty when the input line could not be read) and its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemReport {
    pub id: String,
    pub line: Option<u64>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkSummary {
    pub done: u64,
    pub already_existed: u64,
    pub failed: u64,
    /// Bulk calls made, retries included.
    pub calls: u64,
}

impl BulkSummary {
    pub fn total(&self) -> u64 {
        self.done + self.already_existed + self.failed
    }
}

/// A record and the input line it came from.
pub type Numbered<T> = (Option<u64>, T);

/// Run `mode` over every record of `input`; `report` sees each record's outcome as its call ends (on
/// the calling thread). Input errors are reported as failed records, and the run goes on.
pub fn run<T, I>(
    client: &ServiceClient,
    input: I,
    options: &BulkOptions,
    mut report: impl FnMut(&ItemReport),
) -> Result<BulkSummary>
where
    T: BulkRecord,
    I: Iterator<Item = Result<Numbered<T>>> + Send,
{
    if options.in_flight == 0 || options.chunk == 0 || options.chunk > MAX_BULK {
        return Err(Error::Invalid {
            what: "bulk options".into(),
            message: format!(
                "in_flight must be >= 1 and chunk 1 to {MAX_BULK} (got {} and {})",
                options.in_flight, options.chunk
            ),
        });
    }
    let mut summary = BulkSummary::default();
    std::thread::scope(|s| {
        let (job_tx, job_rx) = sync_channel::<Vec<Numbered<T>>>(options.in_flight);
        let (res_tx, res_rx) = std::sync::mpsc::channel::<(u64, Vec<ItemReport>)>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        for _ in 0..options.in_flight {
            let (rx, tx) = (Arc::clone(&job_rx), res_tx.clone());
            s.spawn(move || worker(client, options, &rx, &tx));
        }
        let input_tx = res_tx;
        s.spawn(move || {
            let mut chunk = Vec::with_capacity(options.chunk);
            for item in input {
                match item {
                    Ok(rec) => {
                        chunk.push(rec);
                        if chunk.len() == options.chunk
                            && job_tx
                                .send(std::mem::replace(&mut chunk, Vec::with_capacity(options.chunk)))
                                .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        let line = match &e {
                            Error::Input { line, .. } => Some(*line),
                            _ => None,
                        };
                        let r = ItemReport {
                            id: String::new(),
                            line,
                            outcome: Outcome::Failed {
                                code: None,
                                message: e.to_string(),
                            },
                        };
                        if input_tx.send((0, vec![r])).is_err() {
                            return;
                        }
                    }
                }
            }
            if !chunk.is_empty() {
                let _ = job_tx.send(chunk);
            }
        });
        // Every sender is owned by a thread: the loop ends when the input and all workers are done.
        for (calls, reports) in res_rx {
            summary.calls += calls;
            for r in &reports {
                match r.outcome {
                    Outcome::Done => summary.done += 1,
                    Outcome::AlreadyExists => summary.already_existed += 1,
                    Outcome::Failed { .. } => summary.failed += 1,
                }
                report(r);
            }
        }
    });
    Ok(summary)
}

type Results = std::sync::mpsc::Sender<(u64, Vec<ItemReport>)>;

fn worker<T: BulkRecord>(
    client: &ServiceClient,
    options: &BulkOptions,
    jobs: &Mutex<Receiver<Vec<Numbered<T>>>>,
    results: &Results,
) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(chunk) = job else { return };
        let (calls, reports) = call_with_retries(client, options, chunk);
        if results.send((calls, reports)).is_err() {
            return;
        }
    }
}

fn call_with_retries<T: BulkRecord>(
    client: &ServiceClient,
    options: &BulkOptions,
    chunk: Vec<Numbered<T>>,
) -> (u64, Vec<ItemReport>) {
    let (lines, records): (Vec<Option<u64>>, Vec<T>) = chunk.into_iter().unzip();
    let mut delay = options.retry_delay;
    let mut calls = 0;
    let answer = loop {
        calls += 1;
        match T::call(client, options.mode, &records) {
            Err(e) if e.is_transient() && calls <= u64::from(options.retries) => {
                tracing::warn!(error = %e, attempt = calls, "bulk call failed, retrying");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => break other,
        }
    };
    let reports = match answer {
        Ok(result) => lines
            .iter()
            .zip(&records)
            .map(|(line, r)| {
                let err = result
                    .errors
                    .iter()
                    .find(|e| e.id() == r.id())
                    .or_else(|| result.errors.iter().find(|e| e.id().eq_ignore_ascii_case(r.id())));
                let outcome = match err {
                    None if result.is_successful || !result.errors.is_empty() => Outcome::Done,
                    None => Outcome::Failed {
                        code: None,
                        message: "the service reported the call unsuccessful without naming this record".into(),
                    },
                    Some(e) if options.mode == BulkMode::Create && e.error_code / 1000 == 409 => Outcome::AlreadyExists,
                    Some(e) => Outcome::Failed {
                        code: Some(e.error_code),
                        message: e.error_status.clone(),
                    },
                };
                ItemReport {
                    id: r.id().to_string(),
                    line: *line,
                    outcome,
                }
            })
            .collect(),
        Err(e) => lines
            .iter()
            .zip(&records)
            .map(|(line, r)| ItemReport {
                id: r.id().to_string(),
                line: *line,
                outcome: Outcome::Failed {
                    code: None,
                    message: format!("the call failed after {calls} attempt(s): {e}"),
                },
            })
            .collect(),
    };
    (calls, reports)
}
