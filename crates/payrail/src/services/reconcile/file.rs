//! Reading a bank or upstream statement: the formats payrail accepts, each
//! line checked, and every malformed line named (the file is then refused
//! whole: nothing is matched or written).
//!
//! - `csv` (the default): a header row naming at least the columns `utr`,
//!   `amount` (rupees, `1234.50`), `date` (`YYYY-MM-DD`, India time) and
//!   `status` (`success` or `returned`), and optionally `reference` (the
//!   upstream reference payrail sent). Other columns are ignored. A
//!   [`Columns`] mapping names the header of each column when the bank's
//!   differ (`utr=UTR No,amount=Amt,date=Value Date,status=Status`).
//! - `paysprint`: a Paysprint-style daily DMT report with the header
//!   `Txn ID,Ref ID,UTR,Amount,Status,Date`: `Ref ID` is the reference
//!   payrail sent, `Status` is `SUCCESS`, `REFUNDED` or `FAILED` (the last
//!   two read as returned), `Date` is `YYYY-MM-DD` or `YYYY-MM-DD HH:MM:SS`.

use std::collections::HashMap;
use std::io::Read;

use crate::domain::{Paise, Timestamp};

/// What the file says happened to a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BankState {
    /// Paid to the beneficiary.
    Success,
    /// Returned (failed, refunded) by the bank.
    Returned,
}

impl BankState {
    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            BankState::Success => "success",
            BankState::Returned => "returned",
        }
    }
}

/// One line of the file, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankLine {
    /// Its line number in the file (the header is line 1).
    pub line: u64,
    /// The bank's reference, if the line has one.
    pub utr: Option<String>,
    /// The upstream reference payrail sent, if the file has that column.
    pub reference: Option<String>,
    /// The amount.
    pub amount: Paise,
    /// The India-time day, as days since the unix epoch.
    pub day: i64,
    /// What happened.
    pub state: BankState,
}

/// A line the file cannot be read past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// Its line number.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The header names of the columns a `csv` file is read by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    utr: String,
    amount: String,
    date: String,
    status: String,
    reference: String,
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            utr: "utr".into(),
            amount: "amount".into(),
            date: "date".into(),
            status: "status".into(),
            reference: "reference".into(),
        }
    }
}

impl Columns {
    /// Reads `utr=UTR No,amount=Amt,…`: each named column's header; the
    /// ones not named keep their own name.
    pub fn parse(text: &str) -> Result<Columns, String> {
        let mut columns = Columns::default();
        for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
            let (key, header) = pair.split_once('=').ok_or_else(|| format!("columns: {pair:?} is not name=Header"))?;
            let header = header.trim().to_owned();
            if header.is_empty() {
                return Err(format!("columns: {key} has no header name"));
            }
            match key.trim() {
                "utr" => columns.utr = header,
                "amount" => columns.amount = header,
                "date" => columns.date = header,
                "status" => columns.status = header,
                "reference" => columns.reference = header,
                other => return Err(format!("columns: {other:?} is not utr, amount, date, status or reference")),
            }
        }
        Ok(columns)
    }
}

/// A file format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileFormat {
    /// CSV with the given column headers.
    Csv(Columns),
    /// The Paysprint-style daily report.
    Paysprint,
}

impl FileFormat {
    /// The format called `name` (`csv`, `paysprint`), with `columns` for `csv`.
    pub fn parse(name: &str, columns: Option<&str>) -> Result<FileFormat, String> {
        match (name, columns) {
            ("csv", None) => Ok(FileFormat::Csv(Columns::default())),
            ("csv", Some(columns)) => Ok(FileFormat::Csv(Columns::parse(columns)?)),
            ("paysprint", None) => Ok(FileFormat::Paysprint),
            ("paysprint", Some(_)) => Err("columns: only the csv format takes a column mapping".into()),
            (other, _) => Err(format!("format: {other:?} is not csv or paysprint")),
        }
    }
}

/// Where each field is in a line, found from the header.
struct Layout {
    width: usize,
    utr: usize,
    amount: usize,
    date: usize,
    status: usize,
    reference: Option<usize>,
    paysprint: bool,
}

impl Layout {
    fn from_header(format: &FileFormat, header: &csv::StringRecord) -> Result<Layout, String> {
        let index: HashMap<String, usize> =
            header.iter().enumerate().map(|(i, name)| (name.trim().to_ascii_lowercase(), i)).collect();
        let find = |name: &str| {
            index.get(&name.to_ascii_lowercase()).copied().ok_or_else(|| format!("the header has no {name:?} column"))
        };
        let width = header.len();
        match format {
            FileFormat::Csv(c) => Ok(Layout {
                width,
                utr: find(&c.utr)?,
                amount: find(&c.amount)?,
                date: find(&c.date)?,
                status: find(&c.status)?,
                reference: index.get(&c.reference.to_ascii_lowercase()).copied(),
                paysprint: false,
            }),
            FileFormat::Paysprint => {
                find("Txn ID")?;
                Ok(Layout {
                    width,
                    utr: find("UTR")?,
                    amount: find("Amount")?,
                    date: find("Date")?,
                    status: find("Status")?,
                    reference: Some(find("Ref ID")?),
                    paysprint: true,
                })
            }
        }
    }

    fn read(&self, record: &csv::StringRecord, only_day: Option<i64>) -> Result<BankLine, String> {
        if record.len() != self.width {
            return Err(format!("expected {} fields as the header has, found {}", self.width, record.len()));
        }
        let field = |at: usize| record.get(at).unwrap_or_default().trim();
        let utr = optional(field(self.utr));
        let reference = self.reference.and_then(|at| optional(field(at)));
        if let Some(utr) = &utr {
            if utr.len() > 35 || !utr.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!("utr: {utr:?} must be up to 35 letters and digits"));
            }
        }
        if utr.is_none() && reference.is_none() {
            return Err("utr: empty (a line needs a UTR or a reference)".into());
        }
        let amount = match Paise::parse(field(self.amount)) {
            Ok(amount) if amount > Paise::ZERO => amount,
            _ => return Err(format!("amount: {:?} must be rupees above zero, like 1234.50", field(self.amount))),
        };
        let day = self.day(field(self.date))?;
        if let Some(only) = only_day {
            if day != only {
                return Err(format!("date: {} is not the date reconciled", field(self.date)));
            }
        }
        let state = self.state(field(self.status))?;
        Ok(BankLine { line: 0, utr, reference, amount, day, state })
    }

    fn day(&self, text: &str) -> Result<i64, String> {
        let date = if self.paysprint && text.len() == 19 { &text[..10] } else { text };
        day_of(date).ok_or_else(|| format!("date: {text:?} must be a date as YYYY-MM-DD"))
    }

    fn state(&self, text: &str) -> Result<BankState, String> {
        let state = if self.paysprint {
            match text {
                "SUCCESS" => Some(BankState::Success),
                "REFUNDED" | "FAILED" => Some(BankState::Returned),
                _ => None,
            }
        } else {
            match text.to_ascii_lowercase().as_str() {
                "success" => Some(BankState::Success),
                "returned" => Some(BankState::Returned),
                _ => None,
            }
        };
        let expected = if self.paysprint { "SUCCESS, REFUNDED or FAILED" } else { "success or returned" };
        state.ok_or_else(|| format!("status: {text:?} must be {expected}"))
    }
}

fn optional(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// The India-time day of `YYYY-MM-DD`, as days since the unix epoch.
pub fn day_of(date: &str) -> Option<i64> {
    let midnight = Timestamp::parse_ist_date(date).ok()?;
    Some(day_number(midnight))
}

/// The India-time day an instant falls on, as days since the unix epoch.
pub fn day_number(at: Timestamp) -> i64 {
    (at.unix() + IST_OFFSET).div_euclid(86_400)
}

/// Midnight India time at the start of `day`.
pub fn day_start(day: i64) -> Timestamp {
    Timestamp::from_unix(day * 86_400 - IST_OFFSET)
}

const IST_OFFSET: i64 = 5 * 3600 + 30 * 60;

/// Reads every line of `input` in `format`; only lines dated `only_day`
/// when it is given. A UTR or reference on two lines is refused too (a
/// transfer is reconciled against one line). All or nothing: any error,
/// and the file's malformed lines come back, each with its number.
pub fn read_lines(
    input: impl Read,
    format: &FileFormat,
    only_day: Option<i64>,
) -> Result<Vec<BankLine>, Vec<LineError>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(input);
    let mut record = csv::StringRecord::new();
    let mut errors = Vec::new();
    let header = match reader.read_record(&mut record) {
        Ok(true) => Layout::from_header(format, &record),
        Ok(false) => Err("the file is empty (a header row is required)".into()),
        Err(e) => Err(e.to_string()),
    };
    let layout = header.map_err(|message| vec![LineError { line: 1, message }])?;
    let mut lines = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    loop {
        let line = reader.position().line() + 1;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                errors.push(LineError { line, message: format!("not CSV: {e}") });
                break;
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        match layout.read(&record, only_day) {
            Ok(mut read) => {
                read.line = line;
                for key in [
                    read.utr.as_ref().map(|u| format!("UTR {u}")),
                    read.reference.as_ref().map(|r| format!("reference {r}")),
                ]
                .into_iter()
                .flatten()
                {
                    if let Some(first) = seen.insert(key.clone(), line) {
                        errors.push(LineError { line, message: format!("{key} is already on line {first}") });
                    }
                }
                lines.push(read);
            }
            Err(message) => errors.push(LineError { line, message }),
        }
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, format: &FileFormat) -> Result<Vec<BankLine>, Vec<LineError>> {
        read_lines(text.as_bytes(), format, None)
    }

    #[test]
    fn a_default_csv_reads_every_field_and_numbers_the_lines() {
        let lines = read(
            "utr,amount,date,status\nU1,1234.50,2026-12-03,success\nU2,10,2026-12-03,RETURNED\n",
            &FileFormat::Csv(Columns::default()),
        )
        .expect("read");
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].line, lines[0].amount, lines[0].state), (2, Paise::new(123_450), BankState::Success));
        assert_eq!((lines[1].line, lines[1].state, lines[1].reference.clone()), (3, BankState::Returned, None));
        assert_eq!(lines[0].day, day_of("2026-12-03").expect("day"));
    }

    #[test]
    fn mapped_columns_and_the_paysprint_report_are_read_by_their_headers() {
        let columns =
            FileFormat::parse("csv", Some("utr=UTR No,amount=Amt,date=Value Date,status=Status")).expect("columns");
        let lines = read("Value Date,Amt,UTR No,Status\n2026-12-03,5,U9,success\n", &columns).expect("read");
        assert_eq!(lines[0].utr.as_deref(), Some("U9"));
        let paysprint = "Txn ID,Ref ID,UTR,Amount,Status,Date\nPS1,PRD1X,U1,100.00,REFUNDED,2026-12-03 10:00:00\n";
        let lines = read(paysprint, &FileFormat::Paysprint).expect("read");
        assert_eq!((lines[0].reference.as_deref(), lines[0].state), (Some("PRD1X"), BankState::Returned));
    }

    #[test]
    fn every_malformed_line_is_named() {
        let text = "utr,amount,date,status\nU1,12.345,2026-12-03,success\nU2,5,2026-13-01,success\nU3,5,2026-12-03,paid\nU4,5\nU5,0,2026-12-03,success\nU6,5,2026-12-03,success\nU6,6,2026-12-03,success\n";
        let errors = read(text, &FileFormat::Csv(Columns::default())).expect_err("refused");
        let named: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(named, vec![2, 3, 4, 5, 6, 8], "{errors:?}");
        assert!(errors[0].to_string().starts_with("line 2: amount:"), "{}", errors[0]);
        assert!(errors[5].to_string().contains("already on line 7"), "{}", errors[5]);
        let missing = read("utr,amount,date\n", &FileFormat::Csv(Columns::default())).expect_err("no status column");
        assert_eq!(missing[0].line, 1);
        assert!(FileFormat::parse("xml", None).is_err());
        assert!(FileFormat::parse("csv", Some("utr")).is_err());
    }
}
