//! The bulk input readers (dps-service): CSV and JSON lines over any bytes never panic, and every line
//! that is not blank comes out as exactly one item (a record or a failure naming that line), in order:
//! a bad line never takes the lines after it (issue 21, item 7).
#![no_main]

use dps_service::input::{CsvEnrollments, JsonLines};
use dps_service::{Error, IndividualEnrollment};
use libfuzzer_sys::fuzz_target;

/// The numbers of the lines that are not blank, counted independently of the readers.
fn non_blank_lines(data: &[u8]) -> Vec<u64> {
    let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if data.ends_with(b"\n") {
        lines.pop();
    }
    (1..)
        .zip(lines)
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .map(|(n, _)| n)
        .collect()
}

fn line_of<T>(item: &dps_service::Result<(Option<u64>, T)>) -> u64 {
    match item {
        Ok((Some(n), _)) => *n,
        Err(Error::Input { line, .. }) => *line,
        _ => panic!("an item without its line"),
    }
}

fuzz_target!(|data: &[u8]| {
    let expected = non_blank_lines(data);
    let json: Vec<u64> = JsonLines::<_, IndividualEnrollment>::new(data, "fuzz.jsonl")
        .map(|i| line_of(&i))
        .collect();
    assert_eq!(json, expected);
    if let Ok(rows) = CsvEnrollments::new(data, "fuzz.csv") {
        let csv: Vec<u64> = rows.map(|i| line_of(&i)).collect();
        assert_eq!(csv, expected[1..]);
    }
});
