//! How the fake Paysprint answers each call: the scripted outcome, or
//! what the real one would say by default.

use super::*;

impl MockState {
    /// The `Token` verifies (key, partner id, clock, unused `reqid`) and the
    /// `Authorisedkey` matches.
    pub(super) fn credentials_hold(&self, headers: &HeaderMap) -> bool {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let Some(token) = text("Token") else { return false };
        let key = [TokenKey::new(self.jwt_key.as_bytes())];
        let Ok(claims) = verify_token(token, &key, Timestamp::now(), MAX_SKEW_SECS) else { return false };
        let key_holds = self.authorised_key.is_empty() || text("Authorisedkey") == Some(self.authorised_key.as_str());
        // A replayed reqid is refused; a fresh one is spent only by a request that passes.
        key_holds && claims.partner_id == self.partner_id && lock(&self.reqids).insert(claims.reqid)
    }

    /// An unscripted remitter or beneficiary call, answered from what the fake holds.
    pub(super) fn enrol(&self, endpoint: Endpoint, body: &Value) -> Value {
        let field = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
        let mobile = field("mobile");
        let remitter = |message: &str| {
            json!({"status": true, "response_code": 1, "message": message,
                   "data": {"fname": "", "lname": "", "mobile": mobile, "status": 1, "bank1_limit": 25000,
                            "bank2_limit": 25000, "bank3_limit": 25000, "bank3_status": "No"}})
        };
        match endpoint {
            Endpoint::QueryRemitter if lock(&self.remitters).contains(&mobile) => {
                remitter("Remitter details fetch successfully.")
            }
            Endpoint::QueryRemitter => json!({"status": false, "response_code": 0, "stateresp": "81236",
                                              "message": "Remitter not registered OTP sent for new registration."}),
            Endpoint::RegisterRemitter => {
                lock(&self.remitters).insert(mobile.clone());
                remitter("Remitter account details fetched.")
            }
            Endpoint::RegisterBeneficiary => {
                let bene_id = self.next_bene_id.fetch_add(1, Ordering::SeqCst).to_string();
                let held = HeldBeneficiary {
                    bene_id: bene_id.clone(),
                    mobile,
                    accno: field("accno"),
                    ifsc: field("ifsccode"),
                };
                lock(&self.beneficiaries).push(held);
                json!({"status": true, "response_code": 1, "message": "Receiver account successfully added.",
                       "data": {"bene_id": bene_id}})
            }
            Endpoint::DeleteBeneficiary => {
                let bene_id = field("bene_id");
                let mut held = lock(&self.beneficiaries);
                let before = held.len();
                held.retain(|b| !(b.bene_id == bene_id && b.mobile == mobile));
                if held.len() < before {
                    json!({"status": true, "response_code": 1, "message": "Beneficiary record deleted successfully."})
                } else {
                    json!({"status": false, "response_code": 2, "message": "Beneficiary not found."})
                }
            }
            _ => {
                let listed: Vec<Value> = lock(&self.beneficiaries)
                    .iter()
                    .filter(|b| b.mobile == mobile)
                    .map(|b| {
                        json!({"bene_id": b.bene_id, "bankid": "309", "bankname": "", "name": "",
                                    "accno": b.accno, "ifsc": b.ifsc, "verified": "0", "banktype": "",
                                    "paytm": false})
                    })
                    .collect();
                if listed.is_empty() {
                    json!({"status": false, "response_code": 0, "message": "No beneficiary found."})
                } else {
                    json!({"status": true, "response_code": 1, "message": "Beneficiary fetched.", "data": listed})
                }
            }
        }
    }

    /// The scripted reply for this call, or `None` for the default.
    pub(super) fn reply_for(&self, endpoint: Endpoint, reference: &str) -> Option<Reply> {
        let mut scripts = lock(&self.scripts);
        // A fetch (named by its account) takes no queued script: those are
        // for the payments a test makes, and a payment fetches its bill first.
        if !reference.is_empty() && !scripts.contains_key(reference) {
            let queued = if endpoint == Endpoint::FetchBill { None } else { lock(&self.queued).pop_front() };
            let unnamed = queued.or_else(|| lock(&self.fallback).clone());
            let script = unnamed?;
            scripts.insert(reference.to_owned(), Scripted { script, statuses_served: 0, refunds_served: 0 });
        }
        let scripted = scripts.get_mut(reference)?;
        match endpoint {
            Endpoint::Transact
            | Endpoint::PayBill
            | Endpoint::Ekyc
            | Endpoint::BeneNameVerify
            | Endpoint::QueryRemitter
            | Endpoint::RegisterRemitter
            | Endpoint::RegisterBeneficiary
            | Endpoint::DeleteBeneficiary
            | Endpoint::FetchBeneficiary => scripted.script.submit.clone(),
            Endpoint::FetchBill => scripted.script.fetch.clone(),
            Endpoint::RefundOtp => scripted.script.refund_otp.clone(),
            Endpoint::Refund => {
                let refunds = &scripted.script.refunds;
                let next = refunds.get(scripted.refunds_served).or(refunds.last()).cloned();
                scripted.refunds_served += 1;
                next
            }
            Endpoint::QueryTransact | Endpoint::BillStatus => {
                let statuses = &scripted.script.statuses;
                let next = statuses.get(scripted.statuses_served).or(statuses.last()).cloned();
                scripted.statuses_served += 1;
                next
            }
        }
    }

    pub(super) async fn answer(
        &self,
        endpoint: Endpoint,
        reference: &str,
        body: &Value,
        reply: Option<Reply>,
    ) -> Response {
        let reply = match reply {
            Some(Reply::Hang(pause)) => {
                tokio::time::sleep(pause).await;
                None
            }
            other => other,
        };
        match reply {
            Some(Reply::Garbage) => ([(header::CONTENT_TYPE, "text/html")], "<html>oops").into_response(),
            Some(Reply::Http(code)) => {
                let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                json_response(status, &json!({"status": false, "response_code": 0, "message": "upstream error"}))
            }
            Some(Reply::HttpBody(code, body)) => {
                json_response(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), &body)
            }
            Some(Reply::Huge { content_length }) => huge_response(content_length, self.huge_sent.clone()),
            Some(Reply::Raw(body)) => json_response(StatusCode::OK, &body),
            Some(Reply::Hang(_)) | None if endpoint == Endpoint::Refund => self.default_refund(reference, body),
            Some(Reply::Answer(outcome)) => {
                let status = StatusCode::from_u16(outcome.http).unwrap_or(StatusCode::OK);
                json_response(status, &self.render(endpoint, reference, &outcome))
            }
            Some(Reply::Hang(_)) | None => {
                json_response(StatusCode::OK, &self.render(endpoint, reference, &default_outcome(endpoint, reference)))
            }
        }
    }

    /// Unscripted refund claim, as Paysprint documents it: the fake's ackno
    /// and [`MOCK_REFUND_OTP`] refund a transfer once (code 1); then "not
    /// found or already refunded" (2); a wrong OTP is code 3.
    pub(super) fn default_refund(&self, reference: &str, body: &Value) -> Response {
        let ackno_holds = self.ackno(reference).to_string() == scalar_text(&body["ackno"]);
        let mut refunded = lock(&self.refunded);
        let (code, message) = if !ackno_holds || refunded.contains(reference) {
            (2, "Transaction not found or already refunded.")
        } else if scalar_text(&body["otp"]) != MOCK_REFUND_OTP {
            (3, "Invalid OTP")
        } else {
            refunded.insert(reference.to_owned());
            (1, "Transaction Successfully Refunded")
        };
        json_response(StatusCode::OK, &json!({"status": code == 1, "response_code": code, "message": message}))
    }

    /// The fake's ackno of a transfer: one per reference, as Paysprint's.
    pub(super) fn ackno(&self, reference: &str) -> i64 {
        *lock(&self.acknos)
            .entry(reference.to_owned())
            .or_insert_with(|| self.next_ackno.fetch_add(1, Ordering::SeqCst))
    }

    /// An outcome in the endpoint's own shape.
    pub(super) fn render(&self, endpoint: Endpoint, reference: &str, o: &Outcome) -> Value {
        let ackno = match endpoint {
            Endpoint::Transact | Endpoint::QueryTransact => self.ackno(reference),
            _ => self.next_ackno.fetch_add(1, Ordering::SeqCst),
        };
        let found = o.response_code == 1;
        let head = json!({"status": o.status, "response_code": o.response_code, "message": o.message});
        let extra = match endpoint {
            Endpoint::Transact => {
                json!({"txn_status": o.code, "utr": o.reference, "ackno": ackno, "referenceid": reference})
            }
            Endpoint::PayBill => json!({"operatorid": o.reference, "ackno": ackno}),
            Endpoint::QueryTransact if found => {
                let refunded = if lock(&self.refunded).contains(reference) { "1" } else { "0" };
                json!({"data": {"txn_status": o.code, "utr": o.reference, "refid": reference, "ackno": ackno,
                                "refunded": refunded}})
            }
            Endpoint::BillStatus if found => {
                let refunded = if o.code == Some(json!("0")) { "1" } else { "0" };
                json!({"data": {"status": o.code, "operatorid": o.reference, "refid": reference,
                                "refunded": refunded}})
            }
            Endpoint::FetchBill if found => fixed_bill(reference),
            Endpoint::Ekyc if found => json!({"data": {"ekyc_id": format!("EK{ackno}")}}),
            // A penny drop's holder: the outcome's `reference`.
            Endpoint::BeneNameVerify if found => json!({"data": {"benename": o.reference, "bankrefno": ackno}}),
            _ => json!({}),
        };
        let mut body = merge(head, extra);
        if o.extras.is_object() {
            match body.get_mut("data").filter(|d| d.is_object()) {
                Some(data) => merge_into(data, o.extras.clone()),
                None => merge_into(&mut body, o.extras.clone()),
            }
        }
        body
    }
}

/// Unscripted: a transfer goes to the bank and stays in process; a bill
/// stays pending; a fetch finds [`FIXED_BILL`] unless the account is [`NO_BILL_ACCOUNT`].
pub(super) fn default_outcome(endpoint: Endpoint, reference: &str) -> Outcome {
    match endpoint {
        Endpoint::Transact => Outcome::dmt(3, None),
        Endpoint::QueryTransact => Outcome::dmt(2, None),
        Endpoint::PayBill => Outcome::answer(2, true, "Transaction Pending"),
        Endpoint::BillStatus => Outcome::bill(2, None),
        Endpoint::FetchBill if reference == NO_BILL_ACCOUNT => Outcome::answer(0, false, "No bill found"),
        Endpoint::FetchBill => Outcome::answer(1, true, "Bill fetched"),
        Endpoint::Ekyc => Outcome::answer(1, true, "e-KYC done"),
        Endpoint::BeneNameVerify => Outcome::holder(MOCK_HOLDER),
        Endpoint::RefundOtp => Outcome::answer(1, true, "Refund Otp Successfully Sent."),
        // Answered by `MockState::default_refund`.
        Endpoint::Refund => Outcome::answer(2, false, "Transaction not found or already refunded."),
        _ => Outcome::answer(1, true, "done"),
    }
}

/// The holder an unscripted penny drop finds.
pub const MOCK_HOLDER: &str = "ROHIT KUMAR";

/// Paysprint's fetchbill answer.
pub(super) fn fixed_bill(account: &str) -> Value {
    let (name, amount, due, date) = FIXED_BILL;
    json!({"name": name, "amount": amount, "duedate": due,
           "bill_fetch": {"billAmount": amount, "billnetamount": amount, "billdate": date, "dueDate": due,
                          "acceptPayment": true, "acceptPartPay": account != WHOLE_BILL_ACCOUNT,
                          "cellNumber": account, "userName": name.to_uppercase()}})
}

/// A JSON string or number as text.
pub(super) fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

pub(super) fn merge(mut head: Value, extra: Value) -> Value {
    if let (Some(head), Value::Object(extra)) = (head.as_object_mut(), extra) {
        head.extend(extra);
    }
    head
}

/// A [`Reply::Huge`] answer, counting into `sent` what is handed over.
pub(super) fn huge_response(content_length: bool, sent: Arc<AtomicU64>) -> Response {
    const CHUNK: usize = 64 * 1024;
    let head = Bytes::from_static(br#"{"status":true,"#);
    let chunks = futures_util::stream::unfold(0u64, move |offset| {
        let sent = sent.clone();
        let head = head.clone();
        async move {
            if offset >= HUGE_ANSWER_BYTES {
                return None;
            }
            let chunk = if offset == 0 {
                head
            } else {
                let left = (HUGE_ANSWER_BYTES - offset).min(CHUNK as u64) as usize;
                Bytes::from(vec![b' '; left])
            };
            sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            let next = offset + chunk.len() as u64;
            Some((Ok::<_, std::io::Error>(chunk), next))
        }
    });
    let mut response = Response::new(axum::body::Body::from_stream(chunks));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    if content_length {
        headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(HUGE_ANSWER_BYTES));
    }
    response
}

pub(super) fn merge_into(target: &mut Value, extra: Value) {
    if target.is_null() {
        *target = json!({});
    }
    if let (Some(target), Value::Object(extra)) = (target.as_object_mut(), extra) {
        target.extend(extra);
    }
}

pub(super) fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}
