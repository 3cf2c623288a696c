//! Transactions paid from the wallet: the debit, the new record with its
//! number and first history row, its journal and its poll job, in one
//! database transaction.
//!
//! A partner's payments queue on its wallet row, whose lock each holds
//! until its commit has reached the disk, so one at a time waits for a
//! WAL flush (several milliseconds on a virtual disk). Bill payments are
//! therefore committed in groups: each partner's payments go to one of
//! [`WRITERS`] writer tasks, which takes every payment waiting (up to
//! [`GROUP_MAX`]) and runs each as ONE statement under its own savepoint
//! inside one transaction, commits once, and only then answers each
//! caller. A refused payment rolls back its savepoint alone. A partner's
//! wallet is only ever locked by one writer, so two groups cannot deadlock.

use tokio::sync::{mpsc, oneshot};

use super::*;

/// Writer tasks committing bill payments; a partner always uses the same one.
const WRITERS: usize = 4;
/// Most payments one group commit holds.
const GROUP_MAX: usize = 64;
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

impl PostgresStore {
    /// [`TransactionStore::create_dmt_debited`].
    pub(super) async fn dmt_debited(
        &self,
        transfer: DmtTransfer,
        route: DmtRoute,
        limit: MonthlyLimit,
        note: ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<DmtTransfer>, DebitError> {
        let partner = transfer.partner;
        let result = self.debit_dmt(transfer, &route, &limit, &note, poll_at).await;
        self.settle(partner, result).await
    }

    /// [`TransactionStore::create_bill_debited`].
    pub(super) async fn bill_debited(
        &self,
        payment: BillPayment,
        note: ChangeNote,
        poll_at: Option<Timestamp>,
    ) -> Result<Debited<BillPayment>, DebitError> {
        let partner = payment.partner;
        let result = self.bill_writers.commit(payment, note, poll_at).await;
        self.settle(partner, result).await
    }

    /// [`Store::create_dmt_debited`], before the outcome is reported.
    async fn debit_dmt(
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
        transfer.ackno = insert_new(&tx, &self.numbers, &transfer, note).await?;
        insert_route(&tx, &transfer, route).await?;
        insert_journal(&tx, &journal.with_txn_id(transfer.ackno)).await?;
        if let Some(at) = poll_at {
            schedule_poll(&tx, TxnKind::Dmt, transfer.ackno, at).await?;
        }
        tx.commit().await.store_context("Failed to commit the transfer")?;
        Ok(Debited { record: transfer, wallet })
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
    /// store is dropped.
    pub(super) fn start(pool: &Pool, numbers: &TxnNumbers) -> Self {
        let queues = (0..WRITERS)
            .map(|_| {
                let (queue, pending) = mpsc::channel(QUEUE);
                tokio::spawn(write_bills(pool.clone(), numbers.clone(), pending));
                queue
            })
            .collect();
        BillWriters(queues)
    }

    /// Queues the payment on its partner's writer and waits for its commit.
    async fn commit(
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
async fn write_bills(pool: Pool, numbers: TxnNumbers, mut pending: mpsc::Receiver<PendingBill>) {
    let mut group = Vec::with_capacity(GROUP_MAX);
    while pending.recv_many(&mut group, GROUP_MAX).await > 0 {
        let outcomes = commit_group(&pool, &numbers, &group).await;
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
    group: &[PendingBill],
) -> Vec<Result<Debited<BillPayment>, Stop>> {
    let mut outcomes = Vec::with_capacity(group.len());
    let failed = async {
        let mut client = pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.store_context("Failed to begin the bill payments")?;
        lock_ids::<BillPayment>(&tx, false).await?;
        let mut counters = draw_counters(&tx, group.len()).await?.into_iter();
        for pending in group {
            outcomes.push(pay_bill(&tx, numbers, &mut counters, pending).await);
        }
        tx.commit().await.store_context("Failed to commit the bill payments")
    }
    .await;
    match failed {
        Ok(()) => outcomes,
        Err(error) => group.iter().map(|_| Err(Stop::Refused(DebitError::Store(same_error(&error))))).collect(),
    }
}

/// A copy of `error` for each caller it fails.
fn same_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(e) => StoreError::Unavailable(anyhow::anyhow!("{e:#}")),
        StoreError::Other(e) => StoreError::Other(anyhow::anyhow!("{e:#}")),
    }
}

/// `count` values of the bill counter, in order, in one round trip.
async fn draw_counters(tx: &Transaction<'_>, count: usize) -> Result<Vec<u64>, StoreError> {
    let sql = "SELECT nextval('bbps_number_counter') FROM generate_series(1, $1::bigint)";
    let rows = query(tx, sql, &[&(count as i64)], "Failed to count new bill payments").await?;
    let counters = rows.iter().map(|row| row.try_get::<_, i64>(0)).collect::<Result<Vec<_>, _>>();
    let mut counters: Vec<u64> =
        counters.store_context("Failed to read a counter")?.into_iter().map(|c| c as u64).collect();
    counters.sort_unstable();
    Ok(counters)
}

/// One payment of a group under its own savepoint: [`PAY_BILL`] with the
/// next number (another if an imported record holds it), and, when the
/// wallet row is missing, once more after creating it.
async fn pay_bill(
    tx: &Transaction<'_>,
    numbers: &TxnNumbers,
    counters: &mut impl Iterator<Item = u64>,
    pending: &PendingBill,
) -> Result<Debited<BillPayment>, Stop> {
    let mut payment = BillPayment { txnid: 0, ..pending.payment.clone() };
    let journal = Journal::bill_debit(&payment, pending.note.at);
    let mut wallet_opened = false;
    for _ in 0..NUMBER_TRIES {
        let counter = match counters.next() {
            Some(counter) => counter,
            None => draw_counters(tx, 1).await?.into_iter().next().ok_or_else(|| writer_gone("no counter"))?,
        };
        let number = numbers.number(TxnKind::Bbps, counter).map_err(|e| StoreError::Other(anyhow::Error::new(e)))?;
        payment.txnid = number;
        tx.batch_execute("SAVEPOINT payment").await.store_context("Failed to begin a bill payment")?;
        match pay_bill_statement(tx, &payment, &journal, pending).await {
            Ok(Some(closing)) => {
                let wallet = WalletMove { opening: closing - journal.wallet_change(), closing };
                return Ok(Debited { record: payment, wallet });
            }
            Ok(None) if !wallet_opened => {
                // No row: the wallet is short, or has none yet. Open it
                // (an unknown partner fails here) and try once more.
                wallet_opened = true;
                let opened =
                    execute(tx, ENSURE_WALLET, &[&payment.partner.number()], "Failed to open the wallet").await;
                if let Err(error) = opened {
                    rollback_payment(tx).await?;
                    return Err(Stop::from(error));
                }
                continue;
            }
            Ok(None) => {
                rollback_payment(tx).await?;
                return Err(Stop::Overdrawn);
            }
            Err(error) if taken_number(&error) => rollback_payment(tx).await?,
            Err(error) => {
                rollback_payment(tx).await?;
                return Err(match error.as_db_error().and_then(DbError::table) {
                    Some("bill_payments") if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                        Stop::Refused(DebitError::Duplicate(payment.reference.as_str().to_owned()))
                    }
                    _ => Stop::from(store_error(error, "Failed to pay the bill")),
                });
            }
        }
    }
    Err(StoreError::Other(anyhow::anyhow!("no free bill payment number in {NUMBER_TRIES} tries")).into())
}

/// Runs [`PAY_BILL`]: the wallet's closing balance, or `None` (nothing
/// written) when the wallet is short or has no row.
async fn pay_bill_statement(
    tx: &Transaction<'_>,
    payment: &BillPayment,
    journal: &Journal,
    pending: &PendingBill,
) -> Result<Option<Paise>, tokio_postgres::Error> {
    let accounts: Vec<String> = journal.postings.iter().map(|p| p.account.name()).collect();
    let amounts: Vec<i64> = journal.postings.iter().map(|p| p.amount.get()).collect();
    let refunded_at = payment.refunded_at.map(Timestamp::unix);
    let (note, poll_at) = (&pending.note, pending.poll_at.map(Timestamp::unix));
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
        &note.source,
        &note.reason,
        &journal.memo,
        &accounts,
        &amounts,
        &poll_at,
        &Timestamp::now().unix(),
        &note.at.unix(),
        &journal.at.unix(),
    ];
    let statement = tx.prepare_cached(PAY_BILL).await?;
    let row = tx.query_opt(&statement, &params).await?;
    row.map(|row| row.try_get(0).map(Paise::new)).transpose()
}

/// Whether the statement failed because the number drawn is an imported
/// record's (the primary key), rather than the reference being taken.
fn taken_number(error: &tokio_postgres::Error) -> bool {
    error.as_db_error().and_then(DbError::constraint) == Some("bill_payments_pkey")
}

/// Undoes the current payment's statements, keeping the group's others.
async fn rollback_payment(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.batch_execute("ROLLBACK TO SAVEPOINT payment").await.store_context("Failed to roll a bill payment back")
}
