//! BBPS: the biller catalogue, bill fetch, and bill payments paid from the
//! partner's wallet. A payment is debited, recorded with its journal and
//! history in one store transaction, then handed to the provider; refunds go
//! through the store's state change, which credits the wallet once.
//!
//! Before a payment to a biller with bill fetch is debited, the bill is
//! fetched again from the provider, and the payment is held to that bill:
//! the `bill_fetch` a partner echoes is only compared with it, never
//! believed. Fetching again (rather than keeping fetched bills) costs one
//! upstream call per payment but holds no state: nothing to lose in a crash
//! or a restart, nothing stale when the bill was paid or changed since, and
//! a partner that never fetched is held to the same bill.

use super::billers::{self, Biller};
use super::fees;
use super::upstream::provider::{BillOrder, BillQuery, FetchedBill, Provider, ProviderError};
use super::upstream::sync::Upstream;
use crate::domain::{
    BillMode, BillPayment, BillStatus, ChangeSource, Clock, GeoPoint, Paise, ReferenceId, RegistrationId, Timestamp,
    TxnKind,
};
use crate::store::{ChangeNote, DebitError, Debited, Store, StoreError, TransactionStore};

/// The largest bill payment accepted.
pub const MAX_BILL: Paise = Paise::rupees(200_000);

/// Why a BBPS request was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum BillError {
    /// No biller with this id.
    #[error("Unknown operator")]
    UnknownBiller,
    /// The biller does not support fetching bills.
    #[error("This operator does not support bill fetch")]
    NoFetch,
    /// The biller has no bill for the customer.
    #[error("No bill found for this customer")]
    NoBill,
    /// The upstream did not answer.
    #[error("The biller did not answer, try again")]
    Upstream(String),
    /// The upstream refused payrail's credentials: nothing new is submitted
    /// (nor debited) until an operator closes the circuit.
    #[error("Bill payments are paused: the upstream is refusing payrail's credentials; nothing was debited, try again later")]
    SubmissionsStopped,
    /// The reference was used before.
    #[error("Duplicate referenceid: the partner already has transaction {txnid} with this reference")]
    Duplicate {
        /// The payment that has it.
        txnid: i64,
    },
    /// The wallet cannot pay for it.
    #[error("Insufficient wallet balance: {balance} available, {needed} needed")]
    InsufficientFunds {
        /// What the wallet holds.
        balance: String,
        /// What the bill costs.
        needed: String,
    },
    /// The amount is out of bounds.
    #[error("{0}")]
    Limit(String),
    /// A customer parameter the biller declares was not sent.
    #[error("{field} ({name}) is missing: this operator requires it")]
    MissingParam {
        /// The wire field, `ad1`..`ad3`.
        field: &'static str,
        /// What the biller calls it.
        name: &'static str,
    },
    /// The biller takes only the whole bill, and the amount is not it.
    #[error("amount must be {bill}, the whole bill: this biller takes no part payment")]
    PartPayment {
        /// The bill's amount.
        bill: String,
    },
    /// The biller takes no payment on this bill now.
    #[error("amount: the biller takes no payment on this bill now")]
    NotPayable,
    /// The echoed `bill_fetch` is not the provider's current bill.
    #[error("bill_fetch: billAmount {sent} is not the biller's current bill ({current}); fetch the bill again")]
    StaleBill {
        /// What the partner echoed.
        sent: String,
        /// What the provider says now.
        current: String,
    },
    /// The store could not read or write the payment; nothing was paid.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A bill payment as the partner asks for it.
#[derive(Debug, Clone)]
pub struct PayBill {
    /// The biller's id.
    pub operator: i64,
    /// The customer's account with the biller.
    pub ca_number: String,
    /// What to pay.
    pub amount: Paise,
    /// The partner's reference.
    pub reference: ReferenceId,
    /// Extra biller parameters.
    pub extra: [Option<String>; 3],
    /// `online` or `offline`.
    pub mode: BillMode,
    /// Where the partner says the payment was made.
    pub location: Option<GeoPoint>,
    /// The `bill_fetch` the partner sent back, as fetch returned it.
    pub echoed: Option<FetchedBill>,
}

fn biller(operator: i64) -> Result<&'static Biller, BillError> {
    billers::find(operator).ok_or(BillError::UnknownBiller)
}

/// Refuses a request without every customer parameter beyond the first
/// (which is `canumber`) that the biller declares, in order `ad1`..`ad3`.
fn require_params(biller: &Biller, extra: &[Option<String>; 3]) -> Result<(), BillError> {
    const FIELDS: [&str; 3] = ["ad1", "ad2", "ad3"];
    let declared = biller.params.iter().skip(1).zip(FIELDS).zip(extra);
    match declared.into_iter().find(|(_, sent)| sent.is_none()) {
        Some(((name, field), _)) => Err(BillError::MissingParam { field, name }),
        None => Ok(()),
    }
}

/// `FetchBilPaymentDetails`: the customer's current bill.
pub async fn fetch_bill(
    provider: &dyn Provider,
    operator: i64,
    ca_number: &str,
    extra: &[Option<String>; 3],
    mode: BillMode,
) -> Result<FetchedBill, BillError> {
    let biller = biller(operator)?;
    require_params(biller, extra)?;
    if !biller.fetch {
        return Err(BillError::NoFetch);
    }
    let query = BillQuery { biller, account: ca_number, extra, mode };
    provider.fetch_bill(&query).await.map_err(|e| match e {
        ProviderError::NoBill => BillError::NoBill,
        other => BillError::Upstream(other.to_string()),
    })
}

/// The provider's current bill for a payment to a biller with bill fetch,
/// once the payment fits it (see the module documentation); `None` for a
/// biller without.
async fn confirm_bill(
    provider: &dyn Provider,
    biller: &Biller,
    request: &PayBill,
) -> Result<Option<FetchedBill>, BillError> {
    if !biller.fetch {
        return Ok(None);
    }
    let bill = fetch_bill(provider, biller.id, &request.ca_number, &request.extra, request.mode).await?;
    if let Some(echoed) = &request.echoed {
        if echoed.amount != bill.amount {
            let (sent, current) = (echoed.amount.to_decimal_string(), bill.amount.to_decimal_string());
            return Err(BillError::StaleBill { sent, current });
        }
    }
    if !bill.accept_payment {
        return Err(BillError::NotPayable);
    }
    if !bill.accept_part_pay && request.amount != bill.amount {
        return Err(BillError::PartPayment { bill: bill.amount.to_amount_string() });
    }
    Ok(Some(bill))
}

/// `BillPaymentPaybill`: pays the bill from the partner's wallet and hands it on.
#[tracing::instrument(skip_all, fields(partner = %partner, reference = %request.reference, txnid = tracing::field::Empty))]
pub async fn pay_bill(
    store: &dyn Store,
    clock: &dyn Clock,
    upstream: &Upstream,
    partner: RegistrationId,
    request: PayBill,
) -> Result<Debited<BillPayment>, BillError> {
    let biller = biller(request.operator)?;
    require_params(biller, &request.extra)?;
    if request.amount <= Paise::ZERO || request.amount > MAX_BILL {
        let max = MAX_BILL.to_amount_string();
        return Err(BillError::Limit(format!("Amount must be more than 0 and at most {max} per bill")));
    }
    // Neither read waits for the other.
    let (duplicate, plans) =
        tokio::join!(refuse_duplicate(store, partner, &request.reference), fees::plans_of(store, partner));
    duplicate?;
    if let Some(reason) = upstream.submissions_stopped() {
        tracing::warn!(%reason, "bill payment refused before its debit: the upstream circuit is open");
        return Err(BillError::SubmissionsStopped);
    }
    let bill = confirm_bill(&*upstream.provider, biller, &request).await?;
    let (mode, location) = (request.mode, request.location.clone());
    let now = clock.now();
    let plan = plans?.in_force(now);
    let (commission, tds) = plan.bill_commission(biller.category, request.amount, now);
    let payment = new_payment(partner, biller, request, commission, tds, now);
    let note = ChangeNote { source: ChangeSource::Partner, reason: None, at: now };
    let mut debited = match store.create_bill_debited(payment.clone(), note, upstream.first_poll(now)).await {
        Ok(debited) => debited,
        Err(e) => {
            let refused = debit_error(store, e, &payment).await;
            tracing::info!(reason = %refused, "bill payment refused at its debit");
            return Err(refused);
        }
    };
    let taken = debited.wallet.opening - debited.wallet.closing;
    upstream.metrics().created(TxnKind::Bbps.as_str(), debited.record.status.name(), taken);
    tracing::Span::current().record("txnid", debited.record.txnid);
    tracing::info!(
        txnid = debited.record.txnid,
        amount_paise = debited.record.amount.get(),
        biller = biller.id,
        closing_paise = debited.wallet.closing.get(),
        "bill payment debited"
    );
    // The reference is stored before the payment is sent; without it the
    // payment is not sent (the poller then finds the upstream never heard of it).
    let stored = debited.upstream_ref.take();
    let upstream_ref = match upstream.stored_or_new_ref(store, TxnKind::Bbps, debited.record.txnid, stored).await {
        Ok(reference) => reference,
        Err(e) => {
            tracing::error!(txnid = debited.record.txnid, error = %e, "upstream reference not stored; payment not sent");
            return Ok(debited);
        }
    };
    let order = BillOrder { upstream_ref, payment: debited.record.clone(), biller_id: biller.id, mode, location, bill };
    debited.record = upstream.submit_bill(store, order).await;
    tracing::info!(
        txnid = debited.record.txnid,
        state = debited.record.status.name(),
        "bill payment submitted upstream"
    );
    Ok(debited)
}

async fn refuse_duplicate(
    store: &dyn TransactionStore,
    partner: RegistrationId,
    reference: &ReferenceId,
) -> Result<(), BillError> {
    match store.lookup_bill(partner, reference.as_str()).await?.and_then(|(_, p)| p) {
        Some(existing) => Err(BillError::Duplicate { txnid: existing.txnid }),
        None => Ok(()),
    }
}

fn new_payment(
    partner: RegistrationId,
    biller: &Biller,
    request: PayBill,
    commission: Paise,
    tds: Paise,
    now: Timestamp,
) -> BillPayment {
    let [ad1, ad2, ad3] = request.extra;
    BillPayment {
        txnid: 0,
        partner,
        reference: request.reference,
        operator_name: biller.name.to_owned(),
        ca_number: request.ca_number,
        amount: request.amount,
        ad1,
        ad2,
        ad3,
        commission,
        tds,
        status: BillStatus::Pending,
        operator_ref: None,
        created_at: now,
        refund_txn_id: None,
        refunded_at: None,
    }
}

async fn debit_error(store: &dyn Store, error: DebitError, payment: &BillPayment) -> BillError {
    match error {
        DebitError::Duplicate(_) => match refuse_duplicate(store, payment.partner, &payment.reference).await {
            Err(named) => named,
            Ok(()) => BillError::Duplicate { txnid: 0 },
        },
        DebitError::InsufficientFunds { balance } => BillError::InsufficientFunds {
            balance: balance.to_decimal_string(),
            needed: payment.amount.to_decimal_string(),
        },
        DebitError::MonthlyLimit { .. } | DebitError::UnknownPartner => {
            BillError::Store(StoreError::Other(anyhow::anyhow!("unexpected refusal of a bill debit: {error}")))
        }
        DebitError::Store(e) => BillError::Store(e),
    }
}
