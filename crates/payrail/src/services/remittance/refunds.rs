//! Refunds of failed transfers: the remitter's OTP (`RefundOtp`), then the
//! claim (`ClaimRefund`) that credits the partner's wallet, asked of the
//! upstream first when it claims refunds itself.

use super::{new_stateresp, partner_note, send_otp, use_otp, DmtError, OtpRequest, PresentedOtp};
use crate::domain::dmt::DmtChange;
use crate::domain::ledger::Journal;
use crate::domain::otp::{OtpPurpose, OTP_MAX_ATTEMPTS};
use crate::domain::remitter::{DmtRoute, MobileNumber};
use crate::domain::upstream::DmtUpstream;
use crate::domain::{Clock, DmtStatus, DmtTransfer, Paise, ReferenceId, RegistrationId, TxnKind};
use crate::services::notifier::Texts;
use crate::services::upstream::provider::{
    ProviderError, RefundClaimOrder, RefundClaimOutcome, RefundOtpOrder, RefundOtpOutcome,
};
use crate::services::upstream::sync::Upstream;
use crate::store::{ChangeError, ChangeNote, Store, TransactionStore};

/// A failed transfer of the partner's, made through this API, with its route.
async fn failed_transfer(
    store: &dyn TransactionStore,
    partner: RegistrationId,
    reference: &ReferenceId,
) -> Result<(DmtTransfer, DmtRoute), DmtError> {
    let found = store.lookup_dmt(partner, reference.as_str()).await?.and_then(|(_, t)| t);
    let transfer = found.ok_or(DmtError::TransferNotFound)?;
    let route = store.dmt_route(transfer.ackno).await?.ok_or(DmtError::TransferNotFound)?;
    match transfer.status {
        DmtStatus::Failed => Ok((transfer, route)),
        DmtStatus::Refunded => Err(DmtError::State("Transaction already refunded".into())),
        other => Err(DmtError::State(format!("Only a failed transaction can be refunded; it is {}", other.message()))),
    }
}

/// The subject a refund OTP payrail sends itself is bound to.
fn refund_subject(transfer: &DmtTransfer) -> String {
    format!("refund|{}", transfer.ackno)
}

/// Refund OTP: has the remitter sent the OTP that [`claim_refund`] needs.
///
/// With a provider that claims refunds upstream (Paysprint, the sandbox),
/// the upstream is asked about the transfer first: it must report it failed
/// (else nothing is sent: the transfer may still be paid). If it refunded
/// the transfer on its own there is nothing to claim, and payrail sends its
/// own OTP (the remitter's consent) as the manual provider does; otherwise
/// the upstream sends its refund OTP (`resendotp` with its `ackno`) and
/// payrail sends none. Each counts as a text to the remitter's mobile.
#[tracing::instrument(skip_all, fields(partner = %partner, reference = %reference, ackno = tracing::field::Empty))]
pub async fn send_refund_otp(
    store: &dyn Store,
    clock: &dyn Clock,
    upstream: &Upstream,
    texts: Texts<'_>,
    partner: RegistrationId,
    reference: &ReferenceId,
) -> Result<String, DmtError> {
    let (transfer, route) = failed_transfer(store, partner, reference).await?;
    tracing::Span::current().record("ackno", transfer.ackno);
    if upstream.provider.claims_refunds() {
        let queried = upstream.query_transfer(store, &transfer).await.map_err(DmtError::UpstreamUnanswered)?;
        if queried.report != DmtUpstream::Failed {
            return Err(DmtError::State(format!(
                "The upstream does not report this transaction failed ({}): it cannot be refunded now",
                queried.report.describe()
            )));
        }
        if !queried.refunded {
            let upstream_ackno = transfer.upstream_ackno.clone().or(queried.upstream_ackno).ok_or_else(|| {
                DmtError::State("The upstream's acknowledgement number of this transaction is not known: an operator must settle its refund".into())
            })?;
            return upstream_refund_otp(store, clock, upstream, texts, &transfer, &route.remitter, &upstream_ackno)
                .await;
        }
    }
    let what = format!("claim the refund of transaction {}", transfer.ackno);
    let request = OtpRequest {
        purpose: OtpPurpose::Refund,
        subject: refund_subject(&transfer),
        to: &route.remitter,
        what: &what,
    };
    send_otp(store, clock, texts, partner, request).await
}

/// Has the upstream text its refund OTP to the remitter; returns the
/// `Stateresp` that names it in [`claim_refund`].
async fn upstream_refund_otp(
    store: &dyn Store,
    clock: &dyn Clock,
    upstream: &Upstream,
    texts: Texts<'_>,
    transfer: &DmtTransfer,
    remitter: &MobileNumber,
    upstream_ackno: &str,
) -> Result<String, DmtError> {
    let now = clock.now();
    if let Err(at) = store.count_text(remitter, now, texts.limits).await? {
        texts.count("refused");
        return Err(DmtError::TooManyTexts { retry_at: at.to_ist_string(), wait_secs: at.unix() - now.unix() });
    }
    let upstream_ref = upstream.upstream_ref(store, TxnKind::Dmt, transfer.ackno).await?;
    let order = RefundOtpOrder {
        upstream_ref: &upstream_ref,
        upstream_ackno,
        transfer,
        mobile: remitter,
        notifier: texts.notifier,
    };
    let asked = upstream.provider.refund_otp(&order);
    let answer =
        tokio::time::timeout(upstream.settings.poll_timeout, asked).await.unwrap_or(Err(ProviderError::Timeout));
    match answer.map_err(DmtError::UpstreamUnanswered)? {
        RefundOtpOutcome::Sent => {
            texts.count("sent");
            let stateresp = new_stateresp();
            store.record_refund_otp(transfer.ackno, &stateresp, now).await?;
            Ok(stateresp)
        }
        RefundOtpOutcome::NotRefundable { message } => {
            Err(DmtError::State(format!("The upstream has no refund to make for this transaction: {message}")))
        }
        RefundOtpOutcome::Refused { message } => Err(DmtError::RefundRefused(message)),
    }
}

/// Refund claim: refunds a failed transfer to the wallet, once.
///
/// An OTP the upstream sent (its `Stateresp` is the one [`send_refund_otp`]
/// answered last for the transfer) is passed to the upstream's refund call,
/// and the wallet is credited only on its documented confirmation. An
/// answer "not found or already refunded" is checked with a status query:
/// the wallet is credited if the upstream says it refunded the transfer (an
/// earlier claim whose answer was lost), else nothing is. No answer credits
/// nothing; the claim may be made again. An OTP payrail sent itself is
/// checked here and credited locally. Either way the credit and the
/// "refunded" state are one store transaction the state machine allows once.
#[tracing::instrument(skip_all, fields(partner = %partner, reference = %reference, ackno = tracing::field::Empty))]
pub async fn claim_refund(
    store: &dyn Store,
    clock: &dyn Clock,
    upstream: &Upstream,
    partner: RegistrationId,
    reference: &ReferenceId,
    code: &str,
    stateresp: Option<&str>,
) -> Result<DmtTransfer, DmtError> {
    let (transfer, _) = failed_transfer(store, partner, reference).await?;
    tracing::Span::current().record("ackno", transfer.ackno);
    let upstream_stateresp =
        if upstream.provider.claims_refunds() { store.refund_otp_stateresp(transfer.ackno).await? } else { None };
    // AOPay's page sends no `Stateresp`: the OTP is then the newest one
    // sent for this transfer's refund (the upstream's, else payrail's).
    let stateresp = match (stateresp, &upstream_stateresp) {
        (Some(given), _) => given.to_owned(),
        (None, Some(upstream)) => upstream.clone(),
        (None, None) => store
            .latest_otp_token(partner, OtpPurpose::Refund, &refund_subject(&transfer))
            .await?
            .ok_or_else(|| DmtError::Otp("No refund OTP was sent for this transaction: call RefundOtp first".into()))?,
    };
    let otp = PresentedOtp { stateresp: &stateresp, code };
    if upstream_stateresp.is_some_and(|s| s == otp.stateresp) {
        // Three claims per OTP, as payrail's own OTPs take three guesses; a
        // claim the upstream did not refuse is given back.
        if !store.reserve_refund_claim(transfer.ackno, otp.stateresp, OTP_MAX_ATTEMPTS).await? {
            return Err(DmtError::Otp("OTP already used or attempts exhausted, request a new one".into()));
        }
        let ackno = transfer.ackno;
        let claimed = claim_upstream_refund(store, clock, upstream, transfer, otp.code).await;
        if !matches!(claimed, Err(DmtError::RefundRefused(_))) {
            // Only a count of guesses: failing to give it back must not hide the answer.
            if let Err(e) = store.release_refund_claim(ackno, otp.stateresp).await {
                tracing::warn!(ackno, error = %e, "refund claim not given back");
            }
        }
        return claimed;
    }
    use_otp(store, clock, partner, OtpPurpose::Refund, otp, &refund_subject(&transfer)).await?;
    credit_refund(store, clock, upstream, &transfer, None).await
}

async fn claim_upstream_refund(
    store: &dyn Store,
    clock: &dyn Clock,
    upstream: &Upstream,
    transfer: DmtTransfer,
    code: &str,
) -> Result<DmtTransfer, DmtError> {
    let upstream_ackno = transfer.upstream_ackno.clone().ok_or_else(|| {
        DmtError::State("The upstream's acknowledgement number of this transaction is not known: an operator must settle its refund".into())
    })?;
    let upstream_ref = upstream.upstream_ref(store, TxnKind::Dmt, transfer.ackno).await?;
    let order = RefundClaimOrder {
        upstream_ref: &upstream_ref,
        upstream_ackno: &upstream_ackno,
        transfer: &transfer,
        otp: code,
    };
    let asked = upstream.provider.claim_refund(&order);
    let answer =
        tokio::time::timeout(upstream.settings.poll_timeout, asked).await.unwrap_or(Err(ProviderError::Timeout));
    match answer {
        Ok(RefundClaimOutcome::Refunded) => {
            credit_refund(
                store,
                clock,
                upstream,
                &transfer,
                Some(format!("refund confirmed by the upstream (ackno {upstream_ackno})")),
            )
            .await
        }
        Ok(RefundClaimOutcome::NotFoundOrRefunded { message }) => {
            match upstream.query_transfer(store, &transfer).await {
                Ok(queried) if queried.report == DmtUpstream::Failed && queried.refunded => {
                    let reason =
                        format!("refunded by the upstream (ackno {upstream_ackno}), confirmed by its status query");
                    credit_refund(store, clock, upstream, &transfer, Some(reason)).await
                }
                _ => Err(DmtError::State(format!("The upstream did not refund this transaction: {message}"))),
            }
        }
        Ok(RefundClaimOutcome::Refused { message }) => Err(DmtError::RefundRefused(message)),
        Err(e) => {
            tracing::warn!(ackno = transfer.ackno, error = %e, "refund claim unanswered; nothing credited");
            Err(DmtError::UpstreamUnanswered(e))
        }
    }
}

/// Credits the transfer's amount and charge back to the wallet and marks it
/// refunded, in one store transaction; a second credit is refused by the
/// state machine ("already refunded").
async fn credit_refund(
    store: &dyn Store,
    clock: &dyn Clock,
    upstream: &Upstream,
    transfer: &DmtTransfer,
    reason: Option<String>,
) -> Result<DmtTransfer, DmtError> {
    let refund = DmtChange::Refund { refund_txn_id: None };
    let note = ChangeNote { reason, ..partner_note(clock) };
    match store.change_dmt(transfer.ackno, refund, note).await {
        Ok(refunded) => {
            tracing::info!(
                ackno = transfer.ackno,
                amount_paise = transfer.amount.get(),
                "transfer refunded to the wallet"
            );
            let paid = || Paise::ZERO - Journal::dmt_debit(&refunded, refunded.created_at).wallet_change();
            upstream.metrics().changed(
                TxnKind::Dmt.as_str(),
                Some(transfer.status.name()),
                refunded.status.name(),
                paid,
            );
            Ok(refunded)
        }
        Err(ChangeError::Forbidden(_)) => Err(DmtError::State("Transaction already refunded".into())),
        Err(ChangeError::NotFound) => Err(DmtError::TransferNotFound),
        Err(ChangeError::Store(e)) => Err(DmtError::Store(e)),
    }
}
