//! Fixtures and test bodies that both engines' tests run (each engine's
//! `transactions` tests call them with its own store), so that the two
//! engines are held to the same behaviour.

use super::*;

/// A change note from `source` at a fixed time.
pub(crate) fn note(source: &str) -> ChangeNote {
    ChangeNote {
        // `api` stands for the partner's own call, `upstream` for the upstream's callback.
        source: match source {
            "api" => crate::domain::ChangeSource::Partner,
            "upstream" => crate::domain::ChangeSource::UpstreamCallback,
            other => crate::domain::ChangeSource::parse(other).unwrap_or_else(|| panic!("no source {other:?}")),
        },
        reason: None,
        at: Timestamp::from_unix(1_700_000_000),
    }
}

/// A progress callback that ignores progress.
pub(crate) fn no_progress() -> Arc<dyn Fn(u64) + Send + Sync> {
    Arc::new(|_| {})
}

/// A partner to add, with a fixed number or the next one.
pub(crate) fn new_partner(number: Option<i64>) -> NewPartner {
    NewPartner {
        number,
        name: "Test partner".into(),
        require_token: true,
        allowlist: IpAllowlist::default(),
        secret: SealedSecret(vec![1, 2, 3]),
        authorised_key_hash: None,
        created_at: Timestamp::from_unix(1_600_000_000),
    }
}

/// An in-process transfer of ₹1,000 (`ackno` 0 asks for a new one).
pub(crate) fn transfer(partner: i64, ackno: i64, reference: &str) -> anyhow::Result<DmtTransfer> {
    let at = Timestamp::from_unix(1_650_000_000);
    Ok(DmtTransfer {
        ackno,
        partner: RegistrationId::new(partner),
        reference: ReferenceId::parse(reference)?,
        amount: Paise::rupees(1000),
        account: "1234567890".into(),
        utr: None,
        status: DmtStatus::InProcess,
        charges: DmtCharges::compute(Paise::new(1000), Paise::new(350), at),
        created_at: at,
        refund_txn_id: None,
        refunded_at: None,
        upstream_ackno: None,
    })
}

/// A pending bill payment of ₹250 (`txnid` 0 asks for a new one).
pub(crate) fn bill(partner: i64, txnid: i64, reference: &str) -> anyhow::Result<BillPayment> {
    Ok(BillPayment {
        txnid,
        partner: RegistrationId::new(partner),
        reference: ReferenceId::parse(reference)?,
        operator_name: "Power Co".into(),
        ca_number: "CA-1".into(),
        amount: Paise::rupees(250),
        ad1: Some("extra".into()),
        ad2: None,
        ad3: None,
        commission: Paise::new(125),
        tds: Paise::new(3),
        status: BillStatus::Pending,
        operator_ref: None,
        created_at: Timestamp::from_unix(1_650_000_000),
        refund_txn_id: None,
        refunded_at: None,
    })
}

/// `count` new transfers referenced `prefix0`, `prefix1`, …
pub(crate) fn transfers(partner: i64, prefix: &str, count: usize) -> anyhow::Result<Vec<DmtTransfer>> {
    (0..count).map(|i| transfer(partner, 0, &format!("{prefix}{i}"))).collect()
}

/// Both engines' test of the same name.
pub(crate) async fn a_refund_gets_a_new_refund_id_and_every_change_a_history_row(
    store: &dyn Store,
    second_refund_id: &str,
) -> anyhow::Result<()> {
    store.insert_partner(new_partner(Some(554))).await?;
    let ids = store.insert_dmt_batch(transfers(554, "T", 1)?, note("import"), no_progress()).await?;
    let ackno = ids[0];
    let refund = DmtChange::Refund { refund_txn_id: None };
    let forbidden = store.change_dmt(ackno, refund.clone(), note("admin")).await;
    assert!(matches!(forbidden, Err(ChangeError::Forbidden(_))));
    store.change_dmt(ackno, DmtChange::Fail, note("admin")).await?;
    let refunded = store.change_dmt(ackno, refund, note("admin")).await?;
    assert_eq!(refunded.status, DmtStatus::Refunded);
    // PostgreSQL's sequence keeps the id the forbidden attempt took
    // (`second_refund_id` "2"); SQLite's rolled-back row frees it ("1").
    assert_eq!(refunded.refund_txn_id.as_deref(), Some(second_refund_id));
    assert!(matches!(store.change_dmt(999, DmtChange::Fail, note("admin")).await, Err(ChangeError::NotFound)));

    let (stored, history) = store.dmt_with_history(ackno).await?.ok_or_else(|| anyhow::anyhow!("missing"))?;
    assert_eq!(stored, refunded);
    let steps: Vec<_> = history.iter().map(|h| (h.from_status.as_deref(), h.to_status.as_str())).collect();
    assert_eq!(steps, vec![(None, "in_process"), (Some("in_process"), "failed"), (Some("failed"), "refunded")]);
    Ok(())
}

/// Both engines' test of the same name.
pub(crate) async fn a_transfer_held_for_review_moves_only_by_an_operator(store: &dyn Store) -> anyhow::Result<()> {
    store.insert_partner(new_partner(Some(554))).await?;
    let ids = store.insert_dmt_batch(transfers(554, "R", 2)?, note("import"), no_progress()).await?;
    let review =
        ChangeNote { reason: Some(format!("{}duplicate", crate::domain::upstream::REVIEW_PREFIX)), ..note("poller") };
    store.change_dmt(ids[0], DmtChange::Hold, review).await?;
    // An upstream answer read before the hold and applied after it is refused, in the store.
    let paid = DmtChange::Success { utr: Some("U1".into()) };
    for source in ["poller", "upstream", "status-sync", "provider"] {
        let refused = store.change_dmt(ids[0], paid.clone(), note(source)).await;
        assert!(matches!(refused, Err(ChangeError::Forbidden(_))), "{source}: {refused:?}");
    }
    // A hold for another reason moves as the upstream says; an operator moves either.
    store.change_dmt(ids[1], DmtChange::Hold, note("poller")).await?;
    assert_eq!(store.change_dmt(ids[1], paid.clone(), note("poller")).await?.status, DmtStatus::Success);
    assert_eq!(store.change_dmt(ids[0], paid, note("admin")).await?.status, DmtStatus::Success);

    // A note changes nothing but the history, and may start a re-query.
    let at = Timestamp::from_unix(1_700_000_100);
    let remark = ChangeNote { reason: Some("upstream: bank return reported".into()), ..note("upstream") };
    let entry = HistoryNote { kind: TxnKind::Dmt, id: ids[1], status: "success", note: remark, recheck_at: Some(at) };
    store.note_history(entry).await?;
    let (stored, history) = store.dmt_with_history(ids[1]).await?.ok_or_else(|| anyhow::anyhow!("missing"))?;
    assert_eq!(stored.status, DmtStatus::Success);
    let last = history.last().ok_or_else(|| anyhow::anyhow!("no history"))?;
    assert_eq!((last.from_status.as_deref(), last.to_status.as_str()), (Some("success"), "success"));
    let job = store.poll_job(TxnKind::Dmt, ids[1]).await?.ok_or_else(|| anyhow::anyhow!("no re-query"))?;
    assert_eq!(job.due_at, at);
    Ok(())
}

/// Both engines' test of the same name.
pub(crate) async fn bill_payments_go_through_the_same_life(store: &dyn Store) -> anyhow::Result<()> {
    store.insert_partner(new_partner(Some(554))).await?;
    let rows = vec![bill(554, 0, "B1")?, bill(554, 40, "B2")?];
    let ids = store.insert_bill_batch(rows, note("import"), no_progress()).await?;
    assert!((100_000_000..1_000_000_000).contains(&ids[0]), "{ids:?}");
    assert_eq!(ids[1], 40);
    let dup = store.insert_bill_batch(vec![bill(554, 0, "B2")?], note("import"), no_progress()).await;
    assert!(matches!(dup, Err(InsertError::Duplicate { index: 0, .. })));

    let success = BillChange::Success { operator_ref: Some("OP1".into()) };
    let paid = store.change_bill(ids[0], success, note("admin")).await?;
    assert_eq!((paid.status, paid.operator_ref.as_deref()), (BillStatus::Success, Some("OP1")));
    store.change_bill(ids[0], BillChange::Fail, note("admin")).await?;
    let refund = BillChange::Refund { refund_txn_id: Some("R-9".into()) };
    let refunded = store.change_bill(ids[0], refund, note("admin")).await?;
    assert_eq!(refunded.refund_txn_id.as_deref(), Some("R-9"));

    assert_eq!(store.lookup_bill(RegistrationId::new(554), "B1").await?.and_then(|(_, t)| t), Some(refunded));
    let history = store.bill_with_history(ids[0]).await?.map(|(_, h)| h.len());
    assert_eq!(history, Some(4));
    assert_eq!(store.counts().await?, (0, 2));
    Ok(())
}

/// Both engines' test of the same name: `fail_bill` fails and refunds
/// a paid bill payment at once, and refuses a refunded one.
pub(crate) async fn a_failed_bill_is_refunded_in_the_same_transaction(store: &dyn Store) -> anyhow::Result<()> {
    store.insert_partner(new_partner(Some(554))).await?;
    let ids = store.insert_bill_batch(vec![bill(554, 0, "F1")?], note("import"), no_progress()).await?;
    let success = BillChange::Success { operator_ref: Some("OP1".into()) };
    store.change_bill(ids[0], success, note("admin")).await?;
    let refunded = store.fail_bill(ids[0], note("upstream"), note("upstream")).await?;
    assert_eq!((refunded.status, refunded.refund_txn_id.as_deref()), (BillStatus::Refunded, Some("1")));
    let again = store.fail_bill(ids[0], note("upstream"), note("upstream")).await;
    assert!(matches!(again, Err(ChangeError::Forbidden(_))), "a refunded payment is final");
    let history = store.bill_with_history(ids[0]).await?.map(|(_, h)| h.len());
    assert_eq!(history, Some(4));
    assert!(matches!(store.fail_bill(999, note("upstream"), note("upstream")).await, Err(ChangeError::NotFound)));
    Ok(())
}

/// Both engines' test of the same name: a transfer or bill payment paid
/// from the wallet is stored with its upstream reference, in the same
/// database transaction (no write of its own before it is sent): the
/// reference returned is the one stored, and names the kind, the id and
/// the installation.
pub(crate) async fn a_payment_from_the_wallet_is_stored_with_its_upstream_reference(
    store: &dyn Store,
) -> anyhow::Result<()> {
    store.insert_partner(new_partner(Some(554))).await?;
    let partner = RegistrationId::new(554);
    let at = Timestamp::from_unix(1_650_000_000);
    store
        .post_journal(crate::domain::ledger::Journal::top_up(partner, Paise::rupees(5_000), "top-up".into(), at))
        .await?;
    let installation = store.installation_id().await?;
    let route = DmtRoute {
        remitter: crate::domain::remitter::MobileNumber::parse("9876543210")?,
        beneficiary_id: 1,
        bank: Bank::Bank2,
        mode: TransferMode::Imps,
    };
    let limit = MonthlyLimit { since: Timestamp::from_unix(0), limit: Paise::rupees(100_000) };
    let debit = DmtDebit { transfer: transfer(554, 0, "T1")?, route, limit, note: note("api"), poll_at: None };
    let transfer = store.create_dmt_debited(debit).await?;
    let bill = store.create_bill_debited(bill(554, 0, "B1")?, note("api"), None).await?;
    for (kind, id, tail) in [
        (TxnKind::Dmt, transfer.record.ackno, transfer.upstream_ref),
        (TxnKind::Bbps, bill.record.txnid, bill.upstream_ref),
    ] {
        let tail = tail.ok_or_else(|| anyhow::anyhow!("no upstream reference for {id}"))?;
        let letter = if kind == TxnKind::Dmt { 'D' } else { 'B' };
        assert!(tail.starts_with(&format!("{letter}{id}{installation}")), "{tail}");
        assert_eq!(store.upstream_ref_of(kind, id).await?, Some(tail));
    }
    Ok(())
}
