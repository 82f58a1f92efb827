//! `hsmctl enrollment bulk`: many enrollments from a CSV or JSON-lines file through
//! `dps_service::bulk`. On a terminal, a progress bar with the total (the file's records, counted first
//! in one bounded pass) and an ETA; failures always get a line, "already exists" unless `--quiet`;
//! `--report FILE` writes one JSON line per record. Ctrl-C stops reading and sending, waits for the
//! calls in flight, prints what was acknowledged and exits 130 (a second Ctrl-C exits at once).

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use dps_service::bulk::{self, BulkOptions, BulkSummary, ItemReport, Outcome};
use dps_service::input::{Format, JsonLines};
use dps_service::{BulkMode, EnrollmentGroup};
use serde_json::{Map, Value, json};

use crate::CliError;
use crate::dps::shown;
use crate::service::{ServiceArgs, client, svc};

/// The exit status after Ctrl-C (128 + SIGINT), as shells report it.
const INTERRUPTED: i32 = 130;
/// How long the record count for the progress total may take before the bar goes without one.
const COUNT_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Create,
    Update,
    UpdateIfMatchEtag,
    Delete,
}

impl From<ModeArg> for BulkMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Create => BulkMode::Create,
            ModeArg::Update => BulkMode::Update,
            ModeArg::UpdateIfMatchEtag => BulkMode::UpdateIfMatchETag,
            ModeArg::Delete => BulkMode::Delete,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Csv,
    Jsonl,
}

#[derive(Args)]
pub struct BulkArgs {
    /// The records, one a line: CSV (header row; see the dps-service README) or JSON lines.
    file: PathBuf,
    /// Default: from the file name (.csv is CSV, anything else JSON lines).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    #[arg(long, value_enum, default_value = "create")]
    mode: ModeArg,
    /// Bulk calls in flight at once.
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// The file holds enrollment groups (JSON lines only).
    #[arg(long)]
    groups: bool,
    /// Retries of a call that got no answer (or 429/5xx).
    #[arg(long, default_value_t = 5)]
    retries: u32,
    /// No line for records that already exist (failures are still listed).
    #[arg(long, short)]
    quiet: bool,
    /// Write one JSON line per record to this file: line, id, outcome (done, alreadyExists, failed,
    /// notSent) and error.
    #[arg(long)]
    report: Option<PathBuf>,
    #[command(flatten)]
    service: ServiceArgs,
}

pub fn run(a: BulkArgs) -> Result<(), CliError> {
    let c = client(&a.service)?;
    let format = match a.format {
        Some(FormatArg::Csv) => Format::Csv,
        Some(FormatArg::Jsonl) => Format::JsonLines,
        None => Format::from_path(&a.file),
    };
    if a.groups && format == Format::Csv {
        return Err(CliError::Usage(
            "enrollment groups are read from JSON lines only".into(),
        ));
    }
    let cancel = Arc::new(AtomicBool::new(false));
    for register in [
        // A second Ctrl-C (the flag already set) exits at once; the first only sets the flag.
        signal_hook::flag::register_conditional_shutdown(signal_hook::consts::SIGINT, INTERRUPTED, Arc::clone(&cancel)),
        signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&cancel)),
    ] {
        register.map_err(|e| CliError::Usage(format!("installing the Ctrl-C handler: {e}")))?;
    }
    let options = BulkOptions {
        mode: a.mode.into(),
        in_flight: a.in_flight,
        retries: a.retries,
        cancel: Some(cancel),
        ..BulkOptions::default()
    };
    let report = match &a.report {
        Some(p) => Some(ReportFile::create(p, a.groups)?),
        None => None,
    };
    let bar = progress_bar(&a, format);
    let mut out = Reporter {
        bar,
        quiet: a.quiet,
        report,
        last_line: 0,
    };
    let start = Instant::now();
    let summary = if a.groups {
        let f = std::fs::File::open(&a.file).map_err(|e| CliError::Usage(format!("{}: {e}", a.file.display())))?;
        let input = JsonLines::<_, EnrollmentGroup>::new(std::io::BufReader::new(f), a.file.display().to_string());
        bulk::run(&c, input, &options, |r| out.item(r))
    } else {
        let input = dps_service::input::enrollments_from_file(&a.file, format).map_err(svc)?;
        bulk::run(&c, input, &options, |r| out.item(r))
    };
    out.finish()?;
    let summary = summary.map_err(svc)?;
    print_summary(&summary, start.elapsed(), out.last_line);
    if summary.interrupted {
        std::process::exit(INTERRUPTED);
    }
    if summary.failed > 0 {
        return Err(CliError::Usage(format!(
            "{} record(s) failed (listed above)",
            summary.failed
        )));
    }
    Ok(())
}

fn print_summary(s: &BulkSummary, took: Duration, last_line: u64) {
    let secs = took.as_secs_f64();
    let rate = s.total() as f64 / secs.max(1e-9);
    if s.interrupted {
        eprintln!(
            "interrupted: {} records acknowledged ({} done, {} already existed), {} failed, {} read but not sent; \
             input read to line {last_line} in {secs:.1}s. Run the same file again to finish: what was made \
             reports \"already exists\".",
            s.done + s.already_existed,
            s.done,
            s.already_existed,
            s.failed,
            s.not_sent,
        );
    } else {
        eprintln!(
            "{} records: {} done, {} already existed, {} failed; {} calls in {secs:.1}s ({rate:.0} records/s)",
            s.total(),
            s.done,
            s.already_existed,
            s.failed,
            s.calls,
        );
    }
}

/// On a terminal: a bar with the total when the file can be counted in time, a counter otherwise.
fn progress_bar(a: &BulkArgs, format: Format) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let total = dps_service::input::count_records(&a.file, format, Some(Instant::now() + COUNT_DEADLINE))
        .ok()
        .flatten();
    let rate = |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = write!(w, "{:.0} records/s", s.per_sec());
    };
    let (bar, template) = match total {
        Some(n) => (
            indicatif::ProgressBar::new(n),
            "{wide_bar} {pos}/{len} records ({percent}%), {rate}, ETA {eta}",
        ),
        None => (indicatif::ProgressBar::new_spinner(), "{spinner} {pos} records, {rate}"),
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.with_key("rate", rate));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

/// `--report`: one JSON object a line, flushed per record so that an interrupted run leaves every
/// record it reported.
struct ReportFile {
    path: PathBuf,
    out: std::io::LineWriter<std::fs::File>,
    id_key: &'static str,
    error: Option<std::io::Error>,
}

impl ReportFile {
    fn create(path: &std::path::Path, groups: bool) -> Result<Self, CliError> {
        let f = std::fs::File::create(path)
            .map_err(|e| CliError::Usage(format!("creating the report {}: {e}", path.display())))?;
        Ok(ReportFile {
            path: path.to_path_buf(),
            out: std::io::LineWriter::new(f),
            id_key: if groups { "enrollmentGroupId" } else { "registrationId" },
            error: None,
        })
    }

    fn write(&mut self, r: &ItemReport) {
        if self.error.is_some() {
            return;
        }
        let mut o = Map::new();
        o.insert("line".into(), json!(r.line));
        if !r.id.is_empty() {
            o.insert(self.id_key.into(), json!(r.id));
        }
        let outcome = match &r.outcome {
            Outcome::Done => "done",
            Outcome::AlreadyExists => "alreadyExists",
            Outcome::Failed { .. } => "failed",
            Outcome::NotSent => "notSent",
        };
        o.insert("outcome".into(), json!(outcome));
        if let Outcome::Failed { code, message } = &r.outcome {
            o.insert("error".into(), json!(message));
            if let Some(c) = code {
                o.insert("errorCode".into(), json!(c));
            }
        }
        if let Err(e) = writeln!(self.out, "{}", Value::Object(o)) {
            self.error = Some(e);
        }
    }

    fn finish(mut self) -> Result<(), CliError> {
        match self.error.take().map_or_else(|| self.out.flush(), Err) {
            Ok(()) => Ok(()),
            Err(e) => Err(CliError::Usage(format!(
                "writing the report {}: {e}",
                self.path.display()
            ))),
        }
    }
}

/// Per-record lines for failures (and "already exists" unless quiet), the bar, the report file.
struct Reporter {
    bar: Option<indicatif::ProgressBar>,
    quiet: bool,
    report: Option<ReportFile>,
    /// The last input line reported (where an interrupted run got to).
    last_line: u64,
}

impl Reporter {
    fn item(&mut self, r: &ItemReport) {
        let line = match &r.outcome {
            Outcome::Done | Outcome::NotSent => None,
            Outcome::AlreadyExists if self.quiet => None,
            Outcome::AlreadyExists => Some(format!("{}: already exists", name(r))),
            Outcome::Failed { code, message } => Some(format!(
                "{}: failed: {}{}",
                name(r),
                shown(message),
                code.map(|c| format!(" (errorCode {c})")).unwrap_or_default()
            )),
        };
        match (&self.bar, line) {
            (Some(b), Some(l)) => b.println(l),
            (None, Some(l)) => eprintln!("{l}"),
            _ => {}
        }
        if let Some(b) = &self.bar {
            b.inc(1);
        }
        if let Some(f) = &mut self.report {
            f.write(r);
        }
        self.last_line = self.last_line.max(r.line.unwrap_or(0));
    }

    fn finish(&mut self) -> Result<(), CliError> {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        self.report.take().map_or(Ok(()), ReportFile::finish)
    }
}

fn name(r: &ItemReport) -> String {
    match (r.id.is_empty(), r.line) {
        (false, Some(l)) => format!("{} (line {l})", shown(&r.id)),
        (false, None) => shown(&r.id),
        (true, Some(l)) => format!("line {l}"),
        (true, None) => "input".into(),
    }
}
