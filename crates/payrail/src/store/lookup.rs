//! Status lookups that also record the caller's token `reqid`, in the same
//! round trip where the engine can.
//!
//! A status lookup reads the partner and its record before the caller is
//! authenticated (the token's secret is the partner's), and only an
//! authenticated request may record its `reqid`. An engine that keeps the
//! partner as it last read it (PostgreSQL) can check the request against
//! that copy first, with [`Precheck`], and send the `reqid` along with the
//! lookup, guarded so that it is written only if the partner row is still
//! the one checked. The `reqid` is then recorded exactly when it would have
//! been recorded after the lookup, one round trip earlier.

use crate::domain::{Partner, Timestamp};

/// A token `reqid` to record, for a request that passed every other check.
#[derive(Debug, Clone)]
pub struct ReqidClaim {
    /// The token's `reqid`.
    pub reqid: String,
    /// When the request came.
    pub now: Timestamp,
    /// A use of the same `reqid` since then is a replay.
    pub cutoff: Timestamp,
}

/// Checks the request against `partner` as the store last read it: every
/// authentication check but the `reqid`'s. `Some` (the `reqid` to record)
/// only if the request carries a token and passes them all.
pub type Precheck<'a> = &'a (dyn Fn(&Partner) -> Option<ReqidClaim> + Send + Sync);

/// What became of the [`ReqidClaim`] a status lookup was offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqidOutcome {
    /// Nothing was recorded: no claim was offered, or the partner as stored
    /// is not the one it was checked against. The caller authenticates
    /// against the partner found, which records the `reqid` itself.
    NotRecorded,
    /// The partner found is the one checked, and the `reqid` was recorded.
    Fresh,
    /// The partner found is the one checked, and it used the `reqid` since
    /// the cutoff: a replay, nothing written.
    Replay,
}

/// A status lookup's answer for a partner that exists.
#[derive(Debug, Clone)]
pub struct StatusLookup<T> {
    /// The partner as stored.
    pub partner: Partner,
    /// Its record with the reference asked for, if it has one.
    pub record: Option<T>,
    /// What became of the `reqid` offered.
    pub reqid: ReqidOutcome,
}

impl<T> StatusLookup<T> {
    /// A lookup that recorded nothing, as [`super::RecordStore::lookup_dmt`] answers.
    pub fn unrecorded((partner, record): (Partner, Option<T>)) -> Self {
        StatusLookup { partner, record, reqid: ReqidOutcome::NotRecorded }
    }
}
