//! What the upstream says about a transaction, and what payrail makes of it.
//!
//! An upstream answer never decides a state by itself: it is mapped onto a
//! change that the state machine must allow, given where the record stands.
//! Anything unknown, and anything that would move a record backwards (a
//! stale "pending" after "success", a "success" after a failure), maps to no
//! change at all. The schedules here say when to ask again.

use std::time::Duration;

use super::bbps::{BillChange, BillStatus};
use super::dmt::{DmtChange, DmtStatus};
use super::{BillPayment, DmtTransfer, TxnKind};

/// The upstream's view of a transfer (its `txn_status` codes follow SPEC §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmtUpstream {
    /// Accepted, not yet with the bank (`2`).
    InProcess,
    /// With the bank (`3`).
    SentToBank,
    /// Paid (`1`); the UTR may come later.
    Success {
        /// The bank's reference, when known.
        utr: Option<String>,
    },
    /// Held by the upstream for review (`4`).
    OnHold,
    /// Failed or returned by the bank (`0` and `5`).
    Failed,
    /// A code payrail does not know, a transaction the upstream does not
    /// know, or an answer it could not read: never a final state.
    Unknown {
        /// What was seen, for the log and the history.
        detail: String,
    },
    /// An answer that must not move the transfer by itself: a duplicate
    /// reference (the upstream may be answering about another transfer),
    /// an answer that does not match the transfer (reference, amount,
    /// account), or an upstream error that asks for a person. An undecided
    /// transfer is put on hold for review, with `reason` in its history, and
    /// later answers leave it there: an operator decides.
    Review {
        /// Why, for the history (`upstream answer's amount 500.00 differs from 1000.00`).
        reason: String,
    },
}

/// The upstream's view of a bill payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillUpstream {
    /// Awaiting the biller.
    Pending,
    /// Paid; the biller's or BBPS reference when known.
    Success {
        /// Reported as `operatorid`.
        operator_ref: Option<String>,
    },
    /// Failed or reversed.
    Failed,
    /// Anything else (see [`DmtUpstream::Unknown`]).
    Unknown {
        /// What was seen.
        detail: String,
    },
}

impl DmtUpstream {
    /// The answer as one line of a transfer's status history.
    pub fn describe(&self) -> String {
        match self {
            DmtUpstream::InProcess => "upstream: in process".into(),
            DmtUpstream::SentToBank => "upstream: sent to bank".into(),
            DmtUpstream::Success { utr: Some(utr) } => format!("upstream: success, UTR {utr}"),
            DmtUpstream::Success { utr: None } => "upstream: success, UTR to follow".into(),
            DmtUpstream::OnHold => "upstream: on hold".into(),
            DmtUpstream::Failed => "upstream: failed".into(),
            DmtUpstream::Unknown { detail } => format!("upstream: {detail}"),
            DmtUpstream::Review { reason } => format!("{REVIEW_PREFIX}{reason}"),
        }
    }
}

/// How the history row of a hold for review begins; while a held
/// transfer's last history row begins so, answers about it change nothing.
pub const REVIEW_PREFIX: &str = "held for review: ";

/// How the history note of a first, unconfirmed bank return begins.
pub const RETURN_PREFIX: &str = "upstream: bank return reported";

/// The history note of a first contradicting answer about a paid transfer.
pub const RETURN_REPORTED: &str =
    "upstream: bank return reported after success; not applied until a second query confirms it";

/// The history note of a success reaffirmed after a reported return.
pub const RETURN_NOT_CONFIRMED: &str = "upstream: success again; the reported bank return is not confirmed";

/// The history reason of a return a second query confirmed.
pub const RETURN_CONFIRMED: &str = "upstream: bank return confirmed by a second query";

/// Whether a history (oldest first) ends with a hold for review.
pub fn held_for_review(history: &[super::HistoryEntry]) -> bool {
    history.last().is_some_and(|last| {
        last.to_status == DmtStatus::OnHold.name()
            && last.reason.as_deref().is_some_and(|r| r.starts_with(REVIEW_PREFIX))
    })
}

/// Whether a history (oldest first) ends with a bank return that is
/// still to be confirmed by a second query.
pub fn return_pending(history: &[super::HistoryEntry]) -> bool {
    history.last().is_some_and(|last| {
        last.to_status == DmtStatus::Success.name()
            && last.reason.as_deref().is_some_and(|r| r.starts_with(RETURN_PREFIX))
    })
}

impl BillUpstream {
    /// The answer as one line of a bill payment's status history.
    pub fn describe(&self) -> String {
        match self {
            BillUpstream::Pending => "upstream: pending".into(),
            BillUpstream::Success { operator_ref: Some(r) } => format!("upstream: success, operator reference {r}"),
            BillUpstream::Success { operator_ref: None } => "upstream: success".into(),
            BillUpstream::Failed => "upstream: failed".into(),
            BillUpstream::Unknown { detail } => format!("upstream: {detail}"),
        }
    }
}

/// The change an upstream answer implies for `transfer`, if any.
///
/// A success counts only with its UTR: without one the transfer is (or
/// stays) with the bank and is asked about again. A failure of a paid
/// transfer (a bank return) is not a change here: it is applied only when a
/// second query confirms it ([`dmt_return`]). An answer for review holds
/// an undecided transfer.
pub fn dmt_change_for(transfer: &DmtTransfer, upstream: &DmtUpstream) -> Option<DmtChange> {
    use DmtStatus::*;
    let status = transfer.status;
    match upstream {
        DmtUpstream::Success { utr: Some(utr) } if matches!(status, InProcess | SentToBank | OnHold) => {
            Some(DmtChange::Success { utr: Some(utr.clone()) })
        }
        DmtUpstream::Success { utr: Some(utr) } if status == Success && transfer.utr.is_none() => {
            Some(DmtChange::Utr { utr: utr.clone() })
        }
        DmtUpstream::Success { utr: None } | DmtUpstream::SentToBank if status == InProcess => {
            Some(DmtChange::SentToBank)
        }
        DmtUpstream::OnHold | DmtUpstream::Review { .. } if matches!(status, InProcess | SentToBank) => {
            Some(DmtChange::Hold)
        }
        DmtUpstream::Failed if matches!(status, InProcess | SentToBank | OnHold) => Some(DmtChange::Fail),
        _ => None,
    }
}

/// The change that reverses a paid transfer when the upstream says it
/// failed (a bank return), once a second query confirms it: `None` unless
/// `transfer` is paid and `upstream` says failed.
pub fn dmt_return(transfer: &DmtTransfer, upstream: &DmtUpstream) -> Option<DmtChange> {
    (transfer.status == DmtStatus::Success && *upstream == DmtUpstream::Failed).then_some(DmtChange::Fail)
}

/// The change an upstream answer implies for `payment`, if any. A failure
/// is followed by the refund (see [`bill_needs_refund`]).
pub fn bill_change_for(payment: &BillPayment, upstream: &BillUpstream) -> Option<BillChange> {
    match upstream {
        BillUpstream::Success { operator_ref } if payment.status == BillStatus::Pending => {
            Some(BillChange::Success { operator_ref: operator_ref.clone() })
        }
        BillUpstream::Failed if matches!(payment.status, BillStatus::Pending | BillStatus::Success) => {
            Some(BillChange::Fail)
        }
        _ => None,
    }
}

/// A failed bill payment goes back to the wallet at once: BBPS reverses a
/// failed payment, there is no claim to make.
pub fn bill_needs_refund(payment: &BillPayment) -> bool {
    payment.status == BillStatus::Failed
}

/// Whether the upstream should still be asked about a transfer: while it is
/// undecided, or paid without its UTR yet. A paid transfer with its UTR is
/// decided: a later bank return comes as the upstream's callback (as
/// Paysprint sends it), not from polling every paid transfer. The store
/// ends a transfer's poll job in the transaction that decides it.
pub fn dmt_needs_polling(transfer: &DmtTransfer) -> bool {
    match transfer.status {
        DmtStatus::InProcess | DmtStatus::SentToBank | DmtStatus::OnHold => true,
        DmtStatus::Success => transfer.utr.is_none(),
        DmtStatus::Failed | DmtStatus::Refunded => false,
    }
}

/// Whether a status lookup should ask the upstream first: only while the
/// transfer is undecided or paid without a UTR.
pub fn dmt_needs_sync(transfer: &DmtTransfer) -> bool {
    match transfer.status {
        DmtStatus::InProcess | DmtStatus::SentToBank | DmtStatus::OnHold => true,
        DmtStatus::Success => transfer.utr.is_none(),
        DmtStatus::Failed | DmtStatus::Refunded => false,
    }
}

/// Whether the poller still has work on a bill payment: asking the upstream
/// while it is pending, or finishing the refund of a failed one (failed by
/// an operator). A paid or refunded payment is decided; the store ends its
/// poll job in the transaction that decides it.
pub fn bill_needs_polling(payment: &BillPayment) -> bool {
    matches!(payment.status, BillStatus::Pending | BillStatus::Failed)
}

/// Whether a status lookup should ask the upstream first.
pub fn bill_needs_sync(payment: &BillPayment) -> bool {
    payment.status == BillStatus::Pending
}

/// Whether a transfer still undecided when its schedule runs out goes on hold.
pub fn dmt_holds_when_exhausted(transfer: &DmtTransfer) -> bool {
    matches!(transfer.status, DmtStatus::InProcess | DmtStatus::SentToBank)
}

/// The reference payrail gives the upstream for a transaction: a prefix
/// (one per payrail installation sharing an upstream account), `D` or `B`,
/// and payrail's own id. Partner references are only unique per partner, so
/// they cannot be used upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRef {
    /// Which kind of transaction.
    pub kind: TxnKind,
    /// Its ackno or txnid.
    pub id: i64,
}

/// How long the random part of a new upstream reference is.
pub const REF_NONCE_LEN: usize = 5;

impl UpstreamRef {
    fn letter(&self) -> char {
        match self.kind {
            TxnKind::Dmt => 'D',
            TxnKind::Bbps => 'B',
        }
    }

    /// `PRD128` for transfer 128 under prefix `PR`: how references were
    /// made before installation ids (such transactions keep theirs).
    pub fn render(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.legacy_tail())
    }

    /// `D128`: the reference of a transaction made before installation
    /// ids, without the prefix.
    pub fn legacy_tail(&self) -> String {
        format!("{}{}", self.letter(), self.id)
    }

    /// The reference of a new transaction, without the prefix: its letter
    /// and id, the installation's id (six hex digits, capitals) and
    /// [`REF_NONCE_LEN`] random capital letters, e.g. `D1287F3A09QMZTK`.
    /// The installation id keeps two installations sharing an upstream
    /// account apart; the random part, a store restored from a copy (which
    /// has the same installation id and hands out the same local ids again).
    /// Both have a fixed length, so no two (kind, id) pairs share a tail,
    /// and the random part ends in letters where an old `D128` ends in a
    /// digit, so no new reference equals an old one.
    pub fn fresh_tail(&self, installation: &str, nonce: &str) -> String {
        format!("{}{}{installation}{nonce}", self.letter(), self.id)
    }

    /// [`UpstreamRef::fresh_tail`] with a random part drawn now.
    pub fn new_tail(&self, installation: &str) -> String {
        self.fresh_tail(installation, &random_letters(REF_NONCE_LEN))
    }

    /// Reads a reference rendered under `prefix`.
    pub fn parse(text: &str, prefix: &str) -> Option<UpstreamRef> {
        let rest = text.strip_prefix(prefix)?;
        let kind = match rest.chars().next()? {
            'D' => TxnKind::Dmt,
            'B' => TxnKind::Bbps,
            _ => return None,
        };
        let digits = &rest[1..];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(UpstreamRef { kind, id: digits.parse().ok()? })
    }
}

/// `n` random capital letters.
pub fn random_letters(n: usize) -> String {
    use rand::Rng as _;
    let mut rng = rand::thread_rng();
    (0..n).map(|_| char::from(b'A' + rng.gen_range(0..26u8))).collect()
}

/// A list of delays, written `10s,1m,2h` on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    steps: Vec<Duration>,
}

/// Why a schedule could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a schedule is a comma-separated list of delays such as 10s,1m,2h (got {0:?})")]
pub struct BadSchedule(pub String);

impl Backoff {
    /// A schedule of these delays (at least one).
    pub fn new(steps: Vec<Duration>) -> Result<Backoff, BadSchedule> {
        if steps.is_empty() || steps.iter().any(Duration::is_zero) {
            return Err(BadSchedule(format!("{steps:?}")));
        }
        Ok(Backoff { steps })
    }

    /// Reads `10s,1m,2h` (units `s`, `m`, `h`); `30mx4` is `30m` four times.
    pub fn parse(text: &str) -> Result<Backoff, BadSchedule> {
        let bad = || BadSchedule(text.to_owned());
        let mut steps = Vec::new();
        for step in text.split(',') {
            let (delay, times) = match step.trim().split_once('x') {
                Some((delay, times)) => (delay, times.parse::<usize>().ok().filter(|n| (1..=10_000).contains(n))),
                None => (step.trim(), Some(1)),
            };
            let delay = parse_delay(delay).ok_or_else(bad)?;
            steps.extend(std::iter::repeat_n(delay, times.ok_or_else(bad)?));
        }
        Backoff::new(steps).map_err(|_| bad())
    }

    /// The delay before try `attempt + 1` when `attempt` tries were made,
    /// or `None` once the schedule is exhausted.
    pub fn after(&self, attempts: u32) -> Option<Duration> {
        self.steps.get(attempts as usize).copied()
    }

    /// As [`Backoff::after`], repeating the last delay for ever.
    pub fn after_repeating(&self, attempts: u32) -> Duration {
        let last = self.steps.len() - 1;
        self.steps[(attempts as usize).min(last)]
    }

    /// The default poll schedule ([`DEFAULT_POLL_SCHEDULE`]).
    pub fn default_poll() -> Backoff {
        let early = DEFAULT_POLL_EARLY.iter().map(|s| Duration::from_secs(*s));
        let half_hours = std::iter::repeat_n(Duration::from_secs(1800), DEFAULT_POLL_HALF_HOURS);
        Backoff { steps: early.chain(half_hours).collect() }
    }

    /// The default callback retry schedule ([`DEFAULT_CALLBACK_RETRY`]).
    pub fn default_callback_retry() -> Backoff {
        Backoff { steps: DEFAULT_CALLBACK_STEPS.iter().map(|s| Duration::from_secs(*s)).collect() }
    }

    /// How long the whole schedule lasts.
    pub fn total(&self) -> Duration {
        self.steps.iter().sum()
    }
}

fn parse_delay(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let number: u64 = text[..split].parse().ok()?;
    let unit = match &text[split..] {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    };
    Some(Duration::from_secs(number.checked_mul(unit)?))
}

/// How payrail re-asks the upstream about a pending transaction by default:
/// soon at first (10 s … 30 min, the first hour), then every 30 minutes, as
/// Paysprint advises, until 80 hours have passed: a Paysprint hold can last
/// until T+3 (72 h), and 8 h more are the margin. A transfer still undecided
/// then goes on hold for an operator.
pub const DEFAULT_POLL_SCHEDULE: &str = "10s,20s,30s,1m,2m,5m,10m,30m,30mx158";

/// The early polls of [`DEFAULT_POLL_SCHEDULE`] (they add up to 59 min).
const DEFAULT_POLL_EARLY: [u64; 8] = [10, 20, 30, 60, 120, 300, 600, 1800];
/// Then every 30 minutes, this many times: 59 min + 158 × 30 min = 79.98 h.
const DEFAULT_POLL_HALF_HOURS: usize = 158;

const DEFAULT_CALLBACK_STEPS: [u64; 9] = [10, 30, 60, 120, 300, 600, 1800, 3600, 7200];

/// How payrail retries a partner callback by default; the last delay repeats
/// until the event is 24 h old.
pub const DEFAULT_CALLBACK_RETRY: &str = "10s,30s,1m,2m,5m,10m,30m,1h,2h";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DmtCharges, Paise, ReferenceId, RegistrationId, Timestamp};

    fn transfer(status: DmtStatus, utr: Option<&str>) -> DmtTransfer {
        DmtTransfer {
            ackno: 7,
            partner: RegistrationId::new(554),
            reference: ReferenceId::parse("R1").unwrap_or_else(|e| panic!("{e}")),
            amount: Paise::rupees(100),
            account: "1234567890".into(),
            utr: utr.map(str::to_owned),
            status,
            charges: DmtCharges::compute(Paise::rupees(10), Paise::rupees(3), Timestamp::from_unix(1_700_000_000)),
            created_at: Timestamp::from_unix(1_700_000_000),
            refund_txn_id: None,
            refunded_at: None,
            upstream_ackno: None,
        }
    }

    #[test]
    fn a_stale_answer_never_moves_a_decided_transfer_back() {
        for stale in [DmtUpstream::InProcess, DmtUpstream::SentToBank, DmtUpstream::OnHold] {
            assert_eq!(dmt_change_for(&transfer(DmtStatus::Success, Some("U1")), &stale), None);
            assert_eq!(dmt_change_for(&transfer(DmtStatus::Failed, None), &stale), None);
        }
        let success = DmtUpstream::Success { utr: Some("U2".into()) };
        assert_eq!(dmt_change_for(&transfer(DmtStatus::Failed, None), &success), None);
        assert_eq!(dmt_change_for(&transfer(DmtStatus::Refunded, None), &success), None);
        assert_eq!(dmt_change_for(&transfer(DmtStatus::Success, Some("U1")), &success), None);
    }

    #[test]
    fn unknown_answers_change_nothing() {
        for status in DmtStatus::ALL {
            let unknown = DmtUpstream::Unknown { detail: "code 77".into() };
            assert_eq!(dmt_change_for(&transfer(status, None), &unknown), None);
        }
    }

    #[test]
    fn a_late_utr_completes_a_success_and_a_return_needs_confirming() {
        let late = DmtUpstream::Success { utr: Some("U9".into()) };
        assert_eq!(
            dmt_change_for(&transfer(DmtStatus::Success, None), &late),
            Some(DmtChange::Utr { utr: "U9".into() })
        );
        let paid = transfer(DmtStatus::Success, Some("U1"));
        assert_eq!(dmt_change_for(&paid, &DmtUpstream::Failed), None);
        assert_eq!(dmt_return(&paid, &DmtUpstream::Failed), Some(DmtChange::Fail));
        assert_eq!(dmt_return(&transfer(DmtStatus::SentToBank, None), &DmtUpstream::Failed), None);
    }

    #[test]
    fn a_success_without_a_utr_is_still_with_the_bank() {
        let no_utr = DmtUpstream::Success { utr: None };
        assert_eq!(dmt_change_for(&transfer(DmtStatus::InProcess, None), &no_utr), Some(DmtChange::SentToBank));
        assert_eq!(dmt_change_for(&transfer(DmtStatus::SentToBank, None), &no_utr), None);
        assert_eq!(dmt_change_for(&transfer(DmtStatus::OnHold, None), &no_utr), None);
    }

    #[test]
    fn an_answer_for_review_holds_only_an_undecided_transfer() {
        let review = DmtUpstream::Review { reason: "duplicate".into() };
        assert_eq!(dmt_change_for(&transfer(DmtStatus::SentToBank, None), &review), Some(DmtChange::Hold));
        for decided in [DmtStatus::Success, DmtStatus::Failed, DmtStatus::Refunded, DmtStatus::OnHold] {
            assert_eq!(dmt_change_for(&transfer(decided, Some("U")), &review), None);
        }
        assert_eq!(review.describe(), format!("{REVIEW_PREFIX}duplicate"));
    }

    #[test]
    fn upstream_references_round_trip_and_reject_strangers() {
        let reference = UpstreamRef { kind: TxnKind::Bbps, id: 42 };
        assert_eq!(reference.render("PR"), "PRB42");
        assert_eq!(UpstreamRef::parse("PRB42", "PR"), Some(reference));
        for bad in ["PRX42", "PRD", "PRD4x", "XXD42", "PRD-1", ""] {
            assert_eq!(UpstreamRef::parse(bad, "PR"), None, "{bad}");
        }
    }

    #[test]
    fn schedules_parse_and_run_out() {
        let schedule = Backoff::parse("10s, 2m,1h").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(schedule.after(0), Some(Duration::from_secs(10)));
        assert_eq!(schedule.after(2), Some(Duration::from_secs(3600)));
        assert_eq!(schedule.after(3), None);
        assert_eq!(schedule.after_repeating(9), Duration::from_secs(3600));
        assert_eq!(Backoff::parse("1mx3"), Backoff::parse("1m,1m,1m"));
        for bad in ["", "10", "10x", "0s", "s", "1s,,2s", "1mx0", "1mx", "x2"] {
            assert!(Backoff::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Backoff::parse(DEFAULT_POLL_SCHEDULE), Ok(Backoff::default_poll()));
        assert_eq!(Backoff::parse(DEFAULT_CALLBACK_RETRY), Ok(Backoff::default_callback_retry()));
        // T+3 (72 h) and a margin, then a hold; every 30 minutes after the first hour.
        let total = Backoff::default_poll().total();
        assert!(total > Duration::from_secs(79 * 3600) && total <= Duration::from_secs(80 * 3600), "{total:?}");
        assert!(Backoff::default_poll().after(8) == Some(Duration::from_secs(1800)));
    }
}
