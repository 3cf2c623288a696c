//! Paysprint's remitter and beneficiary calls (query and register a
//! remitter; list, register and delete beneficiaries): their bodies and
//! how their answers are read. The ids they issue are what payrail keeps
//! beside its own (docs/UPSTREAM.md, "Remitters and beneficiaries upstream").

use serde::{Deserialize, Serialize};

use super::wire::{known, unplaced, Scalar};
use crate::services::upstream::provider::{Enrolment, ProviderError, RemitterStatus, UpstreamBeneficiary};

/// The `bank3_flag` payrail sends to both remitter calls (Paysprint's
/// query page: the same value in query and registration, `Yes` or `No`).
pub(super) const BANK3_FLAG: &str = "No";

/// `dmt/remitter/queryremitter`: is the remitter registered upstream?
#[derive(Debug, Serialize)]
pub(super) struct QueryRemitterRequest<'a> {
    pub mobile: &'a str,
    pub bank3_flag: &'static str,
}

/// `dmt/remitter/registerremitter`: the documented `{mobile, otp, stateresp, ekyc_id}`.
#[derive(Debug, Serialize)]
pub(super) struct RegisterRemitterRequest<'a> {
    pub mobile: &'a str,
    pub otp: &'a str,
    pub stateresp: &'a str,
    pub ekyc_id: &'a str,
    pub bank3_flag: &'static str,
}

/// `dmt/beneficiary/registerbeneficiary`: the documented fields; `dob` as
/// Paysprint's sample writes it (`YYYY-MM-DD`).
#[derive(Debug, Serialize)]
pub(super) struct RegisterBeneficiaryRequest<'a> {
    pub mobile: &'a str,
    pub benename: &'a str,
    pub bankid: String,
    pub accno: &'a str,
    pub ifsccode: &'a str,
    /// `"1"` when a penny drop verified the account, else `"0"`.
    pub verified: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gst_state: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dob: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pincode: Option<&'a str>,
}

/// `.../deletebeneficiary`: `{mobile, bene_id}`.
#[derive(Debug, Serialize)]
pub(super) struct DeleteBeneficiaryRequest<'a> {
    pub mobile: &'a str,
    pub bene_id: &'a str,
}

/// `.../fetchbeneficiary`: `{mobile}`.
#[derive(Debug, Serialize)]
pub(super) struct FetchBeneficiaryRequest<'a> {
    pub mobile: &'a str,
}

/// Any answer to the remitter and beneficiary calls: the head, an id where
/// the call issues one (at the top level or under `data`), and `data`.
#[derive(Debug, Deserialize)]
pub(super) struct EnrolmentAnswer {
    status: Option<bool>,
    response_code: Scalar,
    message: Option<String>,
    bene_id: Option<Scalar>,
    remitter_id: Option<Scalar>,
    data: Option<serde_json::Value>,
}

/// An id under `data`, where the answer has one by that name.
fn data_id(data: &Option<serde_json::Value>, name: &str) -> Option<String> {
    let value = data.as_ref()?.get(name)?.clone();
    known(serde_json::from_value::<Option<Scalar>>(value).ok().flatten())
}

/// The codes of the remitter and beneficiary pages that refuse the token
/// or the credentials: not an answer about the request.
const AUTH_CODES: [i64; 2] = [10, 11];

impl EnrolmentAnswer {
    fn code(&self) -> Option<i64> {
        self.response_code.number()
    }

    fn refusal(&self, call: &str) -> Result<Enrolment, ProviderError> {
        match self.code() {
            Some(code) if AUTH_CODES.contains(&code) => {
                Err(ProviderError::Unavailable(format!("{call}: {}", unplaced(&self.response_code, &self.message))))
            }
            Some(_) if self.status != Some(true) => Ok(Enrolment::Refused(
                self.message.clone().unwrap_or_else(|| format!("{call}: {}", unplaced(&self.response_code, &None))),
            )),
            _ => Err(ProviderError::Garbage(format!("{call}: {}", unplaced(&self.response_code, &self.message)))),
        }
    }

    /// registerbeneficiary: code 1 with its `bene_id` (top level or under
    /// `data`); 10 and 11 (token, authentication) are no answer; any other
    /// code with `status: false` a refusal with the upstream's message.
    pub(super) fn beneficiary(self) -> Result<Enrolment, ProviderError> {
        if self.code() != Some(1) {
            return self.refusal("registerbeneficiary");
        }
        let id = known(self.bene_id.clone()).or_else(|| data_id(&self.data, "bene_id"));
        id.map(|id| Enrolment::Done(Some(id)))
            .ok_or_else(|| ProviderError::Garbage("registerbeneficiary: response_code 1 without bene_id".into()))
    }

    /// registerremitter: code 1, with the remitter's id where the answer
    /// gives one (`remitter_id` or `data.remitter_id`/`data.id`), else its
    /// mobile, which is how Paysprint's pages key a remitter.
    pub(super) fn remitter(self, mobile: &str) -> Result<Enrolment, ProviderError> {
        if self.code() != Some(1) {
            return self.refusal("registerremitter");
        }
        Ok(Enrolment::Done(Some(self.remitter_id_or(mobile))))
    }

    fn remitter_id_or(&self, mobile: &str) -> String {
        known(self.remitter_id.clone())
            .or_else(|| data_id(&self.data, "remitter_id"))
            .or_else(|| data_id(&self.data, "id"))
            .unwrap_or_else(|| mobile.to_owned())
    }

    /// queryremitter: code 1 registered; code 0 not registered (the
    /// upstream sent its OTP); anything else is no answer.
    pub(super) fn remitter_status(self, mobile: &str) -> Result<RemitterStatus, ProviderError> {
        match self.code() {
            Some(1) => Ok(RemitterStatus::Registered { upstream_id: Some(self.remitter_id_or(mobile)) }),
            Some(0) => Ok(RemitterStatus::NotRegistered),
            _ => {
                Err(ProviderError::Garbage(format!("queryremitter: {}", unplaced(&self.response_code, &self.message))))
            }
        }
    }

    /// deletebeneficiary: code 1 done; otherwise as a registration's refusal.
    pub(super) fn deletion(self) -> Result<Enrolment, ProviderError> {
        match self.code() {
            Some(1) => Ok(Enrolment::Done(None)),
            _ => self.refusal("deletebeneficiary"),
        }
    }

    /// fetchbeneficiary: code 1 with `data` the list (`bene_id`, `accno`,
    /// `ifsc`); any other code (e.g. no beneficiary yet) an empty list, but
    /// 10 and 11 are no answer.
    pub(super) fn beneficiaries(self) -> Result<Vec<UpstreamBeneficiary>, ProviderError> {
        match self.code() {
            Some(1) => {}
            Some(code) if AUTH_CODES.contains(&code) => {
                return Err(ProviderError::Unavailable(format!(
                    "fetchbeneficiary: {}",
                    unplaced(&self.response_code, &self.message)
                )))
            }
            _ => return Ok(Vec::new()),
        }
        let listed: Vec<ListedBeneficiary> = match self.data {
            Some(serde_json::Value::Null) | None => Vec::new(),
            Some(data) => serde_json::from_value(data)
                .map_err(|e| ProviderError::Garbage(format!("fetchbeneficiary: data: {e}")))?,
        };
        Ok(listed
            .into_iter()
            .filter_map(|b| {
                Some(UpstreamBeneficiary { bene_id: known(b.bene_id)?, account: known(b.accno)?, ifsc: known(b.ifsc)? })
            })
            .collect())
    }
}

#[derive(Debug, Deserialize)]
struct ListedBeneficiary {
    bene_id: Option<Scalar>,
    accno: Option<Scalar>,
    ifsc: Option<Scalar>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(value: serde_json::Value) -> EnrolmentAnswer {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_registered_beneficiary_has_its_bene_id_and_a_refusal_its_message() {
        let done = read(json!({"status": true, "response_code": 1, "message": "ok", "data": {"bene_id": 4471}}));
        assert_eq!(done.beneficiary().ok(), Some(Enrolment::Done(Some("4471".into()))));
        let top = read(json!({"status": true, "response_code": "1", "bene_id": "88"}));
        assert_eq!(top.beneficiary().ok(), Some(Enrolment::Done(Some("88".into()))));
        let without = read(json!({"status": true, "response_code": 1, "data": {}}));
        assert!(matches!(without.beneficiary(), Err(ProviderError::Garbage(_))));
        let refused = read(json!({"status": false, "response_code": 2, "message": "Unable to create beneficiary"}));
        assert_eq!(refused.beneficiary().ok(), Some(Enrolment::Refused("Unable to create beneficiary".into())));
        let token = read(json!({"status": false, "response_code": 10, "message": "Invalid JWT"}));
        assert!(matches!(token.beneficiary(), Err(ProviderError::Unavailable(_))));
    }

    #[test]
    fn a_remitter_is_keyed_by_its_id_when_given_else_by_its_mobile() {
        let plain = read(json!({"status": true, "response_code": 1, "data": {"fname": "A", "mobile": "9876543210"}}));
        assert_eq!(plain.remitter("9876543210").ok(), Some(Enrolment::Done(Some("9876543210".into()))));
        let with_id = read(json!({"status": true, "response_code": 1, "data": {"remitter_id": 77}}));
        assert_eq!(with_id.remitter("9876543210").ok(), Some(Enrolment::Done(Some("77".into()))));
        let absent = read(json!({"status": false, "response_code": 0, "stateresp": "x"}));
        assert_eq!(absent.remitter_status("9876543210").ok(), Some(RemitterStatus::NotRegistered));
    }

    #[test]
    fn a_listed_beneficiary_needs_its_id_account_and_ifsc() {
        let list = read(json!({"status": true, "response_code": 1, "data": [
            {"bene_id": "12", "accno": "50100123456782", "ifsc": "HDFC0001234"},
            {"bene_id": "", "accno": "1", "ifsc": "X"}]}));
        let listed = list.beneficiaries().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(listed.len(), 1);
        assert!(listed[0].is("50100123456782", "hdfc0001234"));
        let none = read(json!({"status": false, "response_code": 2, "message": "No beneficiary found"}));
        assert_eq!(none.beneficiaries().ok(), Some(Vec::new()));
    }
}
