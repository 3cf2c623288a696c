//! Status lookups and token `reqid`s: the partner and its record read, and
//! the `reqid` recorded, in one statement (see [`crate::store::lookup`]).
//!
//! The store keeps each partner as it last read it, with its row version
//! (`xmin`, which every update of the row changes). The HTTP edge checks a
//! request against that copy; if it passes, the lookup carries the token's
//! `reqid` and the version checked, and its CTE inserts the `reqid` only if
//! the partner row it reads has that version. So a `reqid` is written
//! exactly when authentication against the stored partner passes, as
//! when it was a second statement after the lookup, in one round trip.
//! Status lookups run in batches (`lookup_batches.rs`); a partner call's
//! read (`PARTNER_CHECKED`) runs alone, on the lanes below.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};

use super::lookup_batches::Waiting;
use super::*;
use crate::store::lookup::{Precheck, ReqidOutcome, StatusLookup};
use crate::store::partners::partner_list as lookup_partner_columns;
use crate::store::transactions::TxnTable;

/// The CTE that turns off `synchronous_commit` for its statement's own
/// transaction (see [`REMEMBER_REQID`]); every statement that records a
/// `reqid` starts with it and joins `relaxed`.
macro_rules! relaxed_cte {
    () => {
        "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true))"
    };
}
pub(super) use relaxed_cte;

/// How every statement that records a `reqid` guards it: a known one is
/// overwritten only when it was last seen before the cutoff, which follows.
macro_rules! reqid_guard {
    () => {
        "ON CONFLICT (partner_id, reqid) DO UPDATE SET seen_at = EXCLUDED.seen_at WHERE seen_reqids.seen_at < "
    };
}
pub(super) use reqid_guard;

/// The start of every statement that reads a partner for a request and
/// records its token `reqid` (see [`crate::store::lookup`]): turns off
/// `synchronous_commit` for this statement's transaction (see
/// [`REMEMBER_REQID`]), reads partner `$1` with its row version, and
/// inserts `$2` (the `reqid`, at `$3`; a replay if seen since `$4`) only if
/// that version is `$5` (`NULL`: no `reqid` offered).
const PARTNER_AND_REQID: &str = concat!(
    relaxed_cte!(),
    ", p AS (SELECT ",
    lookup_partner_columns!(),
    ", xmin::text::bigint AS version FROM partners WHERE id = $1), \
     fresh AS (INSERT INTO seen_reqids SELECT $1, $2::text, $3::bigint FROM p, relaxed \
     WHERE p.version = $5::bigint ",
    reqid_guard!(),
    "$4::bigint RETURNING 1) "
);

/// A partner call's partner, version and `reqid` rows written.
static PARTNER_CHECKED: LazyLock<String> =
    LazyLock::new(|| format!("{PARTNER_AND_REQID}SELECT p.*, (SELECT count(*) FROM fresh) FROM p"));

/// Where the row version is in a status lookup's row; the record follows it.
const VERSION_AT: usize = PARTNER_WIDTH;

/// A fresh `reqid` inserts a row; a known one is overwritten only when it was
/// last seen before the cutoff. Either way one row is affected; a replay
/// affects none.
///
/// The statement turns off `synchronous_commit` for its own (implicit)
/// transaction only: a `reqid` is replay protection, not money, and waiting
/// for a WAL flush on every status lookup cost 6× the throughput. After a
/// crash at most the last few hundred milliseconds of reqids can be lost.
pub(super) const REMEMBER_REQID: &str =
    concat!(relaxed_cte!(), " INSERT INTO seen_reqids SELECT $1, $2, $3 FROM relaxed ", reqid_guard!(), "$4");

/// Each partner as a status lookup last read it, with its row version.
/// Holds only partners the database has (one entry each).
#[derive(Default)]
pub(super) struct PartnersSeen(RwLock<HashMap<RegistrationId, Arc<(Partner, i64)>>>);

impl PartnersSeen {
    fn get(&self, id: RegistrationId) -> Option<Arc<(Partner, i64)>> {
        self.0.read().ok().and_then(|seen| seen.get(&id).cloned())
    }

    /// Keeps `partner` at `version`, unless that version is kept already.
    fn keep(&self, partner: &Partner, version: i64) {
        let id = partner.registration_id;
        if self.get(id).is_some_and(|kept| kept.1 == version) {
            return;
        }
        if let Ok(mut seen) = self.0.write() {
            seen.insert(id, Arc::new((partner.clone(), version)));
        }
    }

    fn forget(&self, id: RegistrationId) {
        if let Ok(mut seen) = self.0.write() {
            seen.remove(&id);
        }
    }
}

/// How many connections partner calls' reads share.
const LANES: usize = 4;

/// Connections that partner calls' reads share instead of taking one each
/// from the pool: a read is one statement in its own implicit transaction, so
/// reads from many requests can be in flight on one connection at once,
/// and tokio-postgres pipelines them. The server then answers a stream of
/// queries on a few backends instead of waking one backend per query, which
/// on a small machine is most of a lookup's cost.
pub(super) struct Lanes {
    lanes: Vec<Mutex<Option<Arc<deadpool_postgres::Client>>>>,
    next: AtomicUsize,
}

impl Default for Lanes {
    fn default() -> Self {
        Lanes { lanes: (0..LANES).map(|_| Mutex::new(None)).collect(), next: AtomicUsize::new(0) }
    }
}

impl Lanes {
    /// The next lane's connection, taken from `pool` the first time (and
    /// again once it is closed).
    pub(super) async fn client(&self, pool: &Pool) -> StoreResult<Arc<deadpool_postgres::Client>> {
        let lane = &self.lanes[self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len()];
        let current = lane.lock().ok().and_then(|held| held.clone());
        if let Some(client) = current.filter(|client| !client.is_closed()) {
            return Ok(client);
        }
        let client = Arc::new(pool.get().await.map_err(pool_error)?);
        if let Ok(mut held) = lane.lock() {
            *held = Some(Arc::clone(&client));
        }
        Ok(client)
    }
}

impl PostgresStore {
    /// Runs a status lookup in the next batch (see [`super::lookup_batches`];
    /// `sql`: [`super::lookup_batches::BATCH_DMT`] or
    /// [`super::lookup_batches::BATCH_BILL`], as `T` is), offering the
    /// `reqid` that `precheck` gives for the partner as last read, if it was
    /// read before.
    pub(super) async fn status_lookup<T: TxnTable>(
        &self,
        sql: &'static LazyLock<String>,
        partner: RegistrationId,
        reference: &str,
        precheck: Precheck<'_>,
    ) -> StoreResult<Option<StatusLookup<T>>> {
        let mut offer = self.offer(partner, precheck);
        // The outcome needs the version and cutoff offered, not the `reqid`.
        let reqid = offer.reqid.take();
        let waiting = |answer| Waiting {
            sql,
            partner: offer.number,
            reqid,
            now: offer.now,
            cutoff: offer.cutoff,
            checked: offer.checked,
            reference: reference.to_owned(),
            answer,
        };
        let Some(row) = self.lookup_batches.lookup(waiting).await? else {
            self.partners_seen.forget(partner);
            return Ok(None);
        };
        let (found, version, written) =
            status_row::<T>(&row).context("Failed to read a stored row").map_err(StoreError::Other)?;
        let reqid = self.reqid_outcome(offer, &found.0, version, written);
        Ok(Some(StatusLookup { partner: found.0, record: found.1, reqid }))
    }

    /// As [`Self::status_lookup`], for a partner call: the partner alone.
    pub(super) async fn partner_checked(
        &self,
        partner: RegistrationId,
        precheck: Precheck<'_>,
    ) -> StoreResult<Option<(Partner, ReqidOutcome)>> {
        let offer = self.offer(partner, precheck);
        let client = self.lanes.client(&self.pool).await?;
        let Some(row) = query_opt(&*client, &PARTNER_CHECKED, &offer.params(), "Failed to find the partner").await?
        else {
            self.partners_seen.forget(partner);
            return Ok(None);
        };
        drop(client);
        let read = || -> anyhow::Result<(Partner, i64, i64)> {
            Ok((partner_at(&row, 0)?, row.try_get(VERSION_AT)?, row.try_get(VERSION_AT + 1)?))
        };
        let (found, version, written) = read().context("Failed to read a stored row").map_err(StoreError::Other)?;
        let reqid = self.reqid_outcome(offer, &found, version, written);
        Ok(Some((found, reqid)))
    }

    /// The `reqid` `precheck` offers for `partner` as last read, if it was
    /// read before, with the version it was checked against.
    fn offer(&self, partner: RegistrationId, precheck: Precheck<'_>) -> Offer {
        let offer = self.partners_seen.get(partner).and_then(|seen| Some((precheck(&seen.0)?, seen.1)));
        let (claim, checked) = offer.unzip();
        let (reqid, now, cutoff) = match claim {
            Some(claim) => (Some(claim.reqid), Some(claim.now.unix()), Some(claim.cutoff.unix())),
            None => (None, None, None),
        };
        Offer { number: partner.number(), reqid, now, cutoff, checked }
    }

    /// Keeps the partner as read at `version`, and tells what became of the
    /// offered `reqid`: recorded (`written` rows) only if `version` is the
    /// one it was checked against.
    fn reqid_outcome(&self, offer: Offer, found: &Partner, version: i64, written: i64) -> ReqidOutcome {
        self.partners_seen.keep(found, version);
        match (offer.checked, offer.cutoff) {
            (Some(checked), Some(cutoff)) if checked == version => {
                self.prune_reqids_now_and_then(Timestamp::from_unix(cutoff));
                if written == 1 {
                    ReqidOutcome::Fresh
                } else {
                    ReqidOutcome::Replay
                }
            }
            _ => ReqidOutcome::NotRecorded,
        }
    }

    /// Prunes about once in 256 calls, off the request's path: often enough
    /// to keep the table near one cutoff window, rarely enough to be free.
    pub(super) fn prune_reqids_now_and_then(&self, cutoff: Timestamp) {
        if rand::random::<u8>() == 0 {
            tokio::spawn(forget_reqids(self.pool.clone(), cutoff));
        }
    }
}

/// A partner's read, with the `reqid` offered (its time and cutoff) and the
/// partner version it was checked against: all `None` when none is offered.
struct Offer {
    number: i64,
    reqid: Option<String>,
    now: Option<i64>,
    cutoff: Option<i64>,
    checked: Option<i64>,
}

impl Offer {
    /// `$1`–`$5` of [`PARTNER_AND_REQID`] (a status lookup adds its reference).
    fn params(&self) -> [&(dyn ToSql + Sync); 5] {
        [&self.number, &self.reqid, &self.now, &self.cutoff, &self.checked]
    }
}

/// Reads a status lookup's row (see [`super::lookup_batches`]): the
/// partner and its record, the partner row's version, and how many `reqid`
/// rows the statement wrote (the column before the row's position).
fn status_row<T: TxnTable>(row: &Row) -> anyhow::Result<((Partner, Option<T>), i64, i64)> {
    let at = VERSION_AT + 1;
    let present = row.try_get::<_, Option<i64>>(at)?.is_some();
    let record = if present { Some(T::decode(row, at)?) } else { None };
    let written = row.try_get(row.len() - 2)?;
    Ok(((partner_at(row, 0)?, record), row.try_get(VERSION_AT)?, written))
}

/// Deletes `reqid`s last seen before `cutoff`: they can no longer be replays.
async fn forget_reqids(pool: Pool, cutoff: Timestamp) {
    let result = async {
        let client = pool.get().await.map_err(pool_error)?;
        let sql = "DELETE FROM seen_reqids WHERE seen_at < $1";
        execute(&client, sql, &[&cutoff.unix()], "Failed to forget old token reqids").await
    };
    if let Err(error) = result.await {
        tracing::warn!(?error, "Failed to forget old token reqids");
    }
}

#[cfg(test)]
mod tests {
    //! Against a real server, as the engine's other tests
    //! (`PAYRAIL_TEST_DATABASE_URL`; skipped without it).

    use super::super::tests::{new_partner, TestDb};
    use super::*;
    use crate::store::lookup::ReqidClaim;

    fn claim(reqid: &str, now: i64) -> ReqidClaim {
        ReqidClaim { reqid: reqid.to_owned(), now: Timestamp::from_unix(now), cutoff: Timestamp::from_unix(now - 600) }
    }

    async fn outcome(
        store: &PostgresStore,
        partner: i64,
        precheck: Precheck<'_>,
    ) -> anyhow::Result<Option<(ReqidOutcome, PartnerStatus)>> {
        let found = store.lookup_dmt_checked(RegistrationId::new(partner), "R1", precheck).await?;
        Ok(found.map(|found| (found.reqid, found.partner.status)))
    }

    #[tokio::test]
    async fn a_lookup_records_the_reqid_only_for_the_partner_version_checked() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let store = &db.store;
        let partner = RegistrationId::new(554);
        let seen =
            SeenReqid { partner, reqid: "", now: Timestamp::from_unix(1_001), cutoff: Timestamp::from_unix(401) };
        store.insert_partner(new_partner(Some(554))).await?;
        let (active, suspended) = (PartnerStatus::Active, PartnerStatus::Suspended);
        let accept = |_: &Partner| Some(claim("q1", 1_000));
        // Not read before: nothing to check against, so nothing is recorded.
        assert_eq!(outcome(store, 554, &accept).await?, Some((ReqidOutcome::NotRecorded, active)));
        assert_eq!(outcome(store, 554, &accept).await?, Some((ReqidOutcome::Fresh, active)));
        let bill = store.lookup_bill_checked(partner, "B1", &accept).await?;
        assert_eq!(bill.map(|found| found.reqid), Some(ReqidOutcome::Replay));
        assert!(!store.remember_reqid(SeenReqid { reqid: "q1", ..seen }).await?);
        let refuse = |_: &Partner| None;
        assert_eq!(outcome(store, 554, &refuse).await?, Some((ReqidOutcome::NotRecorded, active)));
        // The partner changed since it was read: the copy checked is stale, nothing is written.
        store.set_partner_status(partner, suspended).await?;
        let stale = |_: &Partner| Some(claim("q2", 1_000));
        assert_eq!(outcome(store, 554, &stale).await?, Some((ReqidOutcome::NotRecorded, suspended)));
        assert!(store.remember_reqid(SeenReqid { reqid: "q2", ..seen }).await?);
        assert_eq!(outcome(store, 999, &accept).await?, None, "no such partner");
        db.finish().await
    }

    async fn partner_outcome(
        store: &PostgresStore,
        partner: RegistrationId,
        precheck: Precheck<'_>,
    ) -> anyhow::Result<Option<(ReqidOutcome, PartnerStatus)>> {
        let found = store.find_partner_checked(partner, precheck).await?;
        Ok(found.map(|(partner, reqid)| (reqid, partner.status)))
    }

    #[tokio::test]
    async fn a_partner_calls_read_records_the_reqid_as_a_lookup_does() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let store = &db.store;
        let partner = RegistrationId::new(556);
        store.insert_partner(new_partner(Some(556))).await?;
        let (active, suspended) = (PartnerStatus::Active, PartnerStatus::Suspended);
        let accept = |_: &Partner| Some(claim("q1", 1_000));
        assert_eq!(
            partner_outcome(store, partner, &accept).await?,
            Some((ReqidOutcome::NotRecorded, active)),
            "not read before"
        );
        assert_eq!(partner_outcome(store, partner, &accept).await?, Some((ReqidOutcome::Fresh, active)));
        assert_eq!(partner_outcome(store, partner, &accept).await?, Some((ReqidOutcome::Replay, active)));
        assert_eq!(outcome(store, 556, &accept).await?, Some((ReqidOutcome::Replay, active)), "one table of reqids");
        store.set_partner_status(partner, suspended).await?;
        let stale = |_: &Partner| Some(claim("q2", 1_000));
        assert_eq!(partner_outcome(store, partner, &stale).await?, Some((ReqidOutcome::NotRecorded, suspended)));
        let seen =
            SeenReqid { partner, reqid: "q2", now: Timestamp::from_unix(1_001), cutoff: Timestamp::from_unix(401) };
        assert!(store.remember_reqid(seen).await?, "a stale copy's reqid is not written");
        let unknown = store.find_partner_checked(RegistrationId::new(999), &accept).await?;
        assert!(unknown.is_none(), "no such partner");
        db.finish().await
    }
}
