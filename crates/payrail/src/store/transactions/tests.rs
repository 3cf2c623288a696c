//! Unit tests of the shared transaction SQL and column lists.

use super::*;

/// Every `$n` of `sql`, in the order they first appear.
fn first_appearances(sql: &str) -> Vec<usize> {
    let mut seen = Vec::new();
    for (i, _) in sql.match_indices('$') {
        let digits: String = sql[i + 1..].chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse::<usize>() {
            if !seen.contains(&n) {
                seen.push(n);
            }
        }
    }
    seen
}

fn shared_sql() -> Vec<&'static str> {
    vec![
        sql::HISTORY,
        sql::INSERT_HISTORY,
        sql::INSERT_REFUND,
        sql::ROUTE_BY_ACKNO,
        sql::INSERT_ROUTE,
        sql::STORE_NUMBER_SECRET,
        DmtTransfer::BY_ID,
        DmtTransfer::REFERENCE_TAKEN,
        DmtTransfer::ID_TAKEN,
        DmtTransfer::UPDATE,
        BillPayment::BY_ID,
        BillPayment::REFERENCE_TAKEN,
        BillPayment::ID_TAKEN,
        BillPayment::UPDATE,
    ]
}

#[test]
fn shared_sql_names_its_parameters_in_order() {
    for sql in shared_sql() {
        let seen = first_appearances(sql);
        let expected: Vec<usize> = (1..=seen.len()).collect();
        assert_eq!(seen, expected, "{sql}");
    }
}

#[test]
fn the_generated_statements_read_as_written_by_hand() {
    assert_eq!(
        BillPayment::UPDATE,
        "UPDATE bill_payments SET status = $1, operator_ref = $2, refund_txn_id = $3, refunded_at = $4, \
         updated_at = $5 WHERE txnid = $6"
    );
    assert_eq!(DmtTransfer::ID_TAKEN, "SELECT EXISTS (SELECT 1 FROM dmt_transfers WHERE ackno = $1)");
    assert!(DmtTransfer::FOR_UPDATE.starts_with("SELECT ackno, partner_id, reference_id, amount,"));
    assert!(DmtTransfer::FOR_UPDATE.ends_with(" FROM dmt_transfers WHERE ackno = $1 FOR UPDATE"));
}

#[test]
fn a_column_list_and_its_positions_agree() {
    let dmt: Vec<&str> = dmt_columns!().split(", ").collect();
    assert_eq!(dmt.len(), dmt_column::WIDTH);
    assert_eq!(dmt[dmt_column::status], "status");
    assert_eq!(dmt[dmt_column::refunded_at], "refunded_at");
    let bills: Vec<&str> = bill_columns!().split(", ").collect();
    assert_eq!(bills.len(), bill_column::WIDTH);
    assert_eq!(bills[bill_column::operator_ref], "operator_ref");
    assert_eq!(bill_columns!("t").split(", ").nth(bill_column::tds), Some("t.tds"));
}

#[test]
fn a_refund_without_an_id_is_left_to_the_store_and_one_with_an_id_is_not() {
    let mut wanted = DmtChange::Refund { refund_txn_id: None };
    assert!(DmtTransfer::missing_refund_id(&mut wanted).is_some());
    let mut given = BillChange::Refund { refund_txn_id: Some("R1".into()) };
    assert!(BillPayment::missing_refund_id(&mut given).is_none());
    assert!(BillPayment::missing_refund_id(&mut BillChange::Fail).is_none());
}
