//! [`Metered`]: any provider, with each call counted by operation and
//! outcome and timed (`payrail_upstream_calls_total`,
//! `payrail_upstream_call_duration_seconds`). [`Upstream`](crate::services::upstream::sync::Upstream)
//! wraps its provider in one, so every call payrail makes to its upstream
//! (submissions, status queries, remitter and beneficiary calls, refunds)
//! passes here.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::Metrics;
use crate::domain::remitter::MobileNumber;
use crate::domain::upstream::{BillUpstream, DmtUpstream};
use crate::domain::{BillPayment, DmtTransfer, Timestamp};
use crate::services::upstream::health::UpstreamHealth;
use crate::services::upstream::provider::{
    AccountCheck, AccountHolder, BeneficiarySignup, BillOrder, BillQuery, CallbackError, DmtQueried, DmtSubmitted,
    EkycOutcome, EkycRequest, Enrolment, FetchedBill, Provider, ProviderError, RefundClaimOrder, RefundClaimOutcome,
    RefundOtpOrder, RefundOtpOutcome, RemitterSignup, RemitterStatus, TransferOrder, UpstreamBeneficiary,
    UpstreamCallback,
};

/// A provider whose calls are counted and timed in [`Metrics`].
pub struct Metered {
    inner: Arc<dyn Provider>,
    metrics: Arc<Metrics>,
}

impl Metered {
    /// `inner`, measured into `metrics`.
    pub fn new(inner: Arc<dyn Provider>, metrics: Arc<Metrics>) -> Self {
        Metered { inner, metrics }
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        if !self.metrics.enabled() {
            return call.await;
        }
        let started = Instant::now();
        let result = call.await;
        self.metrics.upstream_call(operation, outcome(&result), started.elapsed());
        result
    }
}

/// The outcome label of a call's result.
fn outcome<T>(result: &Result<T, ProviderError>) -> &'static str {
    match result {
        Ok(_) => "answered",
        Err(ProviderError::NoBill) => "no_bill",
        Err(ProviderError::Timeout) => "timeout",
        Err(ProviderError::Garbage(_)) => "garbage",
        Err(ProviderError::Unavailable(_)) => "unavailable",
    }
}

#[async_trait]
impl Provider for Metered {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn settles(&self) -> bool {
        self.inner.settles()
    }

    async fn submit_transfer(&self, order: &TransferOrder) -> Result<DmtUpstream, ProviderError> {
        self.timed("submit_transfer", self.inner.submit_transfer(order)).await
    }

    async fn submit_bill(&self, order: &BillOrder) -> Result<BillUpstream, ProviderError> {
        self.timed("submit_bill", self.inner.submit_bill(order)).await
    }

    async fn fetch_bill(&self, query: &BillQuery<'_>) -> Result<FetchedBill, ProviderError> {
        self.timed("fetch_bill", self.inner.fetch_bill(query)).await
    }

    async fn dmt_status(&self, upstream_ref: &str, transfer: &DmtTransfer) -> Result<DmtUpstream, ProviderError> {
        self.timed("dmt_status", self.inner.dmt_status(upstream_ref, transfer)).await
    }

    async fn bill_status(&self, upstream_ref: &str, payment: &BillPayment) -> Result<BillUpstream, ProviderError> {
        self.timed("bill_status", self.inner.bill_status(upstream_ref, payment)).await
    }

    fn read_callback(
        &self,
        token: Option<&str>,
        body: &[u8],
        now: Timestamp,
    ) -> Result<UpstreamCallback, CallbackError> {
        self.inner.read_callback(token, body, now)
    }

    fn due_callbacks(&self, now: Timestamp) -> Vec<UpstreamCallback> {
        self.inner.due_callbacks(now)
    }

    fn health(&self) -> Option<Arc<UpstreamHealth>> {
        self.inner.health()
    }

    async fn remitter_ekyc(&self, request: &EkycRequest) -> Result<EkycOutcome, ProviderError> {
        self.timed("remitter_ekyc", self.inner.remitter_ekyc(request)).await
    }

    async fn verify_account(&self, check: &AccountCheck) -> Result<AccountHolder, ProviderError> {
        self.timed("verify_account", self.inner.verify_account(check)).await
    }

    async fn query_remitter(&self, mobile: &MobileNumber) -> Result<RemitterStatus, ProviderError> {
        self.timed("query_remitter", self.inner.query_remitter(mobile)).await
    }

    async fn register_remitter(&self, signup: &RemitterSignup) -> Result<Enrolment, ProviderError> {
        self.timed("register_remitter", self.inner.register_remitter(signup)).await
    }

    async fn fetch_beneficiaries(&self, mobile: &str) -> Result<Vec<UpstreamBeneficiary>, ProviderError> {
        self.timed("fetch_beneficiaries", self.inner.fetch_beneficiaries(mobile)).await
    }

    async fn register_beneficiary(&self, signup: &BeneficiarySignup) -> Result<Enrolment, ProviderError> {
        self.timed("register_beneficiary", self.inner.register_beneficiary(signup)).await
    }

    async fn delete_beneficiary(&self, mobile: &str, bene_id: &str) -> Result<Enrolment, ProviderError> {
        self.timed("delete_beneficiary", self.inner.delete_beneficiary(mobile, bene_id)).await
    }

    fn claims_refunds(&self) -> bool {
        self.inner.claims_refunds()
    }

    async fn submit_transfer_acked(&self, order: &TransferOrder) -> Result<DmtSubmitted, ProviderError> {
        self.timed("submit_transfer", self.inner.submit_transfer_acked(order)).await
    }

    async fn query_transfer(&self, upstream_ref: &str, transfer: &DmtTransfer) -> Result<DmtQueried, ProviderError> {
        self.timed("dmt_status", self.inner.query_transfer(upstream_ref, transfer)).await
    }

    async fn refund_otp(&self, order: &RefundOtpOrder<'_>) -> Result<RefundOtpOutcome, ProviderError> {
        self.timed("refund_otp", self.inner.refund_otp(order)).await
    }

    async fn claim_refund(&self, order: &RefundClaimOrder<'_>) -> Result<RefundClaimOutcome, ProviderError> {
        self.timed("claim_refund", self.inner.claim_refund(order)).await
    }
}
