//! Penny drops: each one with the journal that paid its fee and, if the
//! upstream failed, the journal that refunded it. The trait, and the SQL
//! both engines run for it (`sql`); each engine's implementation is in its
//! `penny_drops.rs`.

use super::columns::{columns, BadState, StoredRow, Value};
use super::*;
use crate::domain::penny_drop::{PennyDrop, PennyDropStatus};
use crate::domain::ReferenceId;

columns! {
    /// The `penny_drops` columns a penny drop is read from.
    pub(crate) mod penny_drop_columns, list penny_drop_list {
        id, partner_id, reference, remitter_mobile, beneficiary_id, account, ifsc, bank_id, name, fee, status,
        name_at_bank, created_at, decided_at
    }
}

pub(crate) use penny_drop_list;

/// A penny drop from [`penny_drop_columns`], on either engine.
pub(crate) fn penny_drop_from_row<R: StoredRow>(row: &R) -> Result<PennyDrop, R::Error> {
    use penny_drop_columns as c;
    let name_at_bank = row.opt_text(c::name_at_bank)?;
    Ok(PennyDrop {
        id: row.int(c::id)?,
        partner: RegistrationId::new(row.int(c::partner_id)?),
        reference: row.parsed(c::reference, ReferenceId::parse)?,
        remitter: row.parsed(c::remitter_mobile, MobileNumber::parse)?,
        beneficiary_id: row.opt_int(c::beneficiary_id)?,
        account: row.text(c::account)?,
        ifsc: row.opt_text(c::ifsc)?,
        bank_id: row.int(c::bank_id)?,
        name: row.text(c::name)?,
        fee: Paise::new(row.int(c::fee)?),
        status: row.parsed(c::status, |s| {
            PennyDropStatus::from_stored(s, name_at_bank.clone()).ok_or_else(|| BadState(s.into()))
        })?,
        created_at: Timestamp::from_unix(row.int(c::created_at)?),
        decided_at: row.opt_int(c::decided_at)?.map(Timestamp::from_unix),
    })
}

/// What [`sql::INSERT_PENNY_DROP`] writes, in its parameters' order, after
/// the fee journal's id.
pub(crate) fn penny_drop_values(d: &PennyDrop, debit_journal_id: i64) -> [Value<'_>; 13] {
    [
        d.partner.number().into(),
        d.reference.as_str().into(),
        d.remitter.as_str().into(),
        d.beneficiary_id.into(),
        d.account.as_str().into(),
        (&d.ifsc).into(),
        d.bank_id.into(),
        d.name.as_str().into(),
        d.fee.get().into(),
        d.status.as_str().into(),
        debit_journal_id.into(),
        d.created_at.unix().into(),
        Value::Int(None),
    ]
}

/// The statements both engines run for penny drops, with `$n` parameters
/// first appearing in order (see `store::remittance::sql`).
pub(crate) mod sql {
    /// Records a penny drop ([`super::penny_drop_values`]); its id.
    pub(crate) const INSERT_PENNY_DROP: &str = "INSERT INTO penny_drops (partner_id, reference, remitter_mobile, \
         beneficiary_id, account, ifsc, bank_id, name, fee, status, debit_journal_id, created_at, decided_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id";
    /// Penny drop `$1`.
    pub(crate) const FIND_PENNY_DROP: &str = concat!("SELECT ", penny_drop_list!(), " FROM penny_drops WHERE id = $1");
    /// Partner `$1`'s penny drop with reference `$2`.
    pub(crate) const PENNY_DROP_BY_REFERENCE: &str =
        concat!("SELECT ", penny_drop_list!(), " FROM penny_drops WHERE partner_id = $1 AND reference = $2");
    /// Penny drops still pending that were made before `$1`, oldest first.
    pub(crate) const PENDING_PENNY_DROPS: &str = concat!(
        "SELECT ",
        penny_drop_list!(),
        " FROM penny_drops WHERE status = 'pending' AND created_at < $1 ORDER BY id LIMIT 100"
    );
    /// Records the outcome of pending penny drop `$5`: status `$1`, name at
    /// the bank `$2`, decided at `$3`, refund journal `$4`.
    pub(crate) const DECIDE_PENNY_DROP: &str = "UPDATE penny_drops SET status = $1, name_at_bank = $2, \
         decided_at = $3, refund_journal_id = $4 WHERE id = $5 AND status = 'pending'";
    /// Marks beneficiary `$2` of partner `$3` verified under the name `$1`.
    pub(crate) const VERIFY_BENEFICIARY: &str =
        "UPDATE beneficiaries SET verified_name = $1 WHERE id = $2 AND partner_id = $3";
    /// Penny drops whose fee journal does not take their fee from the
    /// partner's wallet: id.
    pub(crate) const AUDIT_FEE_NOT_DEBITED: &str = "SELECT p.id FROM penny_drops p WHERE NOT EXISTS \
         (SELECT 1 FROM postings x WHERE x.journal_id = p.debit_journal_id \
         AND x.account = 'wallet:' || p.partner_id AND x.amount = -p.fee) ORDER BY p.id";
    /// Penny drops refunded but not failed, or failed but not refunded
    /// (the fee back into the wallet): id, status.
    pub(crate) const AUDIT_REFUND_MISMATCH: &str = "SELECT p.id, p.status FROM penny_drops p \
         WHERE (p.status = 'failed') <> EXISTS (SELECT 1 FROM postings x WHERE x.journal_id = p.refund_journal_id \
         AND x.account = 'wallet:' || p.partner_id AND x.amount = p.fee) \
         OR (p.status <> 'failed' AND p.refund_journal_id IS NOT NULL) ORDER BY p.id";

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::store::columns::assert_parameters_in_order;

        #[test]
        fn parameters_first_appear_in_order() {
            for sql in [
                INSERT_PENNY_DROP,
                FIND_PENNY_DROP,
                PENNY_DROP_BY_REFERENCE,
                PENDING_PENNY_DROPS,
                DECIDE_PENNY_DROP,
                VERIFY_BENEFICIARY,
                AUDIT_FEE_NOT_DEBITED,
                AUDIT_REFUND_MISMATCH,
            ] {
                assert_parameters_in_order(sql);
            }
        }
    }
}

/// What `payrail verify` reports of a penny drop that breaks an invariant.
pub fn penny_drop_violations(fee_not_debited: &[i64], refund_mismatch: &[(i64, String)]) -> Vec<String> {
    let debits = fee_not_debited.iter().map(|id| format!("penny drop {id}: its fee journal does not debit its fee"));
    let refunds = refund_mismatch
        .iter()
        .map(|(id, status)| format!("penny drop {id} ({status}): refunded exactly when failed, by its fee, it is not"));
    debits.chain(refunds).collect()
}

/// How a penny drop ended (never `Pending`), and when.
#[derive(Debug, Clone)]
pub struct PennyDropOutcome {
    pub status: PennyDropStatus,
    pub at: Timestamp,
}

/// Penny drops and their fee journals.
#[async_trait]
pub trait PennyDropStore: Send + Sync + 'static {
    /// Records a new penny drop (its `id` is ignored) and debits its fee
    /// ([`PennyDrop::fee_journal`]) in one transaction; the penny drop with
    /// its id and the wallet's move. `Duplicate` if the partner has a penny
    /// drop with this reference (concurrent ones included: one wins),
    /// `InsufficientFunds`, `UnknownPartner`: nothing written.
    async fn open_penny_drop(&self, drop: PennyDrop) -> Result<(PennyDrop, WalletMove), DebitError>;
    /// Records the `outcome` of pending penny drop `id`, once, in one
    /// transaction with what it moves: a verified one marks its beneficiary
    /// verified under the bank's name; a failed one's fee is refunded
    /// ([`PennyDrop::refund_journal`]). Returns the penny drop as stored
    /// after; one decided already is returned unchanged.
    async fn settle_penny_drop(&self, id: i64, outcome: PennyDropOutcome) -> StoreResult<Option<PennyDrop>>;
    /// The partner's penny drop with this reference.
    async fn find_penny_drop(&self, partner: RegistrationId, reference: &str) -> StoreResult<Option<PennyDrop>>;
    /// Up to 100 penny drops still pending that were made before `before`.
    async fn pending_penny_drops(&self, before: Timestamp) -> StoreResult<Vec<PennyDrop>>;
    /// The penny-drop invariants `payrail verify` checks, as violations.
    async fn audit_penny_drops(&self) -> StoreResult<Vec<String>>;
}
