//! Penny drop (`PennyDrop`): a bank account verified at the bank, for a fee.
//!
//! The steps, each safe against a crash before the next:
//! 1. checks that need nothing written (remitter, beneficiary, bank);
//! 2. one store transaction: the fee debited from the wallet (a journal)
//!    and the penny drop recorded `pending` under the partner's unique
//!    `referenceid` (a repeat, also a concurrent one, is refused there and
//!    debits nothing);
//! 3. the provider asked, once;
//! 4. one store transaction: the outcome recorded, the beneficiary marked
//!    verified, or the fee refunded (the debit's mirror) if the upstream
//!    failed.
//!
//! A crash between 2 and 4 leaves the penny drop pending with its fee
//! taken; the poller's loop refunds those left pending for
//! [`ABANDONED_AFTER_SECS`] ([`refund_abandoned`]), long after any provider
//! call has timed out.

use super::fees;
use super::remittance::DmtError;
use super::upstream::provider::{AccountCheck, AccountHolder};
use super::upstream::sync::Upstream;
use crate::domain::banks::{find_bank, settle_bank, BankInfo};
use crate::domain::penny_drop::{PennyDrop, PennyDropStatus};
use crate::domain::remitter::{AccountNumber, Beneficiary, Ifsc, MobileNumber};
use crate::domain::remitter_details::RemitterDetails;
use crate::domain::{Clock, Paise, ReferenceId, RegistrationId, Timestamp};
use crate::store::{DebitError, PennyDropOutcome, Store, StoreError};

/// How long a penny drop may stay pending before the poller refunds it.
pub const ABANDONED_AFTER_SECS: i64 = 300;

/// Why a penny drop was refused. Nothing was written or debited.
#[derive(Debug, thiserror::Error)]
pub enum PennyDropError {
    /// No such remitter or beneficiary for this partner.
    #[error(transparent)]
    Remittance(#[from] DmtError),
    /// A field contradicts the beneficiary or the bank list; names the field.
    #[error("{0}")]
    Invalid(String),
    /// The reference was used before.
    #[error("Duplicate referenceid: the partner already has penny drop {id} with this reference")]
    Duplicate {
        /// The penny drop that has it (0 if it could not be read back).
        id: i64,
    },
    /// The wallet cannot pay the fee.
    #[error("Insufficient wallet balance: {balance} available, {needed} needed")]
    InsufficientFunds {
        /// What the wallet holds.
        balance: String,
        /// The fee.
        needed: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The account to verify, as the partner names it.
#[derive(Debug, Clone)]
pub enum Target {
    /// A registered beneficiary of the remitter (`bene_id`), the fields
    /// sent checked against it.
    Registered {
        /// Its id.
        id: i64,
        /// `accno`, if sent.
        account: Option<AccountNumber>,
        /// `bankid`, if sent.
        bank_id: Option<i64>,
        /// `benename`, if sent (else the registered name).
        name: Option<String>,
    },
    /// An account named by its number and bank.
    Account {
        /// `accno`.
        account: AccountNumber,
        /// `bankid`.
        bank_id: i64,
        /// `ifsccode`, if sent: must be the bank's.
        ifsc: Option<Ifsc>,
        /// `benename`.
        name: String,
    },
}

/// A penny drop as the partner asks for it.
#[derive(Debug, Clone)]
pub struct PennyDropRequest {
    /// The remitter.
    pub mobile: MobileNumber,
    /// The partner's reference, unique per partner.
    pub reference: ReferenceId,
    /// What to verify.
    pub target: Target,
    /// The remitter's details sent (the beneficiary's record fills the rest).
    pub details: RemitterDetails,
}

/// A penny drop done: the record as it ended and the wallet's moves.
#[derive(Debug, Clone)]
pub struct PennyDropDone {
    /// The penny drop.
    pub drop: PennyDrop,
    /// The wallet before the fee.
    pub opening: Paise,
    /// The wallet after the fee and any refund of it.
    pub closing: Paise,
}

/// What was settled about the account before anything is written.
struct Resolved {
    beneficiary: Option<Beneficiary>,
    account: String,
    bank: &'static BankInfo,
    ifsc: Option<String>,
    name: String,
}

fn mismatch(field: &str, beneficiary: i64) -> PennyDropError {
    PennyDropError::Invalid(format!("{field} differs from beneficiary {beneficiary}'s (leave it out, or send its own)"))
}

async fn resolve(
    store: &dyn Store,
    partner: RegistrationId,
    request: &PennyDropRequest,
) -> Result<Resolved, PennyDropError> {
    if store.find_remitter(partner, &request.mobile).await?.is_none() {
        return Err(DmtError::RemitterNotFound.into());
    }
    match &request.target {
        Target::Registered { id, account, bank_id, name } => {
            let found = store.find_beneficiary(partner, *id).await?.filter(|b| b.remitter == request.mobile);
            let b = found.ok_or(DmtError::BeneficiaryNotFound)?;
            if account.as_ref().is_some_and(|a| a != &b.account) {
                return Err(mismatch("accno", b.id));
            }
            if bank_id.is_some_and(|id| Some(id) != b.bank_id) {
                return Err(mismatch("bankid", b.id));
            }
            let bank = b.bank_id.and_then(find_bank).ok_or_else(|| {
                PennyDropError::Invalid(format!("bene_id {}: its bank is not in the bank list", b.id))
            })?;
            let (account, ifsc) = (b.account.as_str().to_owned(), Some(b.ifsc.as_str().to_owned()));
            let name = name.clone().unwrap_or_else(|| b.name.clone());
            Ok(Resolved { beneficiary: Some(b), account, bank, ifsc, name })
        }
        Target::Account { account, bank_id, ifsc, name } => {
            let bank = match ifsc {
                Some(ifsc) => settle_bank(Some(*bank_id), ifsc.as_str()).map_err(|e| match e {
                    crate::domain::banks::BankError::UnknownBank => PennyDropError::Invalid(format!("bankid {e}")),
                    other => PennyDropError::Invalid(format!("ifsccode {other}")),
                })?,
                None => find_bank(*bank_id),
            };
            let bank = bank.ok_or_else(|| PennyDropError::Invalid("bankid is not in the bank list".into()))?;
            let listed = store.beneficiaries(partner, &request.mobile).await?;
            let beneficiary = listed.into_iter().find(|b| &b.account == account && b.bank_id == Some(bank.id));
            let ifsc = ifsc.as_ref().map(|i| i.as_str().to_owned());
            Ok(Resolved { beneficiary, account: account.as_str().to_owned(), bank, ifsc, name: name.clone() })
        }
    }
}

fn debit_refusal(error: DebitError, fee: Paise) -> PennyDropError {
    match error {
        DebitError::Duplicate(_) => PennyDropError::Duplicate { id: 0 },
        DebitError::InsufficientFunds { balance } => {
            PennyDropError::InsufficientFunds { balance: balance.to_decimal_string(), needed: fee.to_decimal_string() }
        }
        DebitError::MonthlyLimit { .. } | DebitError::UnknownPartner => {
            PennyDropError::Store(StoreError::Other(anyhow::anyhow!("unexpected refusal of a penny drop: {error}")))
        }
        DebitError::Store(e) => PennyDropError::Store(e),
    }
}

/// `PennyDrop`: verifies the account at its bank, for the plan's fee.
pub async fn penny_drop(
    store: &dyn Store,
    clock: &dyn Clock,
    upstream: &Upstream,
    partner: RegistrationId,
    request: PennyDropRequest,
) -> Result<PennyDropDone, PennyDropError> {
    let resolved = resolve(store, partner, &request).await?;
    if let Some(existing) = store.find_penny_drop(partner, request.reference.as_str()).await? {
        return Err(PennyDropError::Duplicate { id: existing.id });
    }
    let now = clock.now();
    let fee = fees::plan_for(store, partner, now).await?.penny_drop_fee;
    let resolved_upstream_id = resolved.beneficiary.as_ref().and_then(|b| b.upstream_id.clone());
    let details = match &resolved.beneficiary {
        Some(b) => request.details.or(&b.details),
        None => request.details,
    };
    let drop = PennyDrop {
        id: 0,
        partner,
        reference: request.reference,
        remitter: request.mobile,
        beneficiary_id: resolved.beneficiary.as_ref().map(|b| b.id),
        account: resolved.account,
        ifsc: resolved.ifsc,
        bank_id: resolved.bank.id,
        name: resolved.name,
        fee,
        status: PennyDropStatus::Pending,
        created_at: now,
        decided_at: None,
    };
    let (drop, wallet) = match store.open_penny_drop(drop).await {
        Ok(opened) => opened,
        Err(DebitError::Duplicate(reference)) => {
            // A concurrent request with the same reference won: name its penny drop.
            let winner = store.find_penny_drop(partner, &reference).await?;
            return Err(PennyDropError::Duplicate { id: winner.map_or(0, |w| w.id) });
        }
        Err(other) => return Err(debit_refusal(other, fee)),
    };
    let check = AccountCheck {
        upstream_ref: upstream.one_off_ref(store, 'V', drop.id).await,
        mobile: drop.remitter.as_str().to_owned(),
        account: drop.account.clone(),
        bank_id: drop.bank_id,
        name: drop.name.clone(),
        beneficiary_id: drop.beneficiary_id,
        upstream_bene_id: resolved_upstream_id,
        details,
    };
    let status = match upstream.provider.verify_account(&check).await {
        Ok(AccountHolder::Named(name_at_bank)) => PennyDropStatus::Verified { name_at_bank },
        Ok(AccountHolder::NoSuchAccount) => PennyDropStatus::NotFound,
        Err(e) => {
            tracing::warn!(penny_drop = drop.id, error = %e, "penny drop failed upstream; refunding its fee");
            PennyDropStatus::Failed
        }
    };
    let settled = store.settle_penny_drop(drop.id, PennyDropOutcome { status, at: clock.now() }).await?;
    let drop = settled.ok_or_else(|| StoreError::Other(anyhow::anyhow!("penny drop {} vanished", drop.id)))?;
    let refunded = if drop.status == PennyDropStatus::Failed { drop.fee } else { Paise::ZERO };
    Ok(PennyDropDone { drop, opening: wallet.opening, closing: wallet.closing + refunded })
}

/// Refunds the penny drops left pending for [`ABANDONED_AFTER_SECS`] (a
/// crash between the debit and the outcome): each is failed and its fee
/// refunded, once, whichever instance gets there first.
pub async fn refund_abandoned(store: &dyn Store, now: Timestamp) -> Result<usize, StoreError> {
    let stale = store.pending_penny_drops(now.plus_secs(-ABANDONED_AFTER_SECS)).await?;
    for drop in &stale {
        tracing::warn!(penny_drop = drop.id, "penny drop left pending; refunding its fee");
        store.settle_penny_drop(drop.id, PennyDropOutcome { status: PennyDropStatus::Failed, at: now }).await?;
    }
    Ok(stale.len())
}
