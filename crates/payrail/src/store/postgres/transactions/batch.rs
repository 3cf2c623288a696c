//! Batch inserts on PostgreSQL, 5,000 rows per statement as one array per
//! column (`INSERT … SELECT … FROM UNNEST`), and the numbering of new
//! records: their ids come from a counter through the keyed permutation.

use std::collections::{HashMap, HashSet};

use super::super::columns::{array, Column};
use super::super::*;
use super::PgTable;
use crate::store::transactions::{sql, Progress};

/// Rows per batch-insert statement: large enough that round trips do not
/// matter, small enough that one chunk's arrays stay a few megabytes.
const CHUNK_ROWS: usize = 5_000;

/// The first history rows of a chunk: `$1` kind, `$2` time, `$3` source,
/// `$4` reason, one array of ids and one of states.
const INSERT_HISTORIES: &str = "INSERT INTO status_history (kind, txn_id, from_status, to_status, at, source, reason) \
     SELECT $1::text, txn_id, NULL, to_status, $2::bigint, $3::text, $4::text \
     FROM UNNEST($5::bigint[], $6::text[]) AS u(txn_id, to_status)";

impl PostgresStore {
    /// Inserts `rows` in chunks, all in one transaction. Each chunk is
    /// checked first, so that a rejection names the first offending row just
    /// as a row-by-row insert would: earlier chunks are already in the table
    /// (the transaction sees them), so checking a chunk against the table and
    /// against itself covers the whole batch.
    pub(super) async fn insert_new_batch<T: PgTable>(
        &self,
        rows: Vec<T>,
        note: ChangeNote,
        progress: Progress,
    ) -> Result<Vec<i64>, InsertError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.store_context("Failed to begin the batch")?;
        lock_ids::<T>(&tx, rows.iter().any(|row| row.id() != 0)).await?;
        let partners = known_partners(&tx, &rows).await?;
        let mut ids = Vec::with_capacity(rows.len());
        for (number, chunk) in rows.chunks(CHUNK_ROWS).enumerate() {
            let offset = number * CHUNK_ROWS;
            check_chunk(&tx, chunk, offset, &partners).await?;
            let chunk_ids = assign_ids(&tx, &self.numbers, chunk).await?;
            insert_chunk(&tx, chunk, &chunk_ids, &note).await.map_err(|e| chunk_error(e, chunk, &chunk_ids, offset))?;
            ids.extend(chunk_ids);
            progress(ids.len() as u64);
        }
        super::super::chain::commit_sealed(tx, "Failed to commit the batch").await?;
        Ok(ids)
    }
}

/// Inserts one new record as a batch of one would (a new id from the
/// identity sequence, its first history row); returns its id.
pub(in crate::store::postgres) async fn insert_new<T: PgTable>(
    tx: &Transaction<'_>,
    numbers: &TxnNumbers,
    row: &T,
    note: &ChangeNote,
) -> Result<i64, Stop> {
    lock_ids::<T>(tx, false).await?;
    let rows = std::slice::from_ref(row);
    let ids = assign_ids(tx, numbers, rows).await?;
    insert_chunk(tx, rows, &ids, note).await.map_err(|e| insert_refusal(chunk_error(e, rows, &ids, 0)))?;
    let id = ids.first().copied().ok_or_else(|| StoreError::Other(anyhow::anyhow!("no id for the new record")))?;
    Ok(id)
}

/// Serialises batches that move the identity sequence. A batch with explicit
/// ids advances the sequence past them (see [`assign_ids`]); were a batch
/// drawing new ids running alongside, that could move the sequence back
/// below ids already handed out. So explicit-id batches take the lock
/// exclusively, the others share it.
async fn lock_ids<T: PgTable>(tx: &Transaction<'_>, explicit: bool) -> StoreResult<()> {
    let sql = if explicit { "SELECT pg_advisory_xact_lock($1)" } else { "SELECT pg_advisory_xact_lock_shared($1)" };
    execute(tx, sql, &[&T::ID_LOCK], "Failed to lock the id sequence").await?;
    Ok(())
}

/// Which of the partners named in `rows` exist.
async fn known_partners<T: PgTable>(tx: &Transaction<'_>, rows: &[T]) -> StoreResult<HashSet<i64>> {
    let named: HashSet<i64> = rows.iter().map(|row| row.partner().number()).collect();
    let named: Vec<i64> = named.into_iter().collect();
    let sql = "SELECT id FROM partners WHERE id = ANY($1)";
    let found = query(tx, sql, &[&named], "Failed to look up the partners").await?;
    found.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>().store_context("Failed to read a partner id")
}

/// Rejects the chunk at its first row that names an unknown partner, or
/// reuses a reference or an explicit id taken by the table or by an earlier
/// row of the chunk.
async fn check_chunk<T: PgTable>(
    tx: &Transaction<'_>,
    chunk: &[T],
    offset: usize,
    partners: &HashSet<i64>,
) -> Result<(), InsertError> {
    let taken_references = taken_references(tx, chunk).await?;
    let taken_ids = taken_ids(tx, chunk).await?;
    let mut references = HashSet::with_capacity(chunk.len());
    let mut ids = HashSet::new();
    for (index, row) in chunk.iter().enumerate().map(|(i, row)| (offset + i, row)) {
        let partner = row.partner();
        if !partners.contains(&partner.number()) {
            return Err(InsertError::UnknownPartner { index, partner });
        }
        let reference_taken =
            taken_references.get(&partner.number()).is_some_and(|set| set.contains(row.reference().as_str()))
                || !references.insert((partner.number(), row.reference().as_str()));
        let id_taken = row.id() != 0 && (taken_ids.contains(&row.id()) || !ids.insert(row.id()));
        if reference_taken || id_taken {
            return Err(InsertError::Duplicate { index, reference: row.reference().as_str().to_owned() });
        }
    }
    Ok(())
}

/// The chunk's references that the table already holds, by partner. A
/// chunk usually has one partner, so this is usually one query.
async fn taken_references<T: PgTable>(tx: &Transaction<'_>, chunk: &[T]) -> StoreResult<HashMap<i64, HashSet<String>>> {
    let mut by_partner: HashMap<i64, Vec<&str>> = HashMap::new();
    for row in chunk {
        by_partner.entry(row.partner().number()).or_default().push(row.reference().as_str());
    }
    let sql = format!("SELECT reference_id FROM {} WHERE partner_id = $1 AND reference_id = ANY($2)", T::TABLE);
    let mut taken = HashMap::with_capacity(by_partner.len());
    for (partner, references) in by_partner {
        let rows = query(tx, &sql, &[&partner, &references], "Failed to look for duplicate references").await?;
        let found = rows.iter().map(|row| row.try_get(0)).collect::<Result<HashSet<String>, _>>();
        taken.insert(partner, found.store_context("Failed to read a duplicate reference")?);
    }
    Ok(taken)
}

/// The chunk's explicit ids that the table already holds.
async fn taken_ids<T: PgTable>(tx: &Transaction<'_>, chunk: &[T]) -> StoreResult<HashSet<i64>> {
    let explicit: Vec<i64> = chunk.iter().map(T::id).filter(|id| *id != 0).collect();
    if explicit.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = format!("SELECT {id} FROM {table} WHERE {id} = ANY($1)", id = T::ID, table = T::TABLE);
    let rows = query(tx, &sql, &[&explicit], "Failed to look for duplicate ids").await?;
    rows.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>().store_context("Failed to read a duplicate id")
}

/// The ids the chunk's rows get: their own, or new numbers for rows that ask
/// (id 0). New numbers are drawn here rather than by the INSERT so that the
/// ids returned are in row order without relying on the order of `RETURNING`.
async fn assign_ids<T: PgTable>(tx: &Transaction<'_>, numbers: &TxnNumbers, chunk: &[T]) -> StoreResult<Vec<i64>> {
    let highest_explicit = chunk.iter().map(T::id).max().unwrap_or(0);
    if highest_explicit > 0 {
        advance_sequence::<T>(tx, highest_explicit).await?;
    }
    let wanted = chunk.iter().filter(|row| row.id() == 0).count();
    let explicit: HashSet<i64> = chunk.iter().map(T::id).filter(|id| *id != 0).collect();
    let mut fresh = new_numbers::<T>(tx, numbers, wanted, &explicit).await?.into_iter();
    let ids: Option<Vec<i64>> =
        chunk.iter().map(|row| if row.id() != 0 { Some(row.id()) } else { fresh.next() }).collect();
    ids.ok_or_else(|| StoreError::Other(anyhow::anyhow!("the id sequence returned too few ids")))
}

/// Moves the identity sequence past `highest` and past every id in the
/// table, never back, so that new ids do not collide with explicit ones.
async fn advance_sequence<T: PgTable>(tx: &Transaction<'_>, highest: i64) -> StoreResult<()> {
    let sql = format!(
        "SELECT setval(seq, GREATEST($1::bigint, (SELECT MAX({id}) FROM {table}), pg_sequence_last_value(seq), 1)) \
         FROM (SELECT pg_get_serial_sequence('{table}', '{id}')::regclass AS seq) AS s",
        id = T::ID,
        table = T::TABLE
    );
    query_one(tx, &sql, &[&highest], "Failed to advance the id sequence").await?;
    Ok(())
}

/// `count` new numbers of `T`'s kind: values of its counter through the
/// keyed permutation, passing over numbers that records made before (or
/// explicit ids of the same chunk) already have.
async fn new_numbers<T: PgTable>(
    tx: &Transaction<'_>,
    numbers: &TxnNumbers,
    count: usize,
    explicit: &HashSet<i64>,
) -> StoreResult<Vec<i64>> {
    let mut fresh = Vec::with_capacity(count);
    while fresh.len() < count {
        let sql = format!("SELECT nextval('{}') FROM generate_series(1, $1::bigint)", T::COUNTER);
        let rows = query(tx, &sql, &[&((count - fresh.len()) as i64)], "Failed to count new records").await?;
        let mut counters = rows.iter().map(|row| row.try_get(0)).collect::<Result<Vec<i64>, _>>();
        if let Ok(counters) = &mut counters {
            counters.sort_unstable();
        }
        let candidates = counters
            .store_context("Failed to read a counter")?
            .into_iter()
            .map(|counter| numbers.number(T::KIND, counter as u64))
            .collect::<Result<Vec<i64>, _>>()
            .map_err(|e| StoreError::Other(anyhow::Error::new(e)))?;
        let taken = numbers_present::<T>(tx, &candidates).await?;
        fresh.extend(candidates.into_iter().filter(|n| !taken.contains(n) && !explicit.contains(n)));
    }
    Ok(fresh)
}

/// Which of `candidates` the table already has.
async fn numbers_present<T: PgTable>(tx: &Transaction<'_>, candidates: &[i64]) -> StoreResult<HashSet<i64>> {
    let sql = format!("SELECT {id} FROM {table} WHERE {id} = ANY($1)", id = T::ID, table = T::TABLE);
    let rows = query(tx, &sql, &[&candidates], "Failed to look for taken numbers").await?;
    rows.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>().store_context("Failed to read a taken number")
}

/// The installation's transaction numbering: its secret is made (random,
/// 32 bytes) the first time a store is opened after the migration that
/// created its table; instances starting together keep the first one.
pub(in crate::store::postgres) async fn txn_numbers(client: &deadpool_postgres::Client) -> anyhow::Result<TxnNumbers> {
    client
        .execute(sql::STORE_NUMBER_SECRET, &[&crate::store::new_txn_number_secret()])
        .await
        .context("Failed to store the transaction-number secret")?;
    let row =
        client.query_one(sql::NUMBER_SECRET, &[]).await.context("Failed to read the transaction-number secret")?;
    let secret: String = row.try_get(0).context("Failed to read the transaction-number secret")?;
    Ok(TxnNumbers::new(secret.as_bytes()))
}

/// Inserts the chunk's rows with `ids`, and their history rows.
async fn insert_chunk<T: PgTable>(
    tx: &Transaction<'_>,
    chunk: &[T],
    ids: &[i64],
    note: &ChangeNote,
) -> Result<(), tokio_postgres::Error> {
    let insert = tx.prepare_cached(T::INSERT).await?;
    tx.execute_raw(&insert, columns(chunk, ids)).await?;
    let statuses: Vec<&str> = chunk.iter().map(T::status_name).collect();
    let history = tx.prepare_cached(INSERT_HISTORIES).await?;
    let params: [&(dyn ToSql + Sync); 6] =
        [&T::KIND.as_str(), &note.at.unix(), &note.source.as_str(), &note.reason, &ids, &statuses];
    tx.execute(&history, &params).await?;
    Ok(())
}

/// The parameters of [`PgTable::INSERT`] for `chunk`, whose rows get `ids`:
/// one array per column of [`TxnTable::values`].
pub(in crate::store::postgres) fn columns<'a, T: PgTable>(chunk: &'a [T], ids: &[i64]) -> Vec<Column<'a>> {
    let rows: Vec<Vec<_>> = chunk
        .iter()
        .zip(ids)
        .map(|(row, id)| {
            let mut values = row.values();
            if let Some(first) = values.first_mut() {
                *first = (*id).into();
            }
            values
        })
        .collect();
    (0..T::WIDTH).map(|at| array(&rows, at)).collect()
}

/// A rejected insert of a new record, as a refusal of the debit paying for it.
fn insert_refusal(error: InsertError) -> Stop {
    match error {
        InsertError::Duplicate { reference, .. } => Stop::Refused(DebitError::Duplicate(reference)),
        InsertError::UnknownPartner { .. } => Stop::Refused(DebitError::UnknownPartner),
        InsertError::Store(error) => Stop::from(error),
    }
}

/// Maps a failed chunk insert. The checks before it make a constraint
/// violation rare, but a concurrent insert can still take a reference first;
/// the violation's detail names the key, and so the row (the chunk's first
/// row if the detail cannot be read).
fn chunk_error<T: PgTable>(error: tokio_postgres::Error, chunk: &[T], ids: &[i64], offset: usize) -> InsertError {
    let position = error.as_db_error().and_then(|db| conflicting_row(db, chunk, ids)).unwrap_or(0);
    let Some(row) = chunk.get(position) else {
        return InsertError::Store(store_error(error, "Failed to insert the batch"));
    };
    let index = offset + position;
    match error.code() {
        Some(&SqlState::UNIQUE_VIOLATION) => {
            InsertError::Duplicate { index, reference: row.reference().as_str().to_owned() }
        }
        Some(&SqlState::FOREIGN_KEY_VIOLATION) => InsertError::UnknownPartner { index, partner: row.partner() },
        _ => InsertError::Store(store_error(error, "Failed to insert the batch")),
    }
}

/// The row of `chunk` that a constraint violation's detail names, as in
/// `Key (partner_id, reference_id)=(554, R1) already exists.` References hold
/// no commas, spaces or parentheses, so splitting the values is safe.
fn conflicting_row<T: PgTable>(error: &DbError, chunk: &[T], ids: &[i64]) -> Option<usize> {
    let (_, key) = error.detail()?.split_once('(')?;
    let (columns, values) = key.split_once(")=(")?;
    let (values, _) = values.split_once(')')?;
    let matches = |row: &T, id: i64| match (columns, values.split_once(", ")) {
        ("partner_id, reference_id", Some((partner, reference))) => {
            row.partner().number().to_string() == partner && row.reference().as_str() == reference
        }
        ("partner_id", None) => row.partner().number().to_string() == values,
        (column, None) if column == T::ID => id.to_string() == values,
        _ => false,
    };
    chunk.iter().zip(ids).position(|(row, id)| matches(row, *id))
}
