//! Reconciliation of DMT transfers against a bank or upstream statement
//! (issue 15, item 5): `payrail reconcile`, `POST /admin/v1/reconciliations`
//! and the console's reconcile page all run [`reconcile`].
//!
//! The file is read whole first ([`file::read_lines`]; one malformed line
//! and it is refused, nothing matched or written). The transfers made from
//! three days before the first day the file covers to the day after the
//! last are loaded in one query and indexed by upstream reference and UTR;
//! each line is matched by its reference when it has one that payrail
//! knows, else by its UTR, then its amount and state compared. Transfers
//! paid (success, with a UTR) on a day the file covers that no line matched
//! are "in payrail only". Matched lines are counted, not listed.
//!
//! With `hold`, each mismatched transfer is put on hold for review with the
//! reason `reconciliation: <what differs> (file F line N)` when the state
//! machine allows it (from in process or sent to bank). A transfer that is
//! paid, failed or refunded may not be held (success → on hold is not a
//! transition payrail has): for those the finding and the reason are
//! written to the audit log (`reconcile.note`, target `dmt:<ackno>`), never
//! a forced transition. Running the same file again writes nothing more: a
//! transfer already on hold is left alone, and a note whose difference is
//! already in the transfer's audit log is not written again. Two runs at
//! the same moment cannot hold a transfer twice (the state machine refuses
//! on hold → on hold, and the loser sees it held), nor note it twice (the
//! store checks and appends a note as one step,
//! [`crate::store::OperatorStore::append_audit_once`]).

pub mod file;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::domain::dmt::DmtChange;
use crate::domain::operator::{Actor, NewAuditEntry};
use crate::domain::{ChangeSource, Clock, DmtStatus, DmtTransfer, Paise, RegistrationId};
use crate::services::transactions;
use crate::store::reconcile::Candidate;
use crate::store::{ChangeError, Store, StoreError};
pub use file::{BankLine, BankState, Columns, FileFormat, LineError};

/// Days before the first day the file covers whose transfers may be on it
/// (a transfer made late on one day is often paid on a later one).
const DAYS_BEFORE: i64 = 3;

/// What a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Same transfer, amount and state.
    Matched,
    /// Same transfer, another amount.
    AmountMismatch,
    /// Same transfer and amount, another state.
    StateMismatch,
    /// Paid here on a day the file covers, not in the file.
    PayrailOnly,
    /// In the file, not a transfer payrail knows (or one already matched).
    FileOnly,
}

impl Category {
    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            Category::Matched => "matched",
            Category::AmountMismatch => "amount_mismatch",
            Category::StateMismatch => "state_mismatch",
            Category::PayrailOnly => "payrail_only",
            Category::FileOnly => "file_only",
        }
    }
}

/// What `hold` did about a mismatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldAction {
    /// Put on hold now.
    Held,
    /// Already on hold: left alone.
    AlreadyHeld,
    /// Not holdable: the finding was written to the audit log.
    Noted,
    /// Not holdable, and the same finding is already in the audit log.
    AlreadyNoted,
}

impl HoldAction {
    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            HoldAction::Held => "held",
            HoldAction::AlreadyHeld => "already_held",
            HoldAction::Noted => "noted",
            HoldAction::AlreadyNoted => "already_noted",
        }
    }
}

/// One discrepancy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What it is.
    pub category: Category,
    /// The UTR, from the file or else payrail.
    pub utr: Option<String>,
    /// The upstream reference, from the file or else payrail.
    pub reference: Option<String>,
    /// payrail's transfer, when there is one.
    pub ackno: Option<i64>,
    /// Its partner.
    pub partner: Option<RegistrationId>,
    /// Its amount here.
    pub payrail_amount: Option<Paise>,
    /// The amount in the file.
    pub file_amount: Option<Paise>,
    /// Its state here (before any hold).
    pub payrail_state: Option<DmtStatus>,
    /// The state in the file.
    pub file_state: Option<BankState>,
    /// The file's line.
    pub line: Option<u64>,
    /// What `hold` did, when asked.
    pub action: Option<HoldAction>,
}

/// Counts per category, and what `hold` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Lines read.
    pub lines: u64,
    /// Lines matching a transfer in amount and state.
    pub matched: u64,
    /// Amount mismatches.
    pub amount_mismatch: u64,
    /// State mismatches.
    pub state_mismatch: u64,
    /// Paid here, not in the file.
    pub payrail_only: u64,
    /// In the file, not here.
    pub file_only: u64,
    /// Transfers put on hold by this run.
    pub held: u64,
    /// Findings written to the audit log by this run.
    pub noted: u64,
    /// Mismatches already held or noted by an earlier run.
    pub already: u64,
}

/// A run's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    /// The file's name, as the reasons give it.
    pub file: String,
    /// The counts.
    pub summary: Summary,
    /// Every discrepancy: the file's in line order, then payrail's only by time made.
    pub findings: Vec<Finding>,
}

/// Who asks for the holds, and as what.
#[derive(Debug, Clone)]
pub struct Holder {
    /// The audit log's actor.
    pub actor: Actor,
    /// The history rows' source.
    pub source: ChangeSource,
    /// Where a hold is counted (the server's metrics; the CLI's own, unread).
    pub metrics: std::sync::Arc<crate::observe::Metrics>,
}

/// What to reconcile.
#[derive(Debug, Clone)]
pub struct Request {
    /// The file's name, for reasons and the report.
    pub file: String,
    /// Its format.
    pub format: FileFormat,
    /// Only this India-time day (days since the epoch; other lines are
    /// refused), else every day the file has.
    pub day: Option<i64>,
    /// The prefix before payrail's upstream reference tails (`PR`).
    pub ref_prefix: String,
    /// Hold mismatches, as this holder.
    pub hold: Option<Holder>,
}

/// Why a run did nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The file has malformed lines (each named).
    #[error("the file is refused: {}", summarise(.0))]
    Malformed(Vec<LineError>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The first 20 errors, one a line, and how many more.
pub fn summarise(errors: &[LineError]) -> String {
    let mut text: Vec<String> = errors.iter().take(20).map(ToString::to_string).collect();
    if errors.len() > 20 {
        text.push(format!("and {} more malformed lines", errors.len() - 20));
    }
    text.join("; ")
}

/// Reads `input`, matches it against the store and, if asked, holds the
/// mismatches (see the module's documentation).
pub async fn reconcile(
    store: &dyn Store,
    clock: &dyn Clock,
    input: impl std::io::Read,
    request: &Request,
) -> Result<Reconciliation, ReconcileError> {
    let lines = file::read_lines(input, &request.format, request.day).map_err(ReconcileError::Malformed)?;
    let days: HashSet<i64> = match request.day {
        Some(day) => HashSet::from([day]),
        None => lines.iter().map(|l| l.day).collect(),
    };
    let candidates = match (days.iter().min(), days.iter().max()) {
        (Some(first), Some(last)) => {
            store.reconcile_candidates(file::day_start(first - DAYS_BEFORE), file::day_start(last + 2)).await?
        }
        _ => Vec::new(),
    };
    let mut run = match_lines(&lines, &candidates, &days, &request.ref_prefix);
    run.file = request.file.clone();
    if let Some(holder) = &request.hold {
        hold_mismatches(store, clock, &mut run, holder).await?;
    }
    Ok(run)
}

/// Matches the lines against the transfers in memory.
pub fn match_lines(lines: &[BankLine], candidates: &[Candidate], days: &HashSet<i64>, prefix: &str) -> Reconciliation {
    let mut by_tail: HashMap<&str, usize> = HashMap::with_capacity(candidates.len());
    let mut by_utr: HashMap<&str, usize> = HashMap::with_capacity(candidates.len());
    for (i, c) in candidates.iter().enumerate() {
        if let Some(tail) = &c.ref_tail {
            by_tail.insert(tail, i);
        }
        if let Some(utr) = &c.utr {
            by_utr.entry(utr).or_insert(i);
        }
    }
    let mut matched = vec![false; candidates.len()];
    let mut summary = Summary { lines: lines.len() as u64, ..Summary::default() };
    let mut findings = Vec::new();
    for line in lines {
        let by_reference =
            line.reference.as_deref().and_then(|r| r.strip_prefix(prefix)).and_then(|tail| by_tail.get(tail));
        let found = by_reference.or_else(|| line.utr.as_deref().and_then(|u| by_utr.get(u))).copied();
        let Some(i) = found.filter(|i| !matched[*i]) else {
            summary.file_only += 1;
            findings.push(file_only(line));
            continue;
        };
        matched[i] = true;
        let c = &candidates[i];
        let category = if c.amount != line.amount {
            Category::AmountMismatch
        } else if !agrees(c.status, line.state) {
            Category::StateMismatch
        } else {
            summary.matched += 1;
            continue;
        };
        *count(&mut summary, category) += 1;
        findings.push(Finding { line: Some(line.line), ..finding(category, c, Some(line), prefix) });
    }
    let mut unmatched: Vec<&Candidate> = candidates
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            !matched[*i]
                && c.status == DmtStatus::Success
                && c.utr.is_some()
                && days.contains(&file::day_number(c.created_at))
        })
        .map(|(_, c)| c)
        .collect();
    unmatched.sort_by_key(|c| (c.created_at, c.ackno));
    summary.payrail_only = unmatched.len() as u64;
    findings.extend(unmatched.into_iter().map(|c| finding(Category::PayrailOnly, c, None, prefix)));
    Reconciliation { file: String::new(), summary, findings }
}

fn count(summary: &mut Summary, category: Category) -> &mut u64 {
    match category {
        Category::Matched => &mut summary.matched,
        Category::AmountMismatch => &mut summary.amount_mismatch,
        Category::StateMismatch => &mut summary.state_mismatch,
        Category::PayrailOnly => &mut summary.payrail_only,
        Category::FileOnly => &mut summary.file_only,
    }
}

/// Whether payrail's state is what the file says: paid is success, returned
/// is failed or refunded; anything still under way (or held) is neither.
fn agrees(status: DmtStatus, state: BankState) -> bool {
    match state {
        BankState::Success => status == DmtStatus::Success,
        BankState::Returned => matches!(status, DmtStatus::Failed | DmtStatus::Refunded),
    }
}

fn file_only(line: &BankLine) -> Finding {
    Finding {
        category: Category::FileOnly,
        utr: line.utr.clone(),
        reference: line.reference.clone(),
        ackno: None,
        partner: None,
        payrail_amount: None,
        file_amount: Some(line.amount),
        payrail_state: None,
        file_state: Some(line.state),
        line: Some(line.line),
        action: None,
    }
}

fn finding(category: Category, c: &Candidate, line: Option<&BankLine>, prefix: &str) -> Finding {
    let ours = c.ref_tail.as_ref().map(|tail| format!("{prefix}{tail}"));
    Finding {
        category,
        utr: line.and_then(|l| l.utr.clone()).or_else(|| c.utr.clone()),
        reference: line.and_then(|l| l.reference.clone()).or(ours),
        ackno: Some(c.ackno),
        partner: Some(c.partner),
        payrail_amount: Some(c.amount),
        file_amount: line.map(|l| l.amount),
        payrail_state: Some(c.status),
        file_state: line.map(|l| l.state),
        line: line.map(|l| l.line),
        action: None,
    }
}

/// What differs, in words: `amount 5000.00 here, 4999.00 in the file`.
fn difference(f: &Finding) -> String {
    let amount = |p: Option<Paise>| p.map(Paise::to_decimal_string).unwrap_or_default();
    match f.category {
        Category::AmountMismatch => {
            format!("amount {} here, {} in the file", amount(f.payrail_amount), amount(f.file_amount))
        }
        _ => format!(
            "state {} here, {} in the file",
            f.payrail_state.map_or("", DmtStatus::name),
            f.file_state.map_or("", BankState::name)
        ),
    }
}

async fn hold_mismatches(
    store: &dyn Store,
    clock: &dyn Clock,
    run: &mut Reconciliation,
    holder: &Holder,
) -> Result<(), StoreError> {
    for f in &mut run.findings {
        let (Some(ackno), Some(line), Some(status)) = (f.ackno, f.line, f.payrail_state) else { continue };
        if !matches!(f.category, Category::AmountMismatch | Category::StateMismatch) {
            continue;
        }
        let differs = difference(f);
        let reason = format!("reconciliation: {differs} (file {} line {line})", run.file);
        let action = if status == DmtStatus::OnHold {
            HoldAction::AlreadyHeld
        } else {
            hold_or_note(store, clock, ackno, status, &differs, &reason, holder).await?
        };
        match action {
            HoldAction::Held => run.summary.held += 1,
            HoldAction::Noted => run.summary.noted += 1,
            HoldAction::AlreadyHeld | HoldAction::AlreadyNoted => run.summary.already += 1,
        }
        f.action = Some(action);
    }
    Ok(())
}

async fn hold_or_note(
    store: &dyn Store,
    clock: &dyn Clock,
    ackno: i64,
    status: DmtStatus,
    differs: &str,
    reason: &str,
    holder: &Holder,
) -> Result<HoldAction, StoreError> {
    let target = format!("dmt:{ackno}");
    if status.can_move_to(DmtStatus::OnHold) {
        let held = transactions::change::<DmtTransfer>(
            store,
            clock,
            &holder.metrics,
            ackno,
            DmtChange::Hold,
            holder.source.clone(),
            Some(reason.to_owned()),
        )
        .await;
        match held {
            // The store audits the transition itself (`dmt.transition`), in the same transaction.
            Ok(_) => return Ok(HoldAction::Held),
            // It moved since it was read: held by a run at the same time
            // (nothing more to do), or paid or failed (note it instead).
            Err(ChangeError::Forbidden(_)) => {
                let now = store.dmt_with_history(ackno).await?.map(|(t, _)| t.status);
                if now == Some(DmtStatus::OnHold) {
                    return Ok(HoldAction::AlreadyHeld);
                }
            }
            Err(ChangeError::NotFound) => return Err(StoreError::Other(anyhow::anyhow!("transfer {ackno} vanished"))),
            Err(ChangeError::Store(e)) => return Err(e),
        }
    }
    let after = serde_json::json!({ "differs": differs, "reason": reason });
    let entry = NewAuditEntry::new(clock.now(), &holder.actor, "reconcile.note", target)
        .changed(&serde_json::json!({ "status": status.name() }), &after);
    // Noted once per difference, whichever file or run finds it again.
    if store.append_audit_once(entry, "differs").await? {
        Ok(HoldAction::Noted)
    } else {
        Ok(HoldAction::AlreadyNoted)
    }
}

/// The report: a header and one line per finding.
pub fn report_csv(run: &Reconciliation) -> String {
    let mut out =
        String::from("category,utr,reference,ackno,partner,payrail_amount,file_amount,payrail_state,file_state,line\n");
    for f in &run.findings {
        let amount = |p: Option<Paise>| p.map(Paise::to_decimal_string).unwrap_or_default();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{}",
            f.category.name(),
            csv_field(f.utr.as_deref().unwrap_or_default()),
            csv_field(f.reference.as_deref().unwrap_or_default()),
            f.ackno.map(|a| a.to_string()).unwrap_or_default(),
            f.partner.map(|p| p.to_string()).unwrap_or_default(),
            amount(f.payrail_amount),
            amount(f.file_amount),
            f.payrail_state.map_or("", DmtStatus::name),
            f.file_state.map_or("", BankState::name),
            f.line.map(|l| l.to_string()).unwrap_or_default(),
        );
    }
    out
}

/// A field quoted when it has to be (file values are letters and digits,
/// but a reference comes from the file as it is).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// The audit entry of a run that held or noted something (a run that
/// changed nothing is not audited: running a file again writes nothing).
pub fn run_audit(run: &Reconciliation, actor: &Actor, clock: &dyn Clock) -> Option<NewAuditEntry> {
    let s = &run.summary;
    (s.held + s.noted > 0).then(|| {
        let after = serde_json::json!({
            "lines": s.lines, "matched": s.matched, "amount_mismatch": s.amount_mismatch,
            "state_mismatch": s.state_mismatch, "payrail_only": s.payrail_only, "file_only": s.file_only,
            "held": s.held, "noted": s.noted,
        });
        NewAuditEntry::new(clock.now(), actor, "reconcile.run", format!("file:{}", run.file))
            .changed(&serde_json::Value::Null, &after)
    })
}
