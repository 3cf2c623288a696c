//! `payrail import`: transactions from a CSV or JSON Lines file, all or
//! nothing. Every row is checked before anything is written; the first bad
//! row stops the import with its line number. Columns are named in a header
//! (CSV) or as object keys (JSON Lines); an unknown column is an error, so a
//! misspelt one cannot drop data silently.
//!
//! DMT columns: `reference_id`, `amount`, `account` (required); `status`
//! (a name such as `sent_to_bank`, or a code `0`–`5`; default `in_process`),
//! `utr` (required for `success`), `customer_charge`, `provider_share`,
//! `created_at` (India time `YYYY-MM-DD HH:MM:SS`), `refund_txn_id` and
//! `refunded_at` (both required for `refunded`). A `created_at` in the
//! future, a `refunded_at` before `created_at`, and text with control or
//! bidirectional-override characters are refused.
//!
//! BBPS columns: `reference_id`, `operator_name`, `ca_number`, `amount`
//! (required); `ad1`, `ad2`, `ad3`, `commission`, `status` (`pending`,
//! `success`, `failed`, `refunded`; default `pending`), `operator_id`,
//! `created_at`, `refund_txn_id`, `refunded_at`.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::Arc;

use async_trait::async_trait;

use super::transactions::{NewBill, NewDmt};
use crate::domain::text::check_text;
use crate::domain::{
    BillPayment, BillStatus, ChangeSource, Clock, DmtStatus, DmtTransfer, Paise, ReferenceId, RegistrationId,
    Timestamp, TxnKind,
};
use crate::store::transactions::{self, StoredKind};
use crate::store::{ChangeNote, InsertError, LedgerStore, PartnerStore, Store};

/// Why a file was not imported. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A row is wrong; `line` is 1-based in the file.
    #[error("line {line}: {message}; nothing was imported")]
    BadLine {
        /// The line in the file.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The file as a whole is wrong (empty, unreadable).
    #[error("{0}")]
    BadFile(String),
    /// The store refused the batch or could not be reached; nothing was
    /// imported, since the rows are inserted all together or not at all.
    #[error("the store failed; nothing was imported: {0}")]
    Store(#[source] anyhow::Error),
}

/// One row: its line and its named values (absent or empty values are missing).
struct Row {
    line: u64,
    values: HashMap<String, String>,
}

impl Row {
    fn bad(&self, message: impl Display) -> ImportError {
        ImportError::BadLine { line: self.line, message: message.to_string() }
    }

    fn optional(&self, column: &str) -> Option<String> {
        self.values.get(column).filter(|v| !v.is_empty()).cloned()
    }

    fn required(&self, column: &str) -> Result<String, ImportError> {
        self.optional(column).ok_or_else(|| self.bad(format!("{column} is missing")))
    }

    fn parsed<T, E: Display>(
        &self,
        column: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Result<Option<T>, ImportError> {
        self.optional(column).map(|v| parse(&v).map_err(|e| self.bad(format!("{column} {e}")))).transpose()
    }

    fn money(&self, column: &str) -> Result<Option<Paise>, ImportError> {
        self.parsed(column, Paise::parse)
    }

    fn time(&self, column: &str) -> Result<Option<Timestamp>, ImportError> {
        self.parsed(column, Timestamp::parse_ist)
    }

    fn reference(&self) -> Result<ReferenceId, ImportError> {
        let text = self.required("reference_id")?;
        ReferenceId::parse(&text).map_err(|e| self.bad(format!("reference_id {e}")))
    }

    fn text(&self, column: &str, max: usize) -> Result<Option<String>, ImportError> {
        self.parsed(column, |v| {
            check_text(v).map_err(|e| e.to_string())?;
            if v.chars().count() > max {
                Err(format!("is longer than {max} characters"))
            } else {
                Ok(v.to_owned())
            }
        })
    }

    /// Refuses a `created_at` after `now` and a `refunded_at` before `created_at`.
    fn check_times(
        &self,
        created_at: Option<Timestamp>,
        refunded_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), ImportError> {
        if created_at.is_some_and(|at| at > now) {
            return Err(self.bad("created_at is in the future"));
        }
        if let (Some(created), Some(refunded)) = (created_at, refunded_at) {
            if refunded < created {
                return Err(self.bad("refunded_at is before created_at"));
            }
        }
        Ok(())
    }

    fn required_text(&self, column: &str, max: usize) -> Result<String, ImportError> {
        self.text(column, max)?.ok_or_else(|| self.bad(format!("{column} is missing")))
    }
}

const DMT_COLUMNS: &[&str] = &[
    "reference_id",
    "amount",
    "account",
    "status",
    "utr",
    "customer_charge",
    "provider_share",
    "created_at",
    "refund_txn_id",
    "refunded_at",
];

const BILL_COLUMNS: &[&str] = &[
    "reference_id",
    "operator_name",
    "ca_number",
    "amount",
    "ad1",
    "ad2",
    "ad3",
    "commission",
    "status",
    "operator_id",
    "created_at",
    "refund_txn_id",
    "refunded_at",
];

/// Reads `text` as JSON Lines if its first non-blank character is `{`, else as CSV.
fn read_rows(text: &str, columns: &[&str]) -> Result<Vec<Row>, ImportError> {
    let rows = if text.trim_start().starts_with('{') { read_json_lines(text)? } else { read_csv(text)? };
    if rows.is_empty() {
        return Err(ImportError::BadFile("the file holds no rows".into()));
    }
    for row in &rows {
        if let Some(unknown) = row.values.keys().find(|k| !columns.contains(&k.as_str())) {
            return Err(row.bad(format!("unknown column {unknown:?} (known: {})", columns.join(", "))));
        }
    }
    Ok(rows)
}

fn read_csv(text: &str) -> Result<Vec<Row>, ImportError> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| ImportError::BadFile(format!("line 1: {e}")))?.clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            ImportError::BadLine { line, message: e.to_string() }
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let values = headers.iter().zip(record.iter()).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        rows.push(Row { line, values });
    }
    Ok(rows)
}

fn read_json_lines(text: &str) -> Result<Vec<Row>, ImportError> {
    let mut rows = Vec::new();
    for (index, line_text) in text.lines().enumerate() {
        let line = index as u64 + 1;
        if line_text.trim().is_empty() {
            continue;
        }
        let bad = |message: String| ImportError::BadLine { line, message };
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line_text).map_err(|e| bad(format!("not a JSON object: {e}")))?;
        let mut values = HashMap::new();
        for (key, value) in object {
            let text = match value {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                other => return Err(bad(format!("{key} must be a string or a number, not {other}"))),
            };
            values.insert(key, text);
        }
        rows.push(Row { line, values });
    }
    Ok(rows)
}

fn check_unique(rows: &[Row], reference: impl Fn(&Row) -> &str) -> Result<(), ImportError> {
    let mut seen: HashMap<&str, u64> = HashMap::new();
    for row in rows {
        if let Some(first) = seen.insert(reference(row), row.line) {
            return Err(row.bad(format!("reference {:?} repeats line {first}", reference(row))));
        }
    }
    Ok(())
}

fn dmt_from_row(row: &Row, partner: RegistrationId, now: Timestamp) -> Result<NewDmt, ImportError> {
    let status = match row.optional("status") {
        Some(s) => DmtStatus::parse(&s).ok_or_else(|| row.bad(format!("status {s:?} is not a DMT state")))?,
        None => DmtStatus::InProcess,
    };
    let amount = row.money("amount")?.ok_or_else(|| row.bad("amount is missing"))?;
    if amount == Paise::ZERO {
        return Err(row.bad("amount must be more than zero"));
    }
    let new = NewDmt {
        ackno: None,
        partner,
        reference: row.reference()?,
        amount,
        account: account_number(row)?,
        status,
        utr: row.text("utr", 64)?,
        customer_charge: row.money("customer_charge")?,
        provider_share: row.money("provider_share")?,
        created_at: row.time("created_at")?,
        refund_txn_id: row.text("refund_txn_id", 64)?,
        refunded_at: row.time("refunded_at")?,
    };
    row.check_times(new.created_at, new.refunded_at, now)?;
    if status == DmtStatus::Success && new.utr.is_none() {
        return Err(row.bad("utr is required for a successful transfer"));
    }
    if status == DmtStatus::Refunded && (new.refund_txn_id.is_none() || new.refunded_at.is_none()) {
        return Err(row.bad("refund_txn_id and refunded_at are required for a refunded transfer"));
    }
    Ok(new)
}

fn account_number(row: &Row) -> Result<String, ImportError> {
    let account = row.required("account")?;
    if !(6..=20).contains(&account.len()) || !account.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(row.bad("account must be 6 to 20 letters or digits"));
    }
    Ok(account)
}

fn bill_from_row(row: &Row, partner: RegistrationId, now: Timestamp) -> Result<NewBill, ImportError> {
    let status = match row.optional("status") {
        Some(s) => BillStatus::parse(&s).ok_or_else(|| row.bad(format!("status {s:?} is not a bill payment state")))?,
        None => BillStatus::Pending,
    };
    let amount = row.money("amount")?.ok_or_else(|| row.bad("amount is missing"))?;
    if amount == Paise::ZERO {
        return Err(row.bad("amount must be more than zero"));
    }
    let new = NewBill {
        txnid: None,
        partner,
        reference: row.reference()?,
        operator_name: row.required_text("operator_name", 128)?,
        ca_number: row.required_text("ca_number", 64)?,
        amount,
        extra: [row.text("ad1", 128)?, row.text("ad2", 128)?, row.text("ad3", 128)?],
        commission: row.money("commission")?,
        status,
        operator_ref: row.text("operator_id", 64)?,
        created_at: row.time("created_at")?,
        refund_txn_id: row.text("refund_txn_id", 64)?,
        refunded_at: row.time("refunded_at")?,
    };
    row.check_times(new.created_at, new.refunded_at, now)?;
    if status == BillStatus::Refunded && (new.refund_txn_id.is_none() || new.refunded_at.is_none()) {
        return Err(row.bad("refund_txn_id and refunded_at are required for a refunded payment"));
    }
    Ok(new)
}

/// Maps a store refusal of row `index` back to its line.
fn insert_error(error: InsertError, rows: &[Row]) -> ImportError {
    let line_of = |index: usize| rows.get(index).map(|r| r.line).unwrap_or(0);
    match error {
        InsertError::Duplicate { index, reference } => ImportError::BadLine {
            line: line_of(index),
            message: format!("reference {reference:?} already exists for this partner"),
        },
        InsertError::UnknownPartner { partner, .. } => ImportError::BadFile(format!("no partner {partner}")),
        InsertError::Store(e) => ImportError::Store(e.into()),
    }
}

/// A progress callback: rows written so far, of how many.
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

async fn ensure_partner(store: &dyn PartnerStore, partner: RegistrationId) -> Result<(), ImportError> {
    match store.find_partner(partner).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ImportError::BadFile(format!("no partner {partner}"))),
        Err(e) => Err(ImportError::Store(e.into())),
    }
}

/// The store's progress callback (rows written so far) reporting to `progress`.
fn per_row(progress: Progress, total: usize) -> transactions::Progress {
    Arc::new(move |done| progress(done, total as u64))
}

/// Imports records of `kind` for `partner` from `text`, all together or
/// none; returns how many.
pub async fn import(
    store: &dyn Store,
    clock: &dyn Clock,
    kind: TxnKind,
    partner: RegistrationId,
    text: &str,
    progress: Progress,
) -> Result<usize, ImportError> {
    match kind {
        TxnKind::Dmt => import_kind::<DmtTransfer>(store, clock, partner, text, progress).await,
        TxnKind::Bbps => import_kind::<BillPayment>(store, clock, partner, text, progress).await,
    }
}

/// One kind of record as an import reads and writes it.
#[async_trait]
trait Imported: StoredKind {
    /// The columns of its file.
    const COLUMNS: &'static [&'static str];

    /// The records `rows` describe, in order. A transfer is priced by the
    /// partner's plan in force at its `created_at`.
    async fn records(
        store: &dyn LedgerStore,
        partner: RegistrationId,
        rows: &[Row],
        now: Timestamp,
    ) -> Result<Vec<Self>, ImportError>;
}

#[async_trait]
impl Imported for DmtTransfer {
    const COLUMNS: &'static [&'static str] = DMT_COLUMNS;

    async fn records(
        store: &dyn LedgerStore,
        partner: RegistrationId,
        rows: &[Row],
        now: Timestamp,
    ) -> Result<Vec<Self>, ImportError> {
        let versions = store.fee_plans(partner).await.map_err(|e| ImportError::Store(e.into()))?;
        rows.iter().map(|r| dmt_from_row(r, partner, now).map(|n| n.priced_by(&versions, now))).collect()
    }
}

#[async_trait]
impl Imported for BillPayment {
    const COLUMNS: &'static [&'static str] = BILL_COLUMNS;

    async fn records(
        _: &dyn LedgerStore,
        partner: RegistrationId,
        rows: &[Row],
        now: Timestamp,
    ) -> Result<Vec<Self>, ImportError> {
        rows.iter().map(|r| bill_from_row(r, partner, now).map(|n| n.into_payment(now))).collect()
    }
}

/// Reads the file, checks every row and its reference's uniqueness, and
/// inserts the records all together; returns how many.
async fn import_kind<T: Imported>(
    store: &dyn Store,
    clock: &dyn Clock,
    partner: RegistrationId,
    text: &str,
    progress: Progress,
) -> Result<usize, ImportError> {
    ensure_partner(store, partner).await?;
    let rows = read_rows(text, T::COLUMNS)?;
    let now = clock.now();
    let records = T::records(store, partner, &rows, now).await?;
    check_unique(&rows, |r| r.values.get("reference_id").map(String::as_str).unwrap_or(""))?;
    let note = ChangeNote { source: ChangeSource::Import, reason: None, at: now };
    let count = records.len();
    T::insert_in(store, records, note, per_row(progress, count)).await.map_err(|e| insert_error(e, &rows))?;
    Ok(count)
}
