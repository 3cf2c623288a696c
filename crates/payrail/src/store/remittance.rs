//! Remittance: remitters, their monthly usage, beneficiaries, OTPs and the
//! per-mobile text limits. The trait, and the SQL both engines run for it
//! (`sql`); each engine's implementation is in its `remittance.rs`.

use super::columns::{columns, StoredRow, Value};
use super::*;
use crate::domain::otp::{OTP_LIFETIME_SECS, TEXT_DAY_SECS};
use crate::domain::remitter::{AccountNumber, Ifsc};
use crate::domain::remitter_details::{BirthDate, GstState, Pincode, RemitterDetails};

columns! {
    /// The `remitters` columns a remitter is read from (its partner is the one asked about).
    pub(crate) mod remitter_columns, list remitter_list {
        mobile, first_name, last_name, kyc_id, created_at, upstream_id
    }
}

columns! {
    /// The `beneficiaries` columns a beneficiary is read from.
    pub(crate) mod beneficiary_columns, list beneficiary_list {
        id, partner_id, remitter_mobile, name, account, ifsc, bank_name, created_at, bank_id, dob, address, pincode,
        gst_state, claimed_verified, verified_name, upstream_id
    }
}

columns! {
    /// The `otps` columns an OTP is read from (its token, partner and purpose are the ones asked about).
    pub(crate) mod otp_columns, list otp_list {
        subject, code_hash, expires_at, attempts, used
    }
}

pub(crate) use otp_list;

/// A remitter of `partner` from [`remitter_columns`], on either engine.
pub(crate) fn remitter_from_row<R: StoredRow>(partner: RegistrationId, row: &R) -> Result<Remitter, R::Error> {
    use remitter_columns as c;
    Ok(Remitter {
        partner,
        mobile: row.parsed(c::mobile, MobileNumber::parse)?,
        first_name: row.opt_text(c::first_name)?,
        last_name: row.opt_text(c::last_name)?,
        kyc_id: row.text(c::kyc_id)?,
        created_at: Timestamp::from_unix(row.int(c::created_at)?),
        upstream_id: row.opt_text(c::upstream_id)?,
    })
}

/// The partner's OTP `token` for `purpose`, from [`otp_columns`], on either engine.
pub(crate) fn otp_from_row<R: StoredRow>(
    row: &R,
    partner: RegistrationId,
    token: &str,
    purpose: OtpPurpose,
) -> Result<OtpRecord, R::Error> {
    use otp_columns as c;
    Ok(OtpRecord {
        token: token.to_owned(),
        partner,
        purpose,
        subject: row.text(c::subject)?,
        code_hash: row.bytes(c::code_hash)?,
        expires_at: Timestamp::from_unix(row.int(c::expires_at)?),
        attempts: row.int(c::attempts)?,
        used: row.flag(c::used)?,
    })
}

/// A beneficiary from [`beneficiary_columns`], on either engine.
pub(crate) fn beneficiary_from_row<R: StoredRow>(row: &R) -> Result<Beneficiary, R::Error> {
    use beneficiary_columns as c;
    Ok(Beneficiary {
        id: row.int(c::id)?,
        partner: RegistrationId::new(row.int(c::partner_id)?),
        remitter: row.parsed(c::remitter_mobile, MobileNumber::parse)?,
        name: row.text(c::name)?,
        account: row.parsed(c::account, AccountNumber::parse)?,
        ifsc: row.parsed(c::ifsc, Ifsc::parse)?,
        bank_name: row.opt_text(c::bank_name)?,
        created_at: Timestamp::from_unix(row.int(c::created_at)?),
        bank_id: row.opt_int(c::bank_id)?,
        details: RemitterDetails {
            dob: row.opt_parsed(c::dob, BirthDate::from_stored)?,
            address: row.opt_text(c::address)?,
            pincode: row.opt_parsed(c::pincode, Pincode::parse)?,
            gst_state: row.opt_parsed(c::gst_state, GstState::parse)?,
        },
        claimed_verified: row.int(c::claimed_verified)? == 1,
        verified_name: row.opt_text(c::verified_name)?,
        upstream_id: row.opt_text(c::upstream_id)?,
    })
}

/// What [`sql::INSERT_REMITTER`] writes, in its parameters' order.
pub(crate) fn remitter_values(r: &Remitter) -> [Value<'_>; 7] {
    [
        r.partner.number().into(),
        r.mobile.as_str().into(),
        (&r.first_name).into(),
        (&r.last_name).into(),
        r.kyc_id.as_str().into(),
        r.created_at.unix().into(),
        (&r.upstream_id).into(),
    ]
}

/// What [`sql::INSERT_BENEFICIARY`] writes, in its parameters' order.
pub(crate) fn beneficiary_values(b: &Beneficiary) -> [Value<'_>; 15] {
    let d = &b.details;
    [
        b.partner.number().into(),
        b.remitter.as_str().into(),
        b.name.as_str().into(),
        b.account.as_str().into(),
        b.ifsc.as_str().into(),
        (&b.bank_name).into(),
        b.created_at.unix().into(),
        b.bank_id.into(),
        d.dob.as_ref().map(BirthDate::as_iso).into(),
        d.address.as_deref().into(),
        d.pincode.as_ref().map(Pincode::as_str).into(),
        d.gst_state.as_ref().map(GstState::as_str).into(),
        i64::from(b.claimed_verified).into(),
        (&b.verified_name).into(),
        (&b.upstream_id).into(),
    ]
}

/// Before when an expired OTP is deleted, when one that expires at
/// `expires_at` is stored: it expired a day before the new one was issued.
pub(crate) fn stale_otps_before(expires_at: Timestamp) -> i64 {
    expires_at.unix() - OTP_LIFETIME_SECS - 86_400
}

/// Events counted per mobile over a rolling window, whoever the partner:
/// e-KYC attempts and OTP texts. An engine's `count_per_mobile` reads the
/// mobile's events after the window's start and, if the rule finds room for
/// one more now, forgets every event (of any mobile) at or before that start
/// and counts this one: one transaction, serialised per mobile (SQLite's one
/// writer; PostgreSQL's advisory lock of `lock_class` and the mobile).
pub struct PerMobile {
    /// The times of mobile `$1`'s events after `$2`.
    pub(crate) recent: &'static str,
    /// Counts an event of mobile `$1` at `$2`.
    pub(crate) count: &'static str,
    /// Deletes every event at or before `$1` (SQLite: one writer, so all at once).
    pub(crate) forget: &'static str,
    /// [`Self::forget`] in bounded batches that skip rows another sweep
    /// holds (PostgreSQL: concurrent writers need not wait on each other).
    pub(crate) sweep: &'static str,
    /// The first key of PostgreSQL's two-key advisory lock (the second is a
    /// hash of the mobile); apart from the one-key locks in `postgres/mod.rs`.
    pub(crate) lock_class: i32,
}

/// An event of `mobile` at `at` to count among a [`PerMobile`]'s: `allowed`,
/// given the times of the mobile's events after `since`, says when one may
/// happen if not now (`Some`), and then nothing is written.
pub struct Count {
    pub(crate) mobile: String,
    pub(crate) at: Timestamp,
    pub(crate) since: i64,
    pub(crate) allowed: Box<Rule>,
}

/// A count's rule: given the times of the mobile's events in the window,
/// when the next may happen if not now.
pub type Rule = dyn FnOnce(&[i64]) -> Option<Timestamp> + Send;

/// Counts events per mobile ([`PerMobile`]), for the rules written once
/// above it: [`RemittanceStore::count_text`], [`super::KycStore::count_ekyc_attempt`].
#[async_trait]
pub trait MobileCounts: Send + Sync + 'static {
    /// Counts `count` among `events` unless its rule refuses it, check and
    /// count in one step per mobile, across connections and instances.
    async fn count_per_mobile(&self, events: &'static PerMobile, count: Count) -> CountResult;
}

/// A code presented at `now` for the partner's OTP `token` of `purpose`.
#[derive(Debug, Clone, Copy)]
pub struct OtpAttempt<'a> {
    pub partner: RegistrationId,
    pub token: &'a str,
    pub purpose: OtpPurpose,
    pub code: &'a str,
    pub now: Timestamp,
}

/// The partner's beneficiary `id` of the remitter `mobile`, to mark deleted at `at`.
#[derive(Debug, Clone, Copy)]
pub struct BeneficiaryDeletion<'a> {
    pub partner: RegistrationId,
    pub mobile: &'a MobileNumber,
    pub id: i64,
    pub at: Timestamp,
}

/// A count's answer: `Ok(Ok(()))` counted; `Ok(Err(when))` not counted,
/// the rule allows none before `when`.
pub type CountResult = StoreResult<Result<(), Timestamp>>;

/// The [`PerMobile`] of table `$table`, whose rows are (`mobile`, `$at`):
/// every statement written from the two names.
macro_rules! per_mobile {
    ($table:literal, $at:literal, $lock_class:expr) => {
        PerMobile {
            recent: concat!("SELECT ", $at, " FROM ", $table, " WHERE mobile = $1 AND ", $at, " > $2"),
            count: concat!("INSERT INTO ", $table, " (mobile, ", $at, ") VALUES ($1, $2)"),
            forget: concat!("DELETE FROM ", $table, " WHERE ", $at, " <= $1"),
            sweep: concat!(
                "DELETE FROM ",
                $table,
                " WHERE ctid IN (SELECT ctid FROM ",
                $table,
                " WHERE ",
                $at,
                " <= $1 LIMIT 100 FOR UPDATE SKIP LOCKED)"
            ),
            lock_class: $lock_class,
        }
    };
}
pub(crate) use per_mobile;

/// OTP texts: at most [`TextLimits`] to one mobile.
pub const OTP_TEXTS: PerMobile = per_mobile!("otp_texts", "sent_at", 0x7072_0009);

/// The statements both engines run for remittance, with `$n` parameters.
/// SQLite numbers a `$n` parameter by where it first appears, not by `n`,
/// so each statement's parameters first appear in order `$1`, `$2`, … (the
/// SQLite tests check it). Sums are cast to `BIGINT`: PostgreSQL's `SUM` of
/// a `bigint` is a `numeric`, and SQLite reads the cast as an integer.
pub(crate) mod sql {
    /// The partner `$1`'s remitter with mobile `$2`.
    pub(crate) const FIND_REMITTER: &str =
        concat!("SELECT ", remitter_list!(), " FROM remitters WHERE partner_id = $1 AND mobile = $2");
    /// Registers a remitter: partner, mobile, first and last name, KYC id, created at, upstream id.
    pub(crate) const INSERT_REMITTER: &str = "INSERT INTO remitters \
         (partner_id, mobile, first_name, last_name, kyc_id, created_at, upstream_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";
    /// What the remitter (`$1` partner, `$2` mobile) sent through pipe `$3`
    /// at or after `$4`, not counting refunded transfers (status 0).
    pub(crate) const ROUTE_USAGE: &str = "SELECT CAST(COALESCE(SUM(t.amount), 0) AS BIGINT) FROM dmt_routes r \
         JOIN dmt_transfers t ON t.ackno = r.ackno \
         WHERE r.partner_id = $1 AND r.remitter_mobile = $2 AND r.bank = $3 AND t.created_at >= $4 AND t.status <> 0";
    /// As [`ROUTE_USAGE`], for every pipe used: (pipe, sum) rows, `$3` the time.
    pub(crate) const REMITTER_USAGE: &str = "SELECT r.bank, CAST(SUM(t.amount) AS BIGINT) FROM dmt_routes r \
         JOIN dmt_transfers t ON t.ackno = r.ackno \
         WHERE r.partner_id = $1 AND r.remitter_mobile = $2 AND t.created_at >= $3 AND t.status <> 0 GROUP BY r.bank";

    /// Adds a beneficiary ([`super::beneficiary_values`]) and returns its id.
    pub(crate) const INSERT_BENEFICIARY: &str = "INSERT INTO beneficiaries \
         (partner_id, remitter_mobile, name, account, ifsc, bank_name, created_at, bank_id, dob, address, pincode, \
         gst_state, claimed_verified, verified_name, upstream_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id";
    /// The remitter's live beneficiary with this account number at this bank
    /// (IFSC prefix): `$1` partner, `$2` mobile, `$3` account, `$4` bank.
    pub(crate) const SAME_ACCOUNT: &str = "SELECT id FROM beneficiaries WHERE partner_id = $1 \
         AND remitter_mobile = $2 AND account = $3 AND substr(ifsc, 1, 4) = $4 AND deleted_at IS NULL";
    /// The live beneficiaries of remitter `$2` of partner `$1`, by id.
    pub(crate) const BENEFICIARIES: &str = concat!(
        "SELECT ",
        beneficiary_list!(),
        " FROM beneficiaries WHERE partner_id = $1 AND remitter_mobile = $2 AND deleted_at IS NULL ORDER BY id"
    );
    /// Partner `$1`'s live beneficiary `$2`.
    pub(crate) const FIND_BENEFICIARY: &str = concat!(
        "SELECT ",
        beneficiary_list!(),
        " FROM beneficiaries WHERE partner_id = $1 AND id = $2 AND deleted_at IS NULL"
    );
    /// Keeps upstream id `$1` for partner `$2`'s live beneficiary `$3`, if it has none yet.
    pub(crate) const SET_BENEFICIARY_UPSTREAM_ID: &str = "UPDATE beneficiaries SET upstream_id = $1 \
         WHERE partner_id = $2 AND id = $3 AND deleted_at IS NULL AND upstream_id IS NULL";
    /// Marks deleted at `$1` beneficiary `$4` of remitter `$3` of partner `$2`.
    pub(crate) const DELETE_BENEFICIARY: &str = "UPDATE beneficiaries SET deleted_at = $1 \
         WHERE partner_id = $2 AND remitter_mobile = $3 AND id = $4 AND deleted_at IS NULL";

    /// The token of the partner `$1`'s newest OTP for purpose `$2` and subject `$3`.
    pub(crate) const LATEST_OTP: &str = "SELECT token FROM otps \
         WHERE partner_id = $1 AND purpose = $2 AND subject = $3 ORDER BY expires_at DESC, token LIMIT 1";
    /// Stores an OTP: token, partner, purpose, subject, code hash, expiry, attempts, used.
    pub(crate) const INSERT_OTP: &str = "INSERT INTO otps \
         (token, partner_id, purpose, subject, code_hash, expires_at, attempts, used) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    /// Deletes the OTPs that expired before `$1` ([`super::stale_otps_before`]).
    pub(crate) const FORGET_OTPS: &str = "DELETE FROM otps WHERE expires_at < $1";
    /// The partner `$2`'s OTP `$1` for purpose `$3`.
    pub(crate) const FIND_OTP: &str =
        concat!("SELECT ", otp_list!(), " FROM otps WHERE token = $1 AND partner_id = $2 AND purpose = $3");
    /// Saves what a check changed: attempts `$1`, used `$2` of OTP `$3`.
    pub(crate) const SAVE_OTP: &str = "UPDATE otps SET attempts = $1, used = $2 WHERE token = $3";

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::store::columns::assert_parameters_in_order;

        #[test]
        fn parameters_first_appear_in_order() {
            for sql in [
                FIND_REMITTER,
                INSERT_REMITTER,
                ROUTE_USAGE,
                REMITTER_USAGE,
                INSERT_BENEFICIARY,
                SAME_ACCOUNT,
                BENEFICIARIES,
                FIND_BENEFICIARY,
                DELETE_BENEFICIARY,
                SET_BENEFICIARY_UPSTREAM_ID,
                INSERT_OTP,
                FORGET_OTPS,
                FIND_OTP,
                SAVE_OTP,
            ] {
                assert_parameters_in_order(sql);
            }
            for events in [&super::super::OTP_TEXTS, &crate::store::kyc::EKYC_ATTEMPTS] {
                for sql in [events.recent, events.count, events.forget, events.sweep] {
                    assert_parameters_in_order(sql);
                }
            }
        }
    }
}

/// Remittance: remitters, their monthly usage, beneficiaries, OTPs and the per-mobile text limits.
#[async_trait]
pub trait RemittanceStore: MobileCounts {
    /// The partner's remitter with this mobile.
    async fn find_remitter(&self, partner: RegistrationId, mobile: &MobileNumber) -> StoreResult<Option<Remitter>>;
    /// Registers a remitter; `false` (and nothing written) if the partner has one with this mobile.
    async fn insert_remitter(&self, remitter: Remitter) -> StoreResult<bool>;
    /// What the remitter sent through each pipe in transfers made at or
    /// after `since` that are not refunded.
    async fn remitter_usage(
        &self,
        partner: RegistrationId,
        mobile: &MobileNumber,
        since: Timestamp,
    ) -> StoreResult<PerBank>;
    /// Adds a beneficiary (its `id` is ignored) and returns it with its new
    /// id; `Err(id)` of the remitter's beneficiary (not deleted) with the
    /// same account number at the same bank (the IFSC's first four letters),
    /// and nothing written. Concurrent calls for one remitter are serialised.
    async fn insert_beneficiary(&self, beneficiary: Beneficiary) -> StoreResult<Result<Beneficiary, i64>>;
    /// The remitter's beneficiaries that are not deleted, by id.
    async fn beneficiaries(&self, partner: RegistrationId, mobile: &MobileNumber) -> StoreResult<Vec<Beneficiary>>;
    /// The partner's beneficiary with this id, if not deleted.
    async fn find_beneficiary(&self, partner: RegistrationId, id: i64) -> StoreResult<Option<Beneficiary>>;
    /// Keeps the upstream's id for the beneficiary (found by its partner and
    /// id) if it has none yet; `false` (nothing written) if it is deleted
    /// or has one.
    async fn set_beneficiary_upstream_id(&self, beneficiary: &Beneficiary, upstream_id: &str) -> StoreResult<bool>;
    /// Deletes (marks deleted, at `at`) the remitter's beneficiary; `false` if there was none.
    async fn delete_beneficiary(&self, deletion: BeneficiaryDeletion<'_>) -> StoreResult<bool>;
    /// Stores a new OTP.
    async fn insert_otp(&self, otp: OtpRecord) -> StoreResult<()>;
    /// The `Stateresp` (token) of the partner's newest OTP for `purpose`
    /// bound to `subject`, used or not; `None` if there is none (any more).
    async fn latest_otp_token(
        &self,
        partner: RegistrationId,
        purpose: OtpPurpose,
        subject: &str,
    ) -> StoreResult<Option<String>>;
    /// Counts an OTP text to `mobile` at `now` if `limits` allow it, given
    /// the texts counted for it in the last day by any partner; otherwise
    /// `Err` of when one may go, and nothing written. Check and count are one
    /// step per mobile, across connections and instances, so concurrent
    /// requests cannot all pass the check.
    async fn count_text(&self, mobile: &MobileNumber, now: Timestamp, limits: TextLimits) -> CountResult {
        let (mobile, since) = (mobile.as_str().to_owned(), now.unix() - TEXT_DAY_SECS);
        let allowed = Box::new(move |sent: &[i64]| limits.next_allowed(sent, now.unix()));
        self.count_per_mobile(&OTP_TEXTS, Count { mobile, at: now, since, allowed }).await
    }
    /// Presents `code` for the partner's OTP `token` of this purpose, with
    /// [`OtpRecord::check`], and saves what it changed (attempts, used) in
    /// the same transaction, so that a code can be accepted only once.
    async fn check_otp(&self, presented: OtpAttempt<'_>) -> StoreResult<OtpCheck>;
}

/// The test bodies both engines run, so that each is held to the same behaviour.
#[cfg(test)]
pub(crate) mod conformance {
    use super::*;

    /// A time in the tests, `secs` after a fixed start.
    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix(1_700_000_000 + secs)
    }

    /// An OTP's code is accepted once, and only for its partner, token and
    /// purpose; a wrong code costs an attempt.
    pub(crate) async fn an_otp_is_accepted_once(store: &dyn Store, partner: RegistrationId) -> anyhow::Result<()> {
        let issued =
            OtpRecord::issue(partner, OtpPurpose::Transfer, "subj".into(), "tok".into(), "123456".into(), at(0));
        store.insert_otp(issued.record).await?;
        let check = |partner, token: &'static str, purpose, code: &'static str| {
            store.check_otp(OtpAttempt { partner, token, purpose, code, now: at(10) })
        };
        let other_partner = RegistrationId::new(partner.number() + 1);
        assert_eq!(check(partner, "tok", OtpPurpose::Registration, "123456").await?, OtpCheck::Unknown);
        assert_eq!(check(partner, "tok", OtpPurpose::Refund, "123456").await?, OtpCheck::Unknown);
        assert_eq!(check(other_partner, "tok", OtpPurpose::Transfer, "123456").await?, OtpCheck::Unknown);
        assert_eq!(check(partner, "nope", OtpPurpose::Transfer, "123456").await?, OtpCheck::Unknown);
        assert_eq!(check(partner, "tok", OtpPurpose::Transfer, "000000").await?, OtpCheck::Wrong(2));
        assert_eq!(check(partner, "tok", OtpPurpose::Transfer, "123456").await?, OtpCheck::Accepted("subj".into()));
        assert_eq!(check(partner, "tok", OtpPurpose::Transfer, "123456").await?, OtpCheck::Spent);
        assert_eq!(check(partner, "nope", OtpPurpose::Transfer, "123456").await?, OtpCheck::Unknown);
        Ok(())
    }

    /// Fee plans are versioned per partner; a remitter is registered once;
    /// a remitter has one live beneficiary per account at a bank, keeps an
    /// upstream id once, and a deleted one is gone.
    pub(crate) async fn fee_plans_remitters_and_beneficiaries(
        store: &dyn Store,
        partner: RegistrationId,
    ) -> anyhow::Result<()> {
        let plan = FeePlan::default_plan();
        assert_eq!(
            store
                .insert_fee_plan(NewFeePlan { partner, effective_from: at(10), plan: plan.clone(), created_at: at(5) })
                .await?
                .version,
            1
        );
        assert_eq!(
            store
                .insert_fee_plan(NewFeePlan { partner, effective_from: at(20), plan: plan.clone(), created_at: at(6) })
                .await?
                .version,
            2
        );
        let unknown = store
            .insert_fee_plan(NewFeePlan {
                partner: RegistrationId::new(partner.number() + 1),
                effective_from: at(10),
                plan: plan.clone(),
                created_at: at(5),
            })
            .await;
        assert!(matches!(unknown, Err(DebitError::UnknownPartner)));
        let plans = store.fee_plans(partner).await?;
        assert_eq!(plans.iter().map(|p| (p.version, p.effective_from)).collect::<Vec<_>>(), [(1, at(10)), (2, at(20))]);
        assert_eq!(plans[1].plan, plan);

        let mobile = MobileNumber::parse("9876543210")?;
        let remitter = Remitter {
            partner,
            mobile: mobile.clone(),
            first_name: Some("Asha".into()),
            last_name: None,
            kyc_id: "K1".into(),
            created_at: at(7),
            upstream_id: Some("9876543210".into()),
        };
        assert!(store.insert_remitter(remitter.clone()).await?);
        assert!(!store.insert_remitter(remitter.clone()).await?);
        assert_eq!(store.find_remitter(partner, &mobile).await?, Some(remitter));

        let new = |name: &str| -> anyhow::Result<Beneficiary> {
            Ok(Beneficiary {
                id: 0,
                partner,
                remitter: mobile.clone(),
                name: name.into(),
                account: AccountNumber::parse("123456789")?,
                ifsc: Ifsc::parse("SBIN0001234")?,
                bank_name: None,
                created_at: at(8),
                bank_id: Some(101),
                details: RemitterDetails {
                    dob: BirthDate::from_stored("1990-03-02").ok(),
                    address: Some("New delhi".into()),
                    pincode: Pincode::parse("560001").ok(),
                    gst_state: GstState::parse("07").ok(),
                },
                claimed_verified: true,
                verified_name: None,
                upstream_id: Some("4471".into()),
            })
        };
        let refused = |id| anyhow::anyhow!("refused: {id}");
        let first = store.insert_beneficiary(new("One")?).await?.map_err(refused)?;
        assert_eq!(store.insert_beneficiary(new("Again")?).await?, Err(first.id));
        let same_bank = Beneficiary { ifsc: Ifsc::parse("SBIN0009999")?, ..new("Branch")? };
        assert_eq!(store.insert_beneficiary(same_bank).await?, Err(first.id));
        let other = Beneficiary { account: AccountNumber::parse("987654321")?, upstream_id: None, ..new("Two")? };
        let second = store.insert_beneficiary(other).await?.map_err(refused)?;
        assert!(first.id > 0 && second.id > first.id);
        assert!(store.set_beneficiary_upstream_id(&second, "4472").await?);
        assert!(!store.set_beneficiary_upstream_id(&second, "9999").await?, "an id is kept once");
        let second = Beneficiary { upstream_id: Some("4472".into()), ..second };
        assert_eq!(store.find_beneficiary(partner, second.id).await?, Some(second.clone()));
        assert_eq!(store.find_beneficiary(partner, first.id).await?, Some(first.clone()));
        assert!(
            store
                .delete_beneficiary(BeneficiaryDeletion { partner, mobile: &mobile, id: first.id, at: at(50) })
                .await?
        );
        assert!(
            !store
                .delete_beneficiary(BeneficiaryDeletion { partner, mobile: &mobile, id: first.id, at: at(50) })
                .await?
        );
        assert_eq!(store.find_beneficiary(partner, first.id).await?, None);
        assert_eq!(store.beneficiaries(partner, &mobile).await?, [second]);
        Ok(())
    }
}
