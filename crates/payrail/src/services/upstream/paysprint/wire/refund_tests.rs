//! The refund calls' answers, read by the code table.

use super::*;

fn answer(value: serde_json::Value) -> RefundAnswer {
    serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn only_code_1_with_status_true_is_a_refund() {
    let claim = |v| answer(v).claim_outcome(200);
    let refunded = serde_json::json!({"status": true, "response_code": 1, "message": "ok"});
    assert_eq!(claim(refunded.clone()), RefundClaimOutcome::Refunded);
    assert!(
        matches!(answer(refunded).claim_outcome(401), RefundClaimOutcome::Refused { .. }),
        "a code with an HTTP status the page does not give it is undocumented"
    );
    for not in [
        serde_json::json!({"status": false, "response_code": 1, "message": "?"}),
        serde_json::json!({"response_code": "1", "message": "no status"}),
        serde_json::json!({"status": false, "response_code": 3, "message": "Invalid OTP"}),
        serde_json::json!({"status": false, "response_code": 13, "message": "DMT Bank4 service is down."}),
        serde_json::json!({"status": true, "response_code": 77, "message": "?"}),
    ] {
        assert!(matches!(claim(not.clone()), RefundClaimOutcome::Refused { .. }), "{not}");
    }
    // "Not found or already refunded", "no refund found", "not found":
    // an earlier claim may have gone through; the status query decides.
    for code in ["2", "4", "5"] {
        let maybe = serde_json::json!({"status": false, "response_code": code, "message": "?"});
        assert!(matches!(claim(maybe), RefundClaimOutcome::NotFoundOrRefunded { .. }), "{code}");
    }
}

#[test]
fn refund_otp_codes_map_as_the_code_table_says() {
    let otp = |code: i64, http: u16| {
        answer(serde_json::json!({"status": code == 1, "response_code": code})).otp_outcome(http)
    };
    assert_eq!(otp(1, 200).ok(), Some(RefundOtpOutcome::Sent));
    assert!(matches!(otp(2, 200), Ok(RefundOtpOutcome::NotRefundable { .. })));
    assert!(matches!(otp(3, 412), Ok(RefundOtpOutcome::NotRefundable { .. })));
    assert!(matches!(otp(4, 406), Ok(RefundOtpOutcome::Refused { .. })));
    assert!(matches!(otp(5, 412), Ok(RefundOtpOutcome::Refused { .. })));
    for (code, http) in [(6, 401), (7, 401), (0, 200), (99, 200), (4, 200), (1, 401)] {
        assert!(otp(code, http).is_err(), "{code} as HTTP {http}");
    }
}

#[test]
fn a_query_says_refunded_only_under_code_1_in_either_shape() {
    let facts = |v: serde_json::Value| {
        let parsed: TransactQueryAnswer = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}"));
        parsed.refund_facts(&v)
    };
    let nested = serde_json::json!({"response_code": 1, "data": {"txn_status": 0, "ackno": 77, "refunded": "1"}});
    assert_eq!(facts(nested), (Some("77".into()), true));
    let top = serde_json::json!({"response_code": 1, "txn_status": 0, "ackno": "78", "refunded": 0});
    assert_eq!(facts(top), (Some("78".into()), false));
    let unknown = serde_json::json!({"response_code": 2, "data": {"ackno": 79, "refunded": 1}});
    assert_eq!(facts(unknown), (None, false));
}
