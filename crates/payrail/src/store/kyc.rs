//! Remitter e-KYC: the attempts made per mobile (two a day, then a day's
//! block) and the KYC records a registration uses once. The trait, and the
//! SQL both engines run for it (`sql`); each engine's implementation is in
//! its `kyc.rs`. The Aadhaar number and the fingerprint data are not stored.

use super::columns::{columns, StoredRow, Value};
use super::remittance::{per_mobile, Count, CountResult, MobileCounts, PerMobile};
use super::*;
use crate::domain::ekyc::{ekyc_blocked_until, KycRecord, EKYC_BLOCK_SECS, KYC_LIFETIME_SECS};

columns! {
    /// The `remitter_kycs` columns a record is read from (its id and partner are the ones asked about).
    pub(crate) mod kyc_columns, list kyc_list {
        mobile, upstream_id, created_at, used_at
    }
}

/// What [`KycStore::register_with_kyc`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KycRegistration {
    /// The remitter is registered and its e-KYC used.
    Registered,
    /// The e-KYC is not there for this partner and mobile, used, or too old: nothing written.
    KycUnusable,
    /// The partner has a remitter with this mobile already: nothing written.
    AlreadyRegistered,
}

/// The partner's KYC record `kyc_id`, from [`kyc_columns`], on either engine.
pub(crate) fn kyc_from_row<R: StoredRow>(
    row: &R,
    partner: RegistrationId,
    kyc_id: &str,
) -> Result<KycRecord, R::Error> {
    use kyc_columns as c;
    Ok(KycRecord {
        kyc_id: kyc_id.to_owned(),
        partner,
        mobile: row.parsed(c::mobile, MobileNumber::parse)?,
        upstream_id: row.text(c::upstream_id)?,
        created_at: Timestamp::from_unix(row.int(c::created_at)?),
        used: row.opt_int(c::used_at)?.is_some(),
    })
}

/// What [`sql::INSERT_KYC`] writes, in its parameters' order.
pub(crate) fn kyc_values(k: &KycRecord) -> [Value<'_>; 5] {
    [
        k.kyc_id.as_str().into(),
        k.partner.number().into(),
        k.mobile.as_str().into(),
        k.upstream_id.as_str().into(),
        k.created_at.unix().into(),
    ]
}

/// Since when a mobile's attempts matter at `now`: the rule looks at the
/// last two, and two more than a day apart block nothing, so two days' do.
pub(crate) fn attempts_since(now: Timestamp) -> i64 {
    now.unix() - 2 * EKYC_BLOCK_SECS
}

/// Records made before this, at `now`, can no longer be used: unused ones are forgotten.
pub(crate) fn stale_kycs_before(now: Timestamp) -> i64 {
    now.unix() - KYC_LIFETIME_SECS - EKYC_BLOCK_SECS
}

/// e-KYC attempts: [`crate::domain::ekyc::ekyc_blocked_until`] decides.
pub const EKYC_ATTEMPTS: PerMobile = per_mobile!("ekyc_attempts", "attempted_at", 0x7072_0011);

/// The statements both engines run for e-KYC, with `$n` parameters in
/// order of first appearance (see `store::remittance::sql`).
pub(crate) mod sql {
    /// Stores a KYC record: id, partner, mobile, upstream id, created at.
    pub(crate) const INSERT_KYC: &str = "INSERT INTO remitter_kycs \
         (kyc_id, partner_id, mobile, upstream_id, created_at) VALUES ($1, $2, $3, $4, $5)";
    /// Forgets the unused records made before `$1` ([`super::stale_kycs_before`]).
    pub(crate) const FORGET_KYCS: &str = "DELETE FROM remitter_kycs WHERE used_at IS NULL AND created_at < $1";
    /// The record `$1` of partner `$2`.
    pub(crate) const FIND_KYC: &str =
        concat!("SELECT ", kyc_list!(), " FROM remitter_kycs WHERE kyc_id = $1 AND partner_id = $2");
    /// Uses, at `$1`, record `$2` of partner `$3` for mobile `$4` if unused
    /// and made after `$5`.
    pub(crate) const USE_KYC: &str = "UPDATE remitter_kycs SET used_at = $1 WHERE kyc_id = $2 AND partner_id = $3 \
         AND mobile = $4 AND used_at IS NULL AND created_at > $5";

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::store::columns::assert_parameters_in_order;

        #[test]
        fn parameters_first_appear_in_order() {
            for sql in [INSERT_KYC, FORGET_KYCS, FIND_KYC, USE_KYC] {
                assert_parameters_in_order(sql);
            }
        }
    }
}

/// Remitter e-KYC: attempts per mobile and the KYC records registrations use.
#[async_trait]
pub trait KycStore: MobileCounts {
    /// Counts an e-KYC attempt of `mobile` at `now` unless its attempts (by
    /// any partner) block it ([`crate::domain::ekyc::ekyc_blocked_until`]);
    /// blocked, `Err` of until when, and nothing written. Check and count
    /// are one step per mobile, across connections and instances, so
    /// concurrent attempts cannot all pass the check.
    async fn count_ekyc_attempt(&self, mobile: &MobileNumber, now: Timestamp) -> CountResult {
        let (mobile, since) = (mobile.as_str().to_owned(), attempts_since(now));
        let allowed = Box::new(move |made: &[i64]| ekyc_blocked_until(made, now.unix()));
        self.count_per_mobile(&EKYC_ATTEMPTS, Count { mobile, at: now, since, allowed }).await
    }
    /// Stores a successful e-KYC (unused), forgetting unused ones long expired.
    async fn insert_kyc(&self, record: KycRecord) -> StoreResult<()>;
    /// The partner's KYC record with this id.
    async fn find_kyc(&self, partner: RegistrationId, kyc_id: &str) -> StoreResult<Option<KycRecord>>;
    /// In one transaction: uses the partner's KYC record `remitter.kyc_id`
    /// (for `remitter.mobile`, unused, made after `made_after`) and
    /// registers the remitter. A record is used by one registration only,
    /// whatever runs concurrently.
    async fn register_with_kyc(&self, remitter: Remitter, made_after: Timestamp) -> StoreResult<KycRegistration>;
}

/// The test body both engines run, so that each is held to the same behaviour.
#[cfg(test)]
pub(crate) mod conformance {
    use super::*;

    /// Two attempts a day then a day's block, per mobile; a KYC record used
    /// once, only by its partner and mobile, only while fresh, and not used
    /// up by a registration refused because the remitter exists.
    pub(crate) async fn attempts_and_single_use(store: &dyn Store, partner: RegistrationId) -> anyhow::Result<()> {
        let at = |secs: i64| Timestamp::from_unix(1_800_000_000 + secs);
        let (mobile, other) = (MobileNumber::parse("9876543210")?, MobileNumber::parse("9876543211")?);
        assert_eq!(store.count_ekyc_attempt(&mobile, at(0)).await?, Ok(()));
        assert_eq!(store.count_ekyc_attempt(&mobile, at(10)).await?, Ok(()));
        assert_eq!(store.count_ekyc_attempt(&mobile, at(20)).await?, Err(at(10 + EKYC_BLOCK_SECS)));
        assert_eq!(store.count_ekyc_attempt(&other, at(20)).await?, Ok(()));
        assert_eq!(store.count_ekyc_attempt(&mobile, at(10 + EKYC_BLOCK_SECS)).await?, Ok(()));

        let record = KycRecord {
            kyc_id: "k-1".into(),
            partner,
            mobile: mobile.clone(),
            upstream_id: "EK1".into(),
            created_at: at(100),
            used: false,
        };
        store.insert_kyc(record.clone()).await?;
        assert_eq!(store.find_kyc(partner, "k-1").await?, Some(record));
        assert_eq!(store.find_kyc(RegistrationId::new(partner.number() + 1), "k-1").await?, None);
        let remitter = |mobile: &MobileNumber, kyc_id: &str| Remitter {
            partner,
            mobile: mobile.clone(),
            first_name: None,
            last_name: None,
            kyc_id: kyc_id.into(),
            created_at: at(200),
            upstream_id: None,
        };
        let fresh_since = at(100 - 1);
        assert_eq!(store.register_with_kyc(remitter(&other, "k-1"), fresh_since).await?, KycRegistration::KycUnusable);
        assert_eq!(store.register_with_kyc(remitter(&mobile, "k-1"), at(100)).await?, KycRegistration::KycUnusable);
        assert!(store.insert_remitter(remitter(&mobile, "elsewhere")).await?);
        let taken = store.register_with_kyc(remitter(&mobile, "k-1"), fresh_since).await?;
        assert_eq!(taken, KycRegistration::AlreadyRegistered);
        assert_eq!(store.find_kyc(partner, "k-1").await?.map(|k| k.used), Some(false), "rolled back");

        store
            .insert_kyc(KycRecord { kyc_id: "k-2".into(), mobile: other.clone(), ..record_of(partner, at(150)) })
            .await?;
        assert_eq!(store.register_with_kyc(remitter(&other, "k-2"), fresh_since).await?, KycRegistration::Registered);
        assert_eq!(store.find_kyc(partner, "k-2").await?.map(|k| k.used), Some(true));
        assert_eq!(store.find_remitter(partner, &other).await?.map(|r| r.kyc_id), Some("k-2".into()));
        let again = store.register_with_kyc(remitter(&other, "k-2"), fresh_since).await?;
        assert_eq!(again, KycRegistration::KycUnusable);
        Ok(())
    }

    fn record_of(partner: RegistrationId, created_at: Timestamp) -> KycRecord {
        KycRecord {
            kyc_id: String::new(),
            partner,
            mobile: MobileNumber::parse("9876543210").unwrap_or_else(|e| panic!("{e}")),
            upstream_id: "EK".into(),
            created_at,
            used: false,
        }
    }
}
