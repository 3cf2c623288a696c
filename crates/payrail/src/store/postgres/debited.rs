//! Transactions paid from the wallet: the debit, the new record with its
//! number and first history row, its journal and its poll job, in one
//! database transaction.
//!
//! A partner's payments queue on its wallet row, whose lock each holds
//! until its commit has reached the disk, so one at a time waits for a
//! WAL flush (several milliseconds on a virtual disk). Bill payments are
//! therefore committed in groups: each partner's payments go to one of
//! [`WRITERS`] writer tasks, which takes every payment waiting (up to
//! [`GROUP_MAX`]) and writes them all in ONE statement ([`PAY_BILLS`]: one
//! wallet `UPDATE` by the group's total, then every row from arrays) when
//! the wallet holds enough for all of them and none is refused; otherwise
//! (a short wallet, a reference or number taken) that statement is rolled
//! back and each payment runs as one statement under its own savepoint,
//! all sent at once (pipelined), so that a refused payment rolls back its
//! savepoint alone. Either way the group commits once, and only then is
//! each caller answered. A partner's wallet is only ever locked by one
//! writer, so two groups cannot deadlock.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Statement;

use crate::domain::upstream::UpstreamRef;

use super::*;

/// Writer tasks committing bill payments; a partner always uses the same one.
const WRITERS: usize = 4;
/// Most payments one group commit holds.
/// Kept well under 64: each payment is a subtransaction, and a transaction
/// with more than 64 of them slows every session's snapshots.
const GROUP_MAX: usize = 32;
/// Payments queued per writer before callers wait to queue.
const QUEUE: usize = 1024;
/// Tries at a payment's number before giving up: another try is needed only
/// when an imported record already holds the number drawn.
const NUMBER_TRIES: usize = 4;

/// A bill payment in one statement, from its wallet debit to its poll job:
/// `$1` partner, `$2` txnid, `$3`–`$16` the record (as [`INSERT_BILLS`]
/// without the arrays), `$17` the wallet change, `$18` the history row's
/// source, `$19` its reason, `$20` the journal memo, `$21`/`$22` the
/// postings' accounts and amounts, `$23` when the poll job is due (`NULL`:
/// none), `$24` now (for the poll job's lease), `$25` the history row's
/// time, `$26` the journal's. The wallet `UPDATE` comes
/// first: the record and everything after it are written only from its
/// row, so a short wallet writes nothing and returns no row.
const PAY_BILL: &str = "WITH wallet AS (UPDATE wallets SET balance = balance + $17 \
     WHERE partner_id = $1 AND balance + $17 >= 0 RETURNING balance), \
     bill AS (INSERT INTO bill_payments (txnid, partner_id, reference_id, operator_name, ca_number, amount, ad1, \
     ad2, ad3, commission, tds, status, operator_ref, created_at, updated_at, refund_txn_id, refunded_at) \
     SELECT $2, $1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, $16 FROM wallet \
     RETURNING txnid), \
     history AS (INSERT INTO status_history (kind, txn_id, from_status, to_status, at, source, reason) \
     SELECT 'bbps', txnid, NULL, $12, $25::bigint, $18, $19 FROM bill), \
     journal AS (INSERT INTO journals (partner_id, purpose, kind, txn_id, memo, at) \
     SELECT $1, 'debit', 'bbps', txnid, $20, $26::bigint FROM bill RETURNING id), \
     posted AS (INSERT INTO postings (journal_id, account, amount) \
     SELECT journal.id, u.account, u.amount FROM journal, \
     UNNEST($21::text[], $22::bigint[]) WITH ORDINALITY AS u(account, amount, n) ORDER BY u.n), \
     poll AS (INSERT INTO upstream_polls (kind, txn_id, attempts, next_poll_at) \
     SELECT 'bbps', txnid, 0, $23::bigint FROM bill WHERE $23::bigint IS NOT NULL \
     ON CONFLICT (kind, txn_id) DO UPDATE SET attempts = 0, next_poll_at = EXCLUDED.next_poll_at, \
     lease_owner = CASE WHEN upstream_polls.lease_until > $24 THEN upstream_polls.lease_owner END, \
     lease_until = CASE WHEN upstream_polls.lease_until > $24 THEN upstream_polls.lease_until END) \
     SELECT balance FROM wallet";

/// A whole group of bill payments in one statement, for when the wallet
/// holds enough for all of them and none is refused (the common case): as
/// [`PAY_BILL`] for each, with one wallet `UPDATE` by the group's total.
/// `$1`–`$16` the records as [`PgTable::INSERT`] takes them (an array per
/// column), `$17` the group's wallet change, `$18` the partner, `$19`–`$26`
/// an array per value of a payment beyond its record (named in `e` below,
/// in queue order), `$27`–`$29` the postings (their payment's txnid,
/// account and amount), `$30` now (for the poll jobs' leases). Each
/// payment's upstream reference is stored here too, so that it needs no
/// transaction of its own. A short wallet writes nothing and returns no
/// row; a refusal (a reference or number taken) fails the statement, and
/// the group is then paid a payment at a time.
static PAY_BILLS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH wallet AS (UPDATE wallets SET balance = balance + $17 \
         WHERE partner_id = $18 AND balance + $17 >= 0 RETURNING balance), \
         bill AS ({insert} WHERE EXISTS (SELECT 1 FROM wallet) RETURNING txnid, status), \
         e AS (SELECT * FROM UNNEST($19::bigint[], $20::text[], $21::text[], $22::text[], $23::bigint[], \
         $24::bigint[], $25::bigint[], $26::text[]) WITH ORDINALITY \
         AS e(txnid, source, reason, memo, poll_at, history_at, journal_at, ref_tail, n)), \
         paid AS (SELECT e.*, bill.status FROM bill JOIN e USING (txnid)), \
         history AS (INSERT INTO status_history (kind, txn_id, from_status, to_status, at, source, reason) \
         SELECT 'bbps', txnid, NULL, status, history_at, source, reason FROM paid ORDER BY n), \
         journal AS (INSERT INTO journals (partner_id, purpose, kind, txn_id, memo, at) \
         SELECT $18, 'debit', 'bbps', txnid, memo, journal_at FROM paid ORDER BY n RETURNING id, txn_id), \
         posted AS (INSERT INTO postings (journal_id, account, amount) SELECT journal.id, p.account, p.amount \
         FROM UNNEST($27::bigint[], $28::text[], $29::bigint[]) WITH ORDINALITY AS p(txn_id, account, amount, n) \
         JOIN journal ON journal.txn_id = p.txn_id ORDER BY p.n), \
         poll AS (INSERT INTO upstream_polls (kind, txn_id, attempts, next_poll_at) \
         SELECT 'bbps', txnid, 0, poll_at FROM paid WHERE poll_at IS NOT NULL ORDER BY n \
         ON CONFLICT (kind, txn_id) DO UPDATE SET attempts = 0, next_poll_at = EXCLUDED.next_poll_at, \
         lease_owner = CASE WHEN upstream_polls.lease_until > $30 THEN upstream_polls.lease_owner END, \
         lease_until = CASE WHEN upstream_polls.lease_until > $30 THEN upstream_polls.lease_until END), \
         refs AS (INSERT INTO upstream_refs (kind, txn_id, ref_tail) SELECT 'bbps', txnid, ref_tail FROM paid) \
         SELECT balance FROM wallet",
        insert = <BillPayment as super::transactions::PgTable>::INSERT
    )
});

impl PostgresStore {
    /// [`Store::create_dmt_debited`], before the outcome is reported.
    pub(super) async fn debit_dmt(
        &self,
        mut transfer: DmtTransfer,
        route: &DmtRoute,
        limit: &MonthlyLimit,
        note: &ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<DmtTransfer>, Stop> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the transfer")?;
        transfer.ackno = 0;
        let journal = Journal::dmt_debit(&transfer, note.at);
        let wallet = charge_wallet(&tx, transfer.partner, journal.wallet_change()).await?;
        check_limit(&tx, &transfer, route, limit).await?;
        transfer.ackno = super::transactions::insert_new(&tx, &self.numbers, &transfer, note).await?;
        super::transactions::insert_route(&tx, &transfer, route).await?;
        insert_journal(&tx, &journal.with_txn_id(transfer.ackno)).await?;
        if let Some(at) = poll_at {
            schedule_poll(&tx, TxnKind::Dmt, transfer.ackno, at).await?;
        }
        // Stored with the transfer, so that it needs no transaction of its own before it is sent.
        let tail = UpstreamRef { kind: TxnKind::Dmt, id: transfer.ackno }.new_tail(&self.installation);
        let assign: [&(dyn ToSql + Sync); 3] = [&TxnKind::Dmt.as_str(), &transfer.ackno, &tail];
        let sql = crate::store::upstream_work::sql::ASSIGN_UPSTREAM_REF;
        execute(&tx, sql, &assign, "Failed to store the upstream reference").await?;
        super::chain::commit_sealed(tx, "Failed to commit the transfer").await?;
        Ok(Debited { record: transfer, wallet, upstream_ref: Some(tail) })
    }
}

/// A bill payment waiting for its group commit, and where to answer.
struct PendingBill {
    payment: BillPayment,
    note: ChangeNote,
    poll_at: Option<Timestamp>,
    answer: oneshot::Sender<Result<Debited<BillPayment>, Stop>>,
}

/// The queues of the bill payment writers (see the module's doc).
pub(super) struct BillWriters(Vec<mpsc::Sender<PendingBill>>);

impl BillWriters {
    /// Starts the writer tasks on the current runtime; they end when the
    /// store is dropped. `installation`: the store's installation id, part
    /// of every upstream reference.
    pub(super) fn start(pool: &Pool, numbers: &TxnNumbers, installation: &Arc<str>) -> Self {
        let queues = (0..WRITERS)
            .map(|_| {
                let (queue, pending) = mpsc::channel(QUEUE);
                tokio::spawn(write_bills(pool.clone(), numbers.clone(), Arc::clone(installation), pending));
                queue
            })
            .collect();
        BillWriters(queues)
    }

    /// Queues the payment on its partner's writer and waits for its commit.
    pub(super) async fn commit(
        &self,
        payment: BillPayment,
        note: ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<BillPayment>, Stop> {
        let writer = payment.partner.number().rem_euclid(WRITERS as i64) as usize;
        let queue = self.0.get(writer).ok_or_else(|| writer_gone("no writer"))?;
        let (answer, answered) = oneshot::channel();
        queue.send(PendingBill { payment, note, poll_at, answer }).await.map_err(|_| writer_gone("queue closed"))?;
        answered.await.map_err(|_| writer_gone("no answer"))?
    }
}

/// The refusal when a writer task is gone (its runtime shut down).
fn writer_gone(why: &str) -> Stop {
    StoreError::Unavailable(anyhow::anyhow!("the bill payment writer stopped: {why}")).into()
}

/// A writer task: takes every payment waiting, commits them as a group.
async fn write_bills(
    pool: Pool,
    numbers: TxnNumbers,
    installation: Arc<str>,
    mut pending: mpsc::Receiver<PendingBill>,
) {
    let mut group = Vec::with_capacity(GROUP_MAX);
    while pending.recv_many(&mut group, GROUP_MAX).await > 0 {
        let outcomes = commit_group(&pool, &numbers, &installation, &group).await;
        for (payment, outcome) in group.drain(..).zip(outcomes) {
            // A caller that stopped waiting has nothing to be told.
            let _ = payment.answer.send(outcome);
        }
    }
}

/// Commits `group` in one transaction; each payment's outcome, in order.
/// A failure of the transaction itself fails every payment.
async fn commit_group(
    pool: &Pool,
    numbers: &TxnNumbers,
    installation: &str,
    group: &[PendingBill],
) -> Vec<Result<Debited<BillPayment>, Stop>> {
    let committed = async {
        let mut client = pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.store_context("Failed to begin the bill payments")?;
        let outcomes = pay_group(&tx, numbers, installation, group).await?;
        super::chain::commit_sealed(tx, "Failed to commit the bill payments").await?;
        Ok(outcomes)
    }
    .await;
    committed.unwrap_or_else(|error| {
        group.iter().map(|_| Err(Stop::Refused(DebitError::Store(same_error(&error))))).collect()
    })
}

/// A copy of `error` for each caller it fails.
fn same_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(e) => StoreError::Unavailable(anyhow::anyhow!("{e:#}")),
        StoreError::Other(e) => StoreError::Other(anyhow::anyhow!("{e:#}")),
    }
}

/// A request of [`pay_group`] in flight: a `SAVEPOINT` (`None`) or
/// [`PAY_BILL`] (the wallet's closing balance, if it moved).
type Sent<'a> = Pin<Box<dyn Future<Output = Result<Option<Paise>, tokio_postgres::Error>> + Send + 'a>>;

/// The group's payments inside the transaction, pipelined: every payment's
/// `SAVEPOINT` and [`PAY_BILL`] are sent at once. A statement that fails
/// aborts the transaction for the ones sent after it, so the group is
/// rolled back to that payment's savepoint and the ones after it are sent
/// again (a refusal costs a round trip; success none). A payment whose
/// wallet did not move (short, or no wallet row yet) is settled afterwards
/// by [`pay_alone`].
async fn pay_group(
    tx: &Transaction<'_>,
    numbers: &TxnNumbers,
    installation: &str,
    group: &[PendingBill],
) -> StoreResult<Vec<Result<Debited<BillPayment>, Stop>>> {
    let statement = tx.prepare_cached(PAY_BILL).await.store_context("Failed to prepare the bill payment")?;
    let mut outcomes: Vec<Option<Result<Debited<BillPayment>, Stop>>> = group.iter().map(|_| None).collect();
    let mut todo: Vec<usize> = (0..group.len()).collect();
    let mut unmoved = Vec::new();
    let counters = locked_counters(tx, group.len()).await?;
    if let Some(outcomes) = pay_all_at_once(tx, numbers, installation, group, &counters).await? {
        return Ok(outcomes);
    }
    // Rolled back: the same counters serve again.
    let mut counters = counters.into_iter();
    // Each round settles the payment that failed, or gives it a new number.
    for _ in 0..NUMBER_TRIES + group.len() {
        if todo.is_empty() {
            break;
        }
        let mut attempts = Vec::with_capacity(todo.len());
        for &index in &todo {
            let number = next_number(tx, numbers, &mut counters).await?;
            attempts.push((
                index,
                PayBill::new(BillPayment { txnid: number, ..group[index].payment.clone() }, &group[index]),
            ));
        }
        let mut sent: Vec<Sent<'_>> = Vec::with_capacity(2 * attempts.len());
        for (index, pay) in &attempts {
            let savepoint = format!("SAVEPOINT p{index}");
            sent.push(Box::pin(async move { tx.batch_execute(&savepoint).await.map(|()| None) }));
            let statement = &statement;
            sent.push(Box::pin(async move { pay.run(tx, statement).await }));
        }
        let mut answers = join_in_order(sent).await.into_iter();
        let mut failed = None;
        for (index, pay) in attempts {
            let (Some(savepoint), Some(paid)) = (answers.next(), answers.next()) else { break };
            match savepoint.and(paid) {
                Ok(Some(closing)) => outcomes[index] = Some(Ok(pay.debited(closing))),
                Ok(None) => unmoved.push(index),
                Err(error) => {
                    failed = Some((index, pay.payment, error));
                    break;
                }
            }
        }
        let Some((index, payment, error)) = failed else { break };
        let rollback = format!("ROLLBACK TO SAVEPOINT p{index}");
        tx.batch_execute(&rollback).await.store_context("Failed to roll a bill payment back")?;
        let position = todo.iter().position(|i| *i == index).unwrap_or(0);
        if taken_number(&error) {
            todo.drain(..position);
        } else {
            outcomes[index] = Some(Err(payment_refused(error, &payment)));
            todo.drain(..=position);
        }
    }
    for index in unmoved {
        outcomes[index] = Some(pay_alone(tx, numbers, &group[index]).await);
    }
    let unsettled = || Err(StoreError::Other(anyhow::anyhow!("a bill payment was left unsettled")).into());
    Ok(outcomes.into_iter().map(|outcome| outcome.unwrap_or_else(unsettled)).collect())
}

/// The whole group in one [`PAY_BILLS`] under a savepoint, numbered from
/// `counters`: every payment's outcome when the wallet held enough for all
/// of them and none was refused, else `None` with nothing written (rolled
/// back to the savepoint), for the group to be paid a payment at a time.
async fn pay_all_at_once(
    tx: &Transaction<'_>,
    numbers: &TxnNumbers,
    installation: &str,
    group: &[PendingBill],
    counters: &[u64],
) -> StoreResult<Option<Vec<Result<Debited<BillPayment>, Stop>>>> {
    if counters.len() != group.len() {
        return Ok(None);
    }
    let mut pays = Vec::with_capacity(group.len());
    for (pending, counter) in group.iter().zip(counters) {
        let number = numbers.number(TxnKind::Bbps, *counter).map_err(|e| StoreError::Other(anyhow::Error::new(e)))?;
        pays.push(PayBill::new(BillPayment { txnid: number, ..pending.payment.clone() }, pending));
    }
    let tails: Vec<String> = pays
        .iter()
        .map(|pay| UpstreamRef { kind: TxnKind::Bbps, id: pay.payment.txnid }.new_tail(installation))
        .collect();
    let total = pays.iter().map(|pay| pay.journal.wallet_change()).fold(Paise::ZERO, |sum, change| sum + change);
    let sent: Vec<Sent<'_>> = vec![
        Box::pin(async move { tx.batch_execute("SAVEPOINT group_at_once").await.map(|()| None) }),
        Box::pin(run_group(tx, &pays, &tails, total)),
    ];
    let mut answers = join_in_order(sent).await.into_iter();
    let (Some(savepoint), Some(paid)) = (answers.next(), answers.next()) else { return Ok(None) };
    let closing = match savepoint.and(paid) {
        Ok(Some(closing)) => closing,
        Ok(None) => return Ok(None),
        Err(_) => {
            let rollback = "ROLLBACK TO SAVEPOINT group_at_once";
            tx.batch_execute(rollback).await.store_context("Failed to roll the bill payments back")?;
            return Ok(None);
        }
    };
    // Each payment's wallet move, as if paid one after the other in queue order.
    let mut balance = closing - total;
    let outcomes = pays
        .into_iter()
        .zip(tails)
        .map(|(pay, tail)| {
            balance = balance + pay.journal.wallet_change();
            Ok(Debited { upstream_ref: Some(tail), ..pay.debited(balance) })
        })
        .collect();
    Ok(Some(outcomes))
}

/// What [`PAY_BILLS`] takes of a group's payments beyond their records:
/// one array per value.
struct GroupExtras<'a> {
    txnid: Vec<i64>,
    source: Vec<&'a str>,
    reason: Vec<Option<&'a str>>,
    memo: Vec<&'a str>,
    poll_at: Vec<Option<i64>>,
    history_at: Vec<i64>,
    journal_at: Vec<i64>,
    ref_tail: &'a [String],
    posting_txnid: Vec<i64>,
    posting_account: Vec<&'a str>,
    posting_amount: Vec<i64>,
}

impl<'a> GroupExtras<'a> {
    fn of(pays: &'a [PayBill], ref_tail: &'a [String]) -> Self {
        let postings = || pays.iter().flat_map(|pay| pay.accounts.iter().zip(&pay.amounts).map(move |p| (pay, p)));
        GroupExtras {
            txnid: pays.iter().map(|pay| pay.payment.txnid).collect(),
            source: pays.iter().map(|pay| pay.note.source.as_str()).collect(),
            reason: pays.iter().map(|pay| pay.note.reason.as_deref()).collect(),
            memo: pays.iter().map(|pay| pay.journal.memo.as_str()).collect(),
            poll_at: pays.iter().map(|pay| pay.poll_at).collect(),
            history_at: pays.iter().map(|pay| pay.note.at.unix()).collect(),
            journal_at: pays.iter().map(|pay| pay.journal.at.unix()).collect(),
            ref_tail,
            posting_txnid: postings().map(|(pay, _)| pay.payment.txnid).collect(),
            posting_account: postings().map(|(_, (account, _))| account.as_str()).collect(),
            posting_amount: postings().map(|(_, (_, amount))| *amount).collect(),
        }
    }
}

/// Runs [`PAY_BILLS`] for a group of `pays` (their upstream references
/// `tails`), whose wallet change is `total`: the wallet's closing balance,
/// or `None` (nothing written).
async fn run_group(
    tx: &Transaction<'_>,
    pays: &[PayBill],
    tails: &[String],
    total: Paise,
) -> Result<Option<Paise>, tokio_postgres::Error> {
    let Some(first) = pays.first() else { return Ok(None) };
    let statement = tx.prepare_cached(&PAY_BILLS).await?;
    let records: Vec<BillPayment> = pays.iter().map(|pay| pay.payment.clone()).collect();
    let ids: Vec<i64> = records.iter().map(|record| record.txnid).collect();
    let record_columns = super::transactions::columns(&records, &ids);
    let e = GroupExtras::of(pays, tails);
    let (total, partner) = (total.get(), first.payment.partner.number());
    let mut params: Vec<&(dyn ToSql + Sync)> = record_columns.iter().map(|c| &**c as &(dyn ToSql + Sync)).collect();
    params.extend::<[&(dyn ToSql + Sync); 14]>([
        &total,
        &partner,
        &e.txnid,
        &e.source,
        &e.reason,
        &e.memo,
        &e.poll_at,
        &e.history_at,
        &e.journal_at,
        &e.ref_tail,
        &e.posting_txnid,
        &e.posting_account,
        &e.posting_amount,
        &first.now,
    ]);
    let row = tx.query_opt(&statement, &params).await?;
    row.map(|row| row.try_get(0).map(Paise::new)).transpose()
}

/// One payment under its own savepoint, sent alone: when the wallet did not
/// move, it opens the wallet row (an unknown partner fails here) and tries
/// once more, then reports the wallet short.
async fn pay_alone(
    tx: &Transaction<'_>,
    numbers: &TxnNumbers,
    pending: &PendingBill,
) -> Result<Debited<BillPayment>, Stop> {
    let statement = tx.prepare_cached(PAY_BILL).await.store_context("Failed to prepare the bill payment")?;
    let mut wallet_opened = false;
    for _ in 0..NUMBER_TRIES {
        let number = next_number(tx, numbers, &mut std::iter::empty()).await?;
        let pay = PayBill::new(BillPayment { txnid: number, ..pending.payment.clone() }, pending);
        tx.batch_execute("SAVEPOINT payment").await.store_context("Failed to begin a bill payment")?;
        match pay.run(tx, &statement).await {
            Ok(Some(closing)) => return Ok(pay.debited(closing)),
            Ok(None) if !wallet_opened => {
                wallet_opened = true;
                let partner = pending.payment.partner.number();
                if let Err(error) =
                    execute(tx, crate::store::ledger::sql::ENSURE_WALLET, &[&partner], "Failed to open the wallet")
                        .await
                {
                    rollback_payment(tx).await?;
                    return Err(Stop::from(error));
                }
            }
            Ok(None) => {
                rollback_payment(tx).await?;
                return Err(Stop::Overdrawn);
            }
            Err(error) if taken_number(&error) => rollback_payment(tx).await?,
            Err(error) => {
                rollback_payment(tx).await?;
                return Err(payment_refused(error, &pay.payment));
            }
        }
    }
    Err(StoreError::Other(anyhow::anyhow!("no free bill payment number in {NUMBER_TRIES} tries")).into())
}

/// Undoes [`pay_alone`]'s current try.
async fn rollback_payment(tx: &Transaction<'_>) -> StoreResult<()> {
    tx.batch_execute("ROLLBACK TO SAVEPOINT payment").await.store_context("Failed to roll a bill payment back")
}

/// Awaits every future, polling them in order, so that the requests they
/// send on their first poll go out in that order: tokio-postgres pipelines
/// the requests sent before their answers are read.
async fn join_in_order<T>(mut futures: Vec<Pin<Box<dyn Future<Output = T> + Send + '_>>>) -> Vec<T> {
    let mut done: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, slot) in futures.iter_mut().zip(done.iter_mut()).filter(|(_, slot)| slot.is_none()) {
            match future.as_mut().poll(cx) {
                Poll::Ready(value) => *slot = Some(value),
                Poll::Pending => pending = true,
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

/// A new bill payment number: the next counter value through the keyed
/// permutation (a value drawn now when `counters` has run out).
async fn next_number(
    tx: &Transaction<'_>,
    numbers: &TxnNumbers,
    counters: &mut impl Iterator<Item = u64>,
) -> StoreResult<i64> {
    let counter = match counters.next() {
        Some(counter) => counter,
        None => {
            let sql = "SELECT nextval('bbps_number_counter')";
            let row = query_one(tx, sql, &[], "Failed to count a new bill payment").await?;
            row.try_get::<_, i64>(0).store_context("Failed to read a counter")? as u64
        }
    };
    numbers.number(TxnKind::Bbps, counter).map_err(|e| StoreError::Other(anyhow::Error::new(e)))
}

/// `count` values of the bill counter, smallest first, after taking
/// [`lock_ids`]' shared lock for the transaction: one round trip.
async fn locked_counters(tx: &Transaction<'_>, count: usize) -> StoreResult<Vec<u64>> {
    let sql = "SELECT nextval('bbps_number_counter') \
               FROM (SELECT pg_advisory_xact_lock_shared($1)) AS locked, generate_series(1, $2::bigint)";
    let params: [&(dyn ToSql + Sync); 2] = [&<BillPayment as super::transactions::PgTable>::ID_LOCK, &(count as i64)];
    let rows = query(tx, sql, &params, "Failed to count new bill payments").await?;
    let counters = rows.iter().map(|row| row.try_get::<_, i64>(0).map(|c| c as u64)).collect::<Result<Vec<_>, _>>();
    let mut counters = counters.store_context("Failed to read a counter")?;
    counters.sort_unstable();
    Ok(counters)
}

/// Whether the statement failed because the number drawn is an imported
/// record's (the primary key), rather than the reference being taken.
fn taken_number(error: &tokio_postgres::Error) -> bool {
    error.as_db_error().and_then(DbError::constraint) == Some("bill_payments_pkey")
}

/// The refusal for a failed [`PAY_BILL`].
fn payment_refused(error: tokio_postgres::Error, payment: &BillPayment) -> Stop {
    match error.as_db_error().and_then(DbError::table) {
        Some("bill_payments") if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            Stop::Refused(DebitError::Duplicate(payment.reference.as_str().to_owned()))
        }
        _ => Stop::from(store_error(error, "Failed to pay the bill")),
    }
}

/// One payment as [`PAY_BILL`] takes it, its values owned.
struct PayBill {
    payment: BillPayment,
    journal: Journal,
    accounts: Vec<String>,
    amounts: Vec<i64>,
    note: ChangeNote,
    poll_at: Option<i64>,
    now: i64,
}

impl PayBill {
    fn new(payment: BillPayment, pending: &PendingBill) -> Self {
        let journal = Journal::bill_debit(&payment, pending.note.at);
        PayBill {
            accounts: journal.postings.iter().map(|p| p.account.name()).collect(),
            amounts: journal.postings.iter().map(|p| p.amount.get()).collect(),
            journal,
            payment,
            note: pending.note.clone(),
            poll_at: pending.poll_at.map(Timestamp::unix),
            now: pending.note.at.unix(),
        }
    }

    /// Runs [`PAY_BILL`]: the wallet's closing balance, or `None` (nothing
    /// written) when the wallet is short or has no row.
    async fn run(&self, tx: &Transaction<'_>, statement: &Statement) -> Result<Option<Paise>, tokio_postgres::Error> {
        let (payment, journal, note) = (&self.payment, &self.journal, &self.note);
        let refunded_at = payment.refunded_at.map(Timestamp::unix);
        let params: [&(dyn ToSql + Sync); 26] = [
            &payment.partner.number(),
            &payment.txnid,
            &payment.reference.as_str(),
            &payment.operator_name,
            &payment.ca_number,
            &payment.amount.get(),
            &payment.ad1,
            &payment.ad2,
            &payment.ad3,
            &payment.commission.get(),
            &payment.tds.get(),
            &payment.status.name(),
            &payment.operator_ref,
            &payment.created_at.unix(),
            &payment.refund_txn_id,
            &refunded_at,
            &journal.wallet_change().get(),
            &note.source.as_str(),
            &note.reason,
            &journal.memo,
            &self.accounts,
            &self.amounts,
            &self.poll_at,
            &self.now,
            &note.at.unix(),
            &journal.at.unix(),
        ];
        let row = tx.query_opt(statement, &params).await?;
        row.map(|row| row.try_get(0).map(Paise::new)).transpose()
    }

    /// The record and the wallet move, once the wallet closed at `closing`.
    fn debited(self, closing: Paise) -> Debited<BillPayment> {
        let wallet = WalletMove { opening: closing - self.journal.wallet_change(), closing };
        Debited { record: self.payment, wallet, upstream_ref: None }
    }
}

#[cfg(test)]
mod tests {
    //! Against a real server, as the engine's other tests
    //! (`PAYRAIL_TEST_DATABASE_URL`; skipped without it).

    use std::collections::HashSet;

    use super::super::tests::{new_partner, TestDb};
    use super::*;
    use crate::domain::BillStatus;

    /// What [`bill`] takes from the wallet: ₹250.
    const BILL: i64 = 25_000;

    /// When the tests' payments are made.
    const AT: Timestamp = Timestamp::from_unix(1_700_000_000);

    type Paying<'a> = Pin<Box<dyn Future<Output = Result<Debited<BillPayment>, DebitError>> + Send + 'a>>;

    fn bill(partner: i64, reference: &str) -> anyhow::Result<BillPayment> {
        super::super::tests::bill(partner, 0, reference)
    }

    /// Adds partner `number` with a wallet holding `bills` of [`BILL`].
    async fn funded(store: &PostgresStore, number: i64, bills: i64) -> anyhow::Result<RegistrationId> {
        store.insert_partner(new_partner(Some(number))).await?;
        let partner = RegistrationId::new(number);
        store.post_journal(Journal::top_up(partner, Paise::new(bills * BILL), "top-up".into(), AT)).await?;
        Ok(partner)
    }

    #[tokio::test]
    async fn a_group_of_payments_refuses_each_bad_one_alone() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let store = &db.store;
        let (partner, at) = (funded(store, 554, 13).await?, AT);
        // In queue order: 12 payments, 3 repeats, a stranger's, and 2 more
        // of which only one can be paid (a repeat is refused while the wallet
        // still holds enough: the debit is tried first).
        let mut payments = (0..12).map(|n| bill(554, &format!("G{n}"))).collect::<anyhow::Result<Vec<_>>>()?;
        payments.extend([bill(554, "G0")?, bill(554, "G5")?, bill(554, "G11")?, bill(999, "G1")?]);
        payments.extend([bill(554, "G12")?, bill(554, "G13")?]);
        let note = ChangeNote { source: crate::domain::ChangeSource::Partner, reason: None, at };
        let paying: Vec<Paying<'_>> = payments
            .into_iter()
            .map(|payment| Box::pin(store.create_bill_debited(payment, note.clone(), Some(at))) as Paying<'_>)
            .collect();
        let (mut paid, mut short, mut duplicate, mut unknown) = (HashSet::new(), 0, 0, 0);
        for outcome in join_in_order(paying).await {
            match outcome {
                Ok(debited) => {
                    assert!(paid.insert(debited.record.txnid), "a number given twice");
                    assert_eq!(debited.upstream_ref, None, "assigned after the debit, as on SQLite");
                }
                Err(DebitError::InsufficientFunds { balance }) => {
                    assert_eq!(balance, Paise::ZERO);
                    short += 1;
                }
                Err(DebitError::Duplicate(_)) => duplicate += 1,
                Err(DebitError::UnknownPartner) => unknown += 1,
                Err(other) => anyhow::bail!("unexpected refusal: {other}"),
            }
        }
        assert_eq!((paid.len(), short, duplicate, unknown), (13, 1, 3, 1));
        assert_eq!(store.wallet_balance(partner).await?, Paise::ZERO);
        assert_eq!(store.counts().await?, (0, 13));
        let audit = store.audit().await?;
        assert_eq!(audit, LedgerAudit { total: 0, journals: audit.journals, ..LedgerAudit::default() });
        for txnid in paid {
            let (payment, history) = store.bill_with_history(txnid).await?.ok_or_else(|| anyhow::anyhow!("lost"))?;
            assert_eq!((payment.status, history.len()), (BillStatus::Pending, 1));
        }
        let polls = query_one(&store.client().await?, "SELECT COUNT(*) FROM upstream_polls", &[], "polls").await?;
        assert_eq!(polls.try_get::<_, i64>(0)?, 13, "each payment has its poll job");
        db.finish().await
    }

    #[tokio::test]
    async fn a_group_the_wallet_can_pay_whole_is_paid_in_queue_order() -> anyhow::Result<()> {
        let Some(db) = TestDb::create().await? else { return Ok(()) };
        let store = &db.store;
        let (partner, at) = (funded(store, 555, 20).await?, AT);
        let note = ChangeNote { source: crate::domain::ChangeSource::Partner, reason: Some("why".into()), at };
        let paying: Vec<Paying<'_>> = (0..20)
            .map(|n| {
                let mut payment = bill(555, &format!("W{n}"))?;
                payment.ad1 = (n % 2 == 0).then(|| format!("ad{n}"));
                let poll_at = (n % 3 != 0).then_some(at);
                Ok(Box::pin(store.create_bill_debited(payment, note.clone(), poll_at)) as Paying<'_>)
            })
            .collect::<anyhow::Result<_>>()?;
        let mut numbers = HashSet::new();
        for (n, outcome) in join_in_order(paying).await.into_iter().enumerate() {
            let debited = outcome?;
            let opening = Paise::new((20 - n as i64) * BILL);
            assert_eq!((debited.wallet.opening, debited.wallet.closing), (opening, opening - Paise::new(BILL)), "{n}");
            assert!(numbers.insert(debited.record.txnid), "a number given twice");
            // Its upstream reference is stored with it, in the same transaction.
            let tail = debited.upstream_ref.ok_or_else(|| anyhow::anyhow!("no upstream reference"))?;
            let installation = store.installation_id().await?;
            assert!(tail.starts_with(&format!("B{}{installation}", debited.record.txnid)), "{tail}");
            assert_eq!(store.upstream_ref_of(TxnKind::Bbps, debited.record.txnid).await?, Some(tail));
            let (stored, history) =
                store.bill_with_history(debited.record.txnid).await?.ok_or_else(|| anyhow::anyhow!("lost"))?;
            assert_eq!(stored.reference.as_str(), format!("W{n}"));
            assert_eq!(stored.ad1, (n % 2 == 0).then(|| format!("ad{n}")));
            assert_eq!((history.len(), history[0].reason.as_deref()), (1, Some("why")));
        }
        assert_eq!(store.wallet_balance(partner).await?, Paise::ZERO);
        let audit = store.audit().await?;
        assert_eq!(audit, LedgerAudit { total: 0, journals: audit.journals, ..LedgerAudit::default() });
        let client = store.client().await?;
        let polls = query_one(&client, "SELECT COUNT(*) FROM upstream_polls", &[], "polls").await?;
        assert_eq!(polls.try_get::<_, i64>(0)?, 13, "a poll job for each payment that asked for one");
        let per_debit = Journal::bill_debit(&bill(555, "any")?, at).postings.len() as i64;
        let top_up = Journal::top_up(partner, Paise::new(BILL), "top-up".into(), at).postings.len() as i64;
        let postings = query_one(&client, "SELECT COUNT(*) FROM postings", &[], "postings").await?;
        assert_eq!(postings.try_get::<_, i64>(0)?, top_up + 20 * per_debit, "each journal's postings");
        db.finish().await
    }
}
