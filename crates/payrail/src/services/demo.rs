//! The demo data set (SPEC §6): partner `AOP-554`, reachable from loopback
//! without a token, holding the two documented records exactly; a second
//! partner that requires tokens; and synthetic transactions over every state.

use std::sync::Arc;

use anyhow::Context as _;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use secrecy::SecretString;

use super::partners::{add_partner, PartnerRequest};
use super::secrets::MasterKey;
use super::transactions::{NewBill, NewDmt};
use crate::domain::{
    BillStatus, ChangeSource, Clock, DmtStatus, IpAllowlist, Paise, ReferenceId, RegistrationId, Timestamp,
};
use crate::store::{ChangeNote, Store, TransactionStore};

/// The partner of the seed documents.
pub const SEED_PARTNER: RegistrationId = RegistrationId::new(554);
/// The demo partner that must sign its requests.
pub const TOKEN_PARTNER: RegistrationId = RegistrationId::new(1001);

/// What a fresh demo set-up made.
pub struct DemoData {
    /// The token partner's secret, shown once.
    pub token_secret: SecretString,
    /// The seed partner's (`AOP-554`) callback secret, shown once, so that
    /// the walkthrough's receiver can verify what it is sent.
    pub callback_secret: Option<SecretString>,
}

/// What each demo partner's wallet starts with: ₹1,00,000.
pub const DEMO_FUNDING: Paise = Paise::rupees(100_000);

/// Loads the demo data set into an empty store. Returns `None` (and touches
/// nothing) if the store already has partners.
pub async fn load_demo(
    store: &dyn Store,
    clock: &dyn Clock,
    key: &MasterKey,
    synthetic_each: usize,
) -> anyhow::Result<Option<DemoData>> {
    if !store.list_partners().await.context("Failed to list partners")?.is_empty() {
        return Ok(None);
    }
    let loopback = IpAllowlist::parse(["127.0.0.0/8", "::1"])?;
    add_partner(store, clock, key, request(SEED_PARTNER, "AOPay seed partner (demo)", loopback, false)).await?;
    let token = add_partner(
        store,
        clock,
        key,
        request(TOKEN_PARTNER, "Demo fintech (token required)", IpAllowlist::default(), true),
    )
    .await?;
    insert_seed_records(store, clock).await?;
    insert_synthetic(store, clock, synthetic_each).await?;
    for partner in [SEED_PARTNER, TOKEN_PARTNER] {
        super::ledger::move_money(
            store,
            clock,
            partner,
            super::ledger::OperatorMove::TopUp,
            DEMO_FUNDING,
            "demo funding",
        )
        .await?;
    }
    let callback_secret = super::callback_secrets::ensure_secret(store, clock, key, SEED_PARTNER).await?;
    Ok(Some(DemoData { token_secret: token.secret, callback_secret }))
}

fn request(id: RegistrationId, name: &str, allowlist: IpAllowlist, require_token: bool) -> PartnerRequest {
    PartnerRequest { number: Some(id.number()), name: name.into(), allowlist, require_token, authorised_key: None }
}

fn ist(text: &str) -> anyhow::Result<Timestamp> {
    Timestamp::parse_ist(text).with_context(|| format!("bad fixture time {text}"))
}

fn demo_note(clock: &dyn Clock) -> ChangeNote {
    ChangeNote { source: ChangeSource::Demo, reason: Some("demo data set".into()), at: clock.now() }
}

fn no_progress() -> Arc<dyn Fn(u64) + Send + Sync> {
    Arc::new(|_| {})
}

/// The two records of `seeds/`, field for field.
async fn insert_seed_records(store: &dyn TransactionStore, clock: &dyn Clock) -> anyhow::Result<()> {
    let transfer = NewDmt {
        ackno: Some(128),
        partner: SEED_PARTNER,
        reference: ReferenceId::parse("12345678927")?,
        amount: Paise::rupees(100),
        account: "20018575947".into(),
        status: DmtStatus::Success,
        utr: Some("101306003674".into()),
        customer_charge: Some(Paise::new(1000)),
        provider_share: Some(Paise::new(350)),
        created_at: Some(ist("2021-01-15 18:30:12")?),
        refund_txn_id: Some("130".into()),
        refunded_at: Some(ist("2021-01-15 18:38:38")?),
    };
    store.insert_dmt_batch(vec![transfer.into_transfer(clock.now())], demo_note(clock), no_progress()).await?;
    let bill = NewBill {
        txnid: Some(55),
        partner: SEED_PARTNER,
        reference: ReferenceId::parse("123456")?,
        operator_name: "BSES Rajdhani Power Limited".into(),
        ca_number: "102277100".into(),
        amount: Paise::rupees(100),
        extra: [None, None, None],
        commission: Some(Paise::new(21)),
        status: BillStatus::Refunded,
        operator_ref: None,
        created_at: Some(ist("2021-01-11 15:43:20")?),
        refund_txn_id: Some("57".into()),
        refunded_at: Some(ist("2021-01-11 15:53:08")?),
    };
    store.insert_bill_batch(vec![bill.into_payment(clock.now())], demo_note(clock), no_progress()).await?;
    Ok(())
}

/// Real billers, for synthetic bill payments.
const BILLERS: &[&str] = &[
    "BSES Rajdhani Power Limited",
    "BSES Yamuna Power Limited",
    "Tata Power - Mumbai",
    "Adani Electricity Mumbai Limited",
    "Maharashtra State Electricity Distribution Co. Ltd.",
    "Mahanagar Gas Limited",
    "Indraprastha Gas Limited",
    "Delhi Jal Board",
    "Airtel Postpaid",
    "Vi Postpaid",
];

/// `count` transfers and `count` bill payments, split between the two demo
/// partners, cycling through every state, dated over the last three years.
async fn insert_synthetic(store: &dyn TransactionStore, clock: &dyn Clock, count: usize) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(554);
    let now = clock.now();
    let transfers = (0..count).map(|i| synthetic_transfer(&mut rng, i, now)).collect::<anyhow::Result<Vec<_>>>()?;
    store.insert_dmt_batch(transfers, demo_note(clock), no_progress()).await?;
    let bills = (0..count).map(|i| synthetic_bill(&mut rng, i, now)).collect::<anyhow::Result<Vec<_>>>()?;
    store.insert_bill_batch(bills, demo_note(clock), no_progress()).await?;
    Ok(())
}

fn owner(i: usize) -> RegistrationId {
    if i.is_multiple_of(2) {
        SEED_PARTNER
    } else {
        TOKEN_PARTNER
    }
}

fn digits(rng: &mut StdRng, len: usize) -> String {
    (0..len).map(|_| char::from(b'0' + rng.gen_range(0..10u8))).collect()
}

fn synthetic_transfer(rng: &mut StdRng, i: usize, now: Timestamp) -> anyhow::Result<crate::domain::DmtTransfer> {
    let status = DmtStatus::ALL[i / 2 % DmtStatus::ALL.len()];
    let created_at = Timestamp::from_unix(now.unix() - rng.gen_range(60..3 * 365 * 86_400));
    let refunded = status == DmtStatus::Refunded;
    let paid = matches!(status, DmtStatus::Success | DmtStatus::Refunded)
        || (status == DmtStatus::Failed && i.is_multiple_of(4));
    let new = NewDmt {
        ackno: None,
        partner: owner(i),
        reference: ReferenceId::parse(&format!("DEMO-DMT-{i:06}"))?,
        amount: Paise::new(rng.gen_range(100..2_500_000) / 50 * 50),
        account: digits(rng, 11),
        status,
        utr: paid.then(|| digits(rng, 12)),
        customer_charge: None,
        provider_share: None,
        created_at: Some(created_at),
        refund_txn_id: refunded.then(|| format!("{}", 900_000 + i)),
        refunded_at: refunded.then(|| Timestamp::from_unix(created_at.unix() + 3_600)),
    };
    Ok(new.into_transfer(now))
}

fn synthetic_bill(rng: &mut StdRng, i: usize, now: Timestamp) -> anyhow::Result<crate::domain::BillPayment> {
    let status = BillStatus::ALL[i / 2 % BillStatus::ALL.len()];
    let created_at = Timestamp::from_unix(now.unix() - rng.gen_range(60..3 * 365 * 86_400));
    let refunded = status == BillStatus::Refunded;
    let new = NewBill {
        txnid: None,
        partner: owner(i),
        reference: ReferenceId::parse(&format!("DEMO-BILL-{i:06}"))?,
        operator_name: BILLERS[rng.gen_range(0..BILLERS.len())].into(),
        ca_number: digits(rng, 10),
        amount: Paise::new(rng.gen_range(1_000..1_000_000) / 100 * 100),
        extra: [None, None, None],
        commission: None,
        status,
        operator_ref: (status == BillStatus::Success).then(|| format!("BBPS{}", digits(rng, 10))),
        created_at: Some(created_at),
        refund_txn_id: refunded.then(|| format!("{}", 800_000 + i)),
        refunded_at: refunded.then(|| Timestamp::from_unix(created_at.unix() + 600)),
    };
    Ok(new.into_payment(now))
}
