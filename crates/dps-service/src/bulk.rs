//! Bulk operations at factory scale: records streamed from any iterator (a CSV or JSON-lines file, see
//! [`crate::input`]), sent in calls of [`MAX_BULK`], with a bounded number of calls in flight. Every
//! record gets a report naming its id; nothing is held beyond the calls in flight, so memory does not
//! grow with the input.
//!
//! Re-running a `create` over records that already exist reports them as [`Outcome::AlreadyExists`],
//! not as failures. A call that gets no answer (or a 429/5xx) is retried; a record a lost answer had
//! already created then reports `AlreadyExists` on the retry, so nothing acknowledged is counted twice
//! and nothing is lost.
//!
//! A record is checked before it is sent ([`BulkRecord::check`], `bulk_records.rs`: keys and certificates
//! must be base64):
//! a bad one is a failed record and costs no call.
//!
//! Two things end a run early. [`BulkOptions::cancel`] (Ctrl-C): no further record is read or sent, the
//! calls in flight finish their current attempt, and the records read but not sent report
//! [`Outcome::NotSent`]; the summary says `interrupted`. And a service that cannot be reached at all:
//! when no call has had any answer within [`BulkOptions::connect_grace`] of the first that had none,
//! the run stops with [`Error::Transport`] instead of retrying every record.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::{MAX_BULK, ServiceClient};
use crate::error::error_chain;
use crate::models::{BulkMode, BulkResult};
use crate::{Error, Result, TransportKind};

/// A record the bulk API takes.
pub trait BulkRecord: Serialize + Send {
    /// `registrationId` or `enrollmentGroupId`.
    fn id(&self) -> &str;
    /// What is wrong with the record that the service would refuse, found without a call.
    fn check(&self) -> std::result::Result<(), String>;
    /// One bulk call.
    fn call(client: &ServiceClient, mode: BulkMode, items: &[Self]) -> Result<BulkResult>
    where
        Self: Sized;
}

/// How [`run`] sends the records.
#[derive(Debug, Clone)]
pub struct BulkOptions {
    /// What the operation does (`create`, `update`, `updateIfMatchETag`, `delete`).
    pub mode: BulkMode,
    /// Calls in flight at once (>= 1).
    pub in_flight: usize,
    /// Records per call (1..=10).
    pub chunk: usize,
    /// Retries of a call that got no answer or a 429/5xx.
    pub retries: u32,
    /// First delay between retries; doubled each time, at most 5 s.
    pub retry_delay: Duration,
    /// While no call has had an answer: how long after the first call without one the run gives up
    /// (the service cannot be reached: a closed port, a wrong host, an untrusted certificate).
    pub connect_grace: Duration,
    /// Set (e.g. by a SIGINT handler) to stop the run: nothing more is read or sent.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for BulkOptions {
    fn default() -> Self {
        BulkOptions {
            mode: BulkMode::Create,
            in_flight: 4,
            chunk: MAX_BULK,
            retries: 5,
            retry_delay: Duration::from_millis(200),
            connect_grace: Duration::from_secs(3),
            cancel: None,
        }
    }
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The service applied it.
    Done,
    /// `create` of a record the service already has (a re-run): not a failure.
    AlreadyExists,
    /// Not applied: refused by the service, by the local check, or its line unreadable.
    Failed {
        /// The service's error code, when the service refused it.
        code: Option<i64>,
        /// Why, in words.
        message: String,
    },
    /// Read, but the run was interrupted before it was sent.
    NotSent,
}

impl Outcome {
    /// The service acknowledged the record: it is there (or, for `delete`, gone).
    pub fn acknowledged(&self) -> bool {
        matches!(self, Outcome::Done | Outcome::AlreadyExists)
    }
}

/// The report of one record: its id (empty when the input line could not be read) and its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemReport {
    /// The record's id (empty when its input line could not be read).
    pub id: String,
    /// The input line it came from, if from a file.
    pub line: Option<u64>,
    /// What happened to it.
    pub outcome: Outcome,
}

/// What a [`run`] did: how many records ended how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkSummary {
    /// Records the service acknowledged.
    pub done: u64,
    /// Records a `create` found already there (a re-run): acknowledged, not failed.
    pub already_existed: u64,
    /// Records that failed (locally or at the service).
    pub failed: u64,
    /// Read but not sent: the run was interrupted.
    pub not_sent: u64,
    /// Bulk calls made, retries included.
    pub calls: u64,
    /// [`BulkOptions::cancel`] stopped the run before the end of the input.
    pub interrupted: bool,
}

impl BulkSummary {
    /// The records read: every one has exactly one report.
    pub fn total(&self) -> u64 {
        self.done + self.already_existed + self.failed + self.not_sent
    }

    fn add(&mut self, r: &ItemReport) {
        match r.outcome {
            Outcome::Done => self.done += 1,
            Outcome::AlreadyExists => self.already_existed += 1,
            Outcome::Failed { .. } => self.failed += 1,
            Outcome::NotSent => self.not_sent += 1,
        }
    }
}

/// A record and the input line it came from.
pub type Numbered<T> = (Option<u64>, T);

/// What the threads of one run share.
struct Shared<'a> {
    options: &'a BulkOptions,
    /// Some call has had an answer (any HTTP status).
    answered: AtomicBool,
    /// When the first call without an answer ended, while none had one.
    first_silence: Mutex<Option<Instant>>,
    /// Why the run stopped early (the service cannot be reached).
    /// The first call without an answer: its error with its causes, and why it had none.
    unreachable: Mutex<Option<(String, TransportKind)>>,
    stop: AtomicBool,
}

impl Shared<'_> {
    fn cancelled(&self) -> bool {
        self.options.cancel.as_ref().is_some_and(|c| c.load(Ordering::SeqCst))
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || self.cancelled()
    }

    /// A call ended without an answer: true when the run must stop (none ever had one, for too long).
    fn no_answer(&self, e: &Error) -> bool {
        if self.answered.load(Ordering::SeqCst) {
            return false;
        }
        let mut first = self.first_silence.lock().unwrap_or_else(PoisonError::into_inner);
        if first.get_or_insert_with(Instant::now).elapsed() < self.options.connect_grace {
            return false;
        }
        self.stop.store(true, Ordering::SeqCst);
        self.unreachable
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| (error_chain(e), e.transport_kind().unwrap_or(TransportKind::Io)));
        true
    }

    /// Wait `d` before a retry, or less when the run is stopping.
    fn pause(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stopping() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

/// Run `mode` over every record of `input`; `report` sees each record's outcome as its call ends (on
/// the calling thread). Input errors and records that fail [`BulkRecord::check`] are reported as failed
/// records, and the run goes on. `Err` only for bad options, or a service that never answered (the
/// records reported until then keep their reports).
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
    let shared = Shared {
        options,
        answered: AtomicBool::new(false),
        first_silence: Mutex::new(None),
        unreachable: Mutex::new(None),
        stop: AtomicBool::new(false),
    };
    let mut summary = BulkSummary::default();
    std::thread::scope(|s| {
        let (job_tx, job_rx) = sync_channel::<Vec<Numbered<T>>>(options.in_flight);
        let (res_tx, res_rx) = std::sync::mpsc::channel::<(u64, Vec<ItemReport>)>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        for _ in 0..options.in_flight {
            let (rx, tx, shared) = (Arc::clone(&job_rx), res_tx.clone(), &shared);
            s.spawn(move || worker(client, shared, &rx, &tx));
        }
        let shared = &shared;
        s.spawn(move || read_input(input, shared, &job_tx, &res_tx));
        // Every sender is owned by a thread: the loop ends when the input and all workers are done.
        for (calls, reports) in res_rx {
            summary.calls += calls;
            for r in &reports {
                summary.add(r);
                report(r);
            }
        }
    });
    summary.interrupted = shared.cancelled();
    if let Some(why) = shared.unreachable.into_inner().unwrap_or_else(PoisonError::into_inner) {
        let (first, kind) = why;
        return Err(Error::Transport {
            what: "bulk run".into(),
            message: format!(
                "no call had an answer within {:.1} s, so the run stopped ({} record(s) read, none acknowledged): {first}",
                options.connect_grace.as_secs_f64(),
                summary.total()
            ),
            kind,
            source: None,
        });
    }
    Ok(summary)
}

type Results = std::sync::mpsc::Sender<(u64, Vec<ItemReport>)>;

/// Records into calls of `chunk`; failed input lines and records straight to the results.
fn read_input<T: BulkRecord>(
    mut input: impl Iterator<Item = Result<Numbered<T>>>,
    shared: &Shared<'_>,
    jobs: &std::sync::mpsc::SyncSender<Vec<Numbered<T>>>,
    results: &Results,
) {
    let chunk_len = shared.options.chunk;
    let mut chunk = Vec::with_capacity(chunk_len);
    let failed = |id: &str, line, message| ItemReport {
        id: id.to_string(),
        line,
        outcome: Outcome::Failed { code: None, message },
    };
    while !shared.stopping() {
        let Some(item) = input.next() else { break };
        let r = match item {
            Ok(rec) => match rec.1.check() {
                Ok(()) => {
                    chunk.push(rec);
                    if chunk.len() == chunk_len
                        && jobs
                            .send(std::mem::replace(&mut chunk, Vec::with_capacity(chunk_len)))
                            .is_err()
                    {
                        return;
                    }
                    continue;
                }
                Err(m) => failed(rec.1.id(), rec.0, m),
            },
            // The report names the line; the message is what is wrong with it.
            Err(Error::Input { line, message, .. }) => failed("", Some(line), message),
            Err(e) => failed("", None, e.to_string()),
        };
        if results.send((0, vec![r])).is_err() {
            return;
        }
    }
    if shared.stopping() {
        let _ = results.send((0, not_sent(chunk)));
    } else if !chunk.is_empty() {
        let _ = jobs.send(chunk);
    }
}

fn not_sent<T: BulkRecord>(chunk: Vec<Numbered<T>>) -> Vec<ItemReport> {
    chunk
        .into_iter()
        .map(|(line, r)| ItemReport {
            id: r.id().to_string(),
            line,
            outcome: Outcome::NotSent,
        })
        .collect()
}

fn worker<T: BulkRecord>(
    client: &ServiceClient,
    shared: &Shared<'_>,
    jobs: &Mutex<Receiver<Vec<Numbered<T>>>>,
    results: &Results,
) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(chunk) = job else { return };
        let done = if shared.stopping() {
            (0, not_sent(chunk))
        } else {
            call_with_retries(client, shared, chunk)
        };
        if results.send(done).is_err() {
            return;
        }
    }
}

fn call_with_retries<T: BulkRecord>(
    client: &ServiceClient,
    shared: &Shared<'_>,
    chunk: Vec<Numbered<T>>,
) -> (u64, Vec<ItemReport>) {
    let options = shared.options;
    let (lines, records): (Vec<Option<u64>>, Vec<T>) = chunk.into_iter().unzip();
    let mut delay = options.retry_delay;
    let mut calls = 0;
    let answer = loop {
        calls += 1;
        let answer = T::call(client, options.mode, &records);
        if !matches!(answer, Err(Error::Transport { .. })) {
            shared.answered.store(true, Ordering::SeqCst);
        }
        match answer {
            Err(e) if e.is_transient() && calls <= u64::from(options.retries) => {
                if matches!(e, Error::Transport { .. }) && shared.no_answer(&e) || shared.stopping() {
                    break Err(e);
                }
                if shared.answered.load(Ordering::SeqCst) {
                    tracing::warn!(error = %e, attempt = calls, "bulk call failed, retrying");
                } else {
                    // Until the service has answered once, the stop after `connect_grace` says it all.
                    tracing::debug!(error = %e, attempt = calls, "bulk call failed, retrying");
                }
                shared.pause(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                if matches!(e, Error::Transport { .. }) {
                    shared.no_answer(&e);
                }
                break Err(e);
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
