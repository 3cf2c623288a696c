//! The two transaction kinds, DMT transfers and bill payments, seen through
//! what they have in common: an id, the upstream's answer about them and the
//! change it implies, and whether the upstream is still to be asked. Code
//! that treats both the same (the upstream sync) is written once over
//! [`TxnRecord`].

use super::bbps::{BillChange, BillStatus};
use super::dmt::{DmtChange, DmtStatus};
use super::upstream::{self, BillUpstream, DmtUpstream};
use super::{BillPayment, DmtTransfer, TxnKind};

/// A transaction record of one kind, as the upstream sync sees it.
pub trait TxnRecord: Clone + Send + Sync + 'static {
    /// Which kind of transaction this is.
    const KIND: TxnKind;
    /// What the upstream says about one.
    type Upstream: Send + Sync;
    /// A state change the state machine may allow.
    type Change: Send;

    /// payrail's id for it (a transfer's `ackno`, a payment's `txnid`).
    fn id(&self) -> i64;

    /// Whether a status lookup should ask the upstream before answering.
    fn needs_sync(&self) -> bool;

    /// Whether the poller still has work on it.
    fn needs_polling(&self) -> bool;

    /// The change the upstream's answer implies, if any (see [`upstream`]).
    fn change_for(&self, report: &Self::Upstream) -> Option<Self::Change>;

    /// The answer as one line of the status history.
    fn describe(report: &Self::Upstream) -> String;

    /// Whether it failed and its money is still to go back to the wallet at
    /// once: only a bill payment (BBPS reverses a failed payment; a failed
    /// transfer waits for the partner's refund claim).
    fn needs_refund(&self) -> bool {
        false
    }

    /// The change that puts it on hold for an operator when the poller's
    /// schedule runs out undecided; `None` when the kind has no such state
    /// or the record is past it.
    fn hold_when_exhausted(&self) -> Option<Self::Change>;

    /// Whether, with the poller's schedule run out, it waits for an
    /// operator (its poll job is kept as held, listed for review).
    fn awaits_review(&self) -> bool;

    /// The change that reverses it if `report` contradicts a success
    /// already given (a bank return): applied only once a second query
    /// confirms it. `None` by default: the kind has no such rule.
    fn reversal(&self, _report: &Self::Upstream) -> Option<Self::Change> {
        None
    }

    /// Whether it is paid and may still be reversed by a confirmed return:
    /// the poller asks again about it when a return was reported.
    fn may_be_returned(&self) -> bool {
        false
    }

    /// Whether `report` says the same success again (after a reported
    /// return, it leaves the return unconfirmed).
    fn reaffirmed_by(&self, _report: &Self::Upstream) -> bool {
        false
    }
}

impl TxnRecord for DmtTransfer {
    const KIND: TxnKind = TxnKind::Dmt;
    type Upstream = DmtUpstream;
    type Change = DmtChange;

    fn id(&self) -> i64 {
        self.ackno
    }

    fn needs_sync(&self) -> bool {
        upstream::dmt_needs_sync(self)
    }

    fn needs_polling(&self) -> bool {
        upstream::dmt_needs_polling(self)
    }

    fn change_for(&self, report: &DmtUpstream) -> Option<DmtChange> {
        upstream::dmt_change_for(self, report)
    }

    fn describe(report: &DmtUpstream) -> String {
        report.describe()
    }

    fn hold_when_exhausted(&self) -> Option<DmtChange> {
        upstream::dmt_holds_when_exhausted(self).then_some(DmtChange::Hold)
    }

    fn awaits_review(&self) -> bool {
        self.status == DmtStatus::OnHold
    }

    fn reversal(&self, report: &DmtUpstream) -> Option<DmtChange> {
        upstream::dmt_return(self, report)
    }

    fn may_be_returned(&self) -> bool {
        self.status == DmtStatus::Success
    }

    fn reaffirmed_by(&self, report: &DmtUpstream) -> bool {
        self.status == DmtStatus::Success && matches!(report, DmtUpstream::Success { .. })
    }
}

impl TxnRecord for BillPayment {
    const KIND: TxnKind = TxnKind::Bbps;
    type Upstream = BillUpstream;
    type Change = BillChange;

    fn id(&self) -> i64 {
        self.txnid
    }

    fn needs_sync(&self) -> bool {
        upstream::bill_needs_sync(self)
    }

    fn needs_polling(&self) -> bool {
        upstream::bill_needs_polling(self)
    }

    fn change_for(&self, report: &BillUpstream) -> Option<BillChange> {
        upstream::bill_change_for(self, report)
    }

    fn describe(report: &BillUpstream) -> String {
        report.describe()
    }

    fn needs_refund(&self) -> bool {
        upstream::bill_needs_refund(self)
    }

    /// BBPS has no on-hold state: a payment still pending stays pending.
    fn hold_when_exhausted(&self) -> Option<BillChange> {
        None
    }

    /// A payment still pending when the schedule runs out is listed for review.
    fn awaits_review(&self) -> bool {
        self.status == BillStatus::Pending
    }
}
