//! The wallet ledger: double-entry journals over named accounts.
//!
//! Every movement of money is one [`Journal`] whose postings sum to zero.
//! A partner's wallet is the account `wallet:<n>`; its balance is the sum of
//! its postings and can never go below zero. The journals for a transaction
//! are built here, from the record the store holds, so that a debit and its
//! refund are exact mirror images:
//!
//! | journal | postings |
//! |---|---|
//! | top-up of X | wallet +X, funding −X |
//! | withdrawal of X | wallet −X, funding +X |
//! | DMT debit (amount A, charge C) | wallet −(A+C), provider settlement +(A+share), GST payable +gst, TDS payable +tds, commission payable +net commission, fee income +the rest |
//! | bill debit (amount A, commission K) | wallet −A, provider settlement +A, fee income −K, TDS payable +tds, commission payable +(K−tds) |
//! | penny drop fee F | wallet −F, GST payable +gst, fee income +the rest |
//! | refund | the debit's postings negated |

use super::{BillPayment, DmtTransfer, Paise, RegistrationId, Timestamp, TxnKind};

/// A ledger account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Account {
    /// A partner's prepaid wallet.
    Wallet(RegistrationId),
    /// Money partners sent to (or took back from) payrail's bank account.
    Funding,
    /// Owed to the upstream provider for transfers and bills it pays out.
    ProviderSettlement,
    /// payrail's own income (negative for commission it pays out on bills).
    FeeIncome,
    /// GST collected inside customer charges.
    GstPayable,
    /// TDS withheld from partner commission (Section 194H).
    TdsPayable,
    /// Net commission owed to partners.
    CommissionPayable,
}

/// Why a stored account name is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ledger account {0:?}")]
pub struct UnknownAccount(pub String);

impl Account {
    /// The account's name in the store and in statements.
    pub fn name(self) -> String {
        match self {
            Account::Wallet(partner) => format!("wallet:{}", partner.number()),
            other => other.fixed_name().to_owned(),
        }
    }

    fn fixed_name(self) -> &'static str {
        match self {
            Account::Wallet(_) => "wallet",
            Account::Funding => "funding",
            Account::ProviderSettlement => "provider_settlement",
            Account::FeeIncome => "fee_income",
            Account::GstPayable => "gst_payable",
            Account::TdsPayable => "tds_payable",
            Account::CommissionPayable => "commission_payable",
        }
    }

    /// Reads a stored account name.
    pub fn parse(name: &str) -> Result<Account, UnknownAccount> {
        if let Some(number) = name.strip_prefix("wallet:") {
            return number
                .parse()
                .map(|n| Account::Wallet(RegistrationId::new(n)))
                .map_err(|_| UnknownAccount(name.to_owned()));
        }
        [
            Account::Funding,
            Account::ProviderSettlement,
            Account::FeeIncome,
            Account::GstPayable,
            Account::TdsPayable,
            Account::CommissionPayable,
        ]
        .into_iter()
        .find(|a| a.fixed_name() == name)
        .ok_or_else(|| UnknownAccount(name.to_owned()))
    }
}

/// Why a journal was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// An operator credited a wallet.
    TopUp,
    /// An operator took money out of a wallet.
    Withdrawal,
    /// A transaction was paid for from the wallet.
    Debit,
    /// A failed transaction was paid back to the wallet.
    Refund,
    /// A month's net commission paid into the wallet.
    Settlement,
}

impl Purpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::TopUp => "topup",
            Purpose::Withdrawal => "withdrawal",
            Purpose::Debit => "debit",
            Purpose::Refund => "refund",
            Purpose::Settlement => "settlement",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Purpose> {
        [Purpose::TopUp, Purpose::Withdrawal, Purpose::Debit, Purpose::Refund, Purpose::Settlement]
            .into_iter()
            .find(|p| p.as_str() == text)
    }
}

/// One line of a journal: a signed amount on an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posting {
    /// The account the amount is posted to.
    pub account: Account,
    /// How much; positive adds to the account.
    pub amount: Paise,
}

/// A balanced set of postings, written all together or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    /// The partner whose wallet it moves.
    pub partner: RegistrationId,
    /// What the money moved for: a top-up, a withdrawal, a debit or a refund.
    pub purpose: Purpose,
    /// The transaction it pays for or refunds, if any. A transaction has at
    /// most one debit and one refund: the store enforces it.
    pub txn: Option<(TxnKind, i64)>,
    /// Free text for statements: the operator's note, the reference.
    pub memo: String,
    /// When it was written.
    pub at: Timestamp,
    /// The lines; they sum to zero.
    pub postings: Vec<Posting>,
}

impl Journal {
    fn new(
        partner: RegistrationId,
        purpose: Purpose,
        txn: Option<(TxnKind, i64)>,
        memo: String,
        at: Timestamp,
    ) -> Self {
        Journal { partner, purpose, txn, memo, at, postings: Vec::new() }
    }

    fn post(mut self, account: Account, amount: Paise) -> Self {
        if amount != Paise::ZERO {
            self.postings.push(Posting { account, amount });
        }
        self
    }

    /// An operator's top-up of `amount` into the partner's wallet.
    pub fn top_up(partner: RegistrationId, amount: Paise, memo: String, at: Timestamp) -> Self {
        Journal::new(partner, Purpose::TopUp, None, memo, at)
            .post(Account::Wallet(partner), amount)
            .post(Account::Funding, Paise::ZERO - amount)
    }

    /// A month's net commission `amount` paid from commission payable into
    /// the partner's wallet; `memo` names the month (a store index allows
    /// one settlement journal per partner and memo).
    pub fn commission_settlement(partner: RegistrationId, amount: Paise, memo: String, at: Timestamp) -> Self {
        Journal::new(partner, Purpose::Settlement, None, memo, at)
            .post(Account::Wallet(partner), amount)
            .post(Account::CommissionPayable, Paise::ZERO - amount)
    }

    /// An operator's withdrawal of `amount` from the partner's wallet.
    pub fn withdrawal(partner: RegistrationId, amount: Paise, memo: String, at: Timestamp) -> Self {
        Journal::new(partner, Purpose::Withdrawal, None, memo, at)
            .post(Account::Wallet(partner), Paise::ZERO - amount)
            .post(Account::Funding, amount)
    }

    /// What a transfer costs the partner's wallet, spread over the accounts.
    pub fn dmt_debit(transfer: &DmtTransfer, at: Timestamp) -> Self {
        let c = &transfer.charges;
        let total = transfer.amount + c.customer_charge;
        let to_provider = transfer.amount + c.provider_share;
        let rest = c.customer_charge - c.provider_share - c.gst - c.tds - c.net_commission;
        Journal::new(
            transfer.partner,
            Purpose::Debit,
            Some((TxnKind::Dmt, transfer.ackno)),
            memo(&transfer.reference),
            at,
        )
        .post(Account::Wallet(transfer.partner), Paise::ZERO - total)
        .post(Account::ProviderSettlement, to_provider)
        .post(Account::GstPayable, c.gst)
        .post(Account::TdsPayable, c.tds)
        .post(Account::CommissionPayable, c.net_commission)
        .post(Account::FeeIncome, rest)
    }

    /// What a bill payment costs the partner's wallet.
    pub fn bill_debit(payment: &BillPayment, at: Timestamp) -> Self {
        Journal::new(
            payment.partner,
            Purpose::Debit,
            Some((TxnKind::Bbps, payment.txnid)),
            memo(&payment.reference),
            at,
        )
        .post(Account::Wallet(payment.partner), Paise::ZERO - payment.amount)
        .post(Account::ProviderSettlement, payment.amount)
        .post(Account::FeeIncome, Paise::ZERO - payment.commission)
        .post(Account::TdsPayable, payment.tds)
        .post(Account::CommissionPayable, payment.commission - payment.tds)
    }

    /// A penny drop's fee of `fee` (GST inside): wallet −fee, GST payable
    /// +GST, fee income +the rest. No transaction id: the penny drop's row
    /// names its journals.
    pub fn penny_drop_fee(partner: RegistrationId, fee: Paise, memo: String, at: Timestamp) -> Self {
        let gst = super::charges::gst_inside(fee);
        Journal::new(partner, Purpose::Debit, None, memo, at)
            .post(Account::Wallet(partner), Paise::ZERO - fee)
            .post(Account::GstPayable, gst)
            .post(Account::FeeIncome, fee - gst)
    }

    /// The same journal for the transaction's id once the store has given it one.
    pub fn with_txn_id(mut self, id: i64) -> Self {
        self.txn = self.txn.map(|(kind, _)| (kind, id));
        self
    }

    /// The refund of `debit`: the same postings negated.
    pub fn refund_of(debit: &Journal, at: Timestamp) -> Self {
        let mut refund = Journal::new(debit.partner, Purpose::Refund, debit.txn, debit.memo.clone(), at);
        refund.postings =
            debit.postings.iter().map(|p| Posting { account: p.account, amount: Paise::ZERO - p.amount }).collect();
        refund
    }

    /// What the journal does to the partner's wallet.
    pub fn wallet_change(&self) -> Paise {
        self.postings
            .iter()
            .filter(|p| p.account == Account::Wallet(self.partner))
            .fold(Paise::ZERO, |sum, p| sum + p.amount)
    }

    /// Whether the postings sum to zero.
    pub fn is_balanced(&self) -> bool {
        self.postings.iter().fold(Paise::ZERO, |sum, p| sum + p.amount) == Paise::ZERO
    }
}

fn memo(reference: &super::ReferenceId) -> String {
    format!("ref {}", reference.as_str())
}

/// A wallet before and after a journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalletMove {
    /// The balance before.
    pub opening: Paise,
    /// The balance after.
    pub closing: Paise,
}

/// One wallet movement in a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLine {
    /// The journal's id.
    pub journal_id: i64,
    /// When the journal was written.
    pub at: Timestamp,
    /// What the money moved for.
    pub purpose: Purpose,
    /// The transaction, if any.
    pub txn: Option<(TxnKind, i64)>,
    /// The journal's memo.
    pub memo: String,
    /// The change to the wallet.
    pub amount: Paise,
}

/// A wallet's movements over a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The balance when the period began.
    pub opening: Paise,
    /// The movements, oldest first.
    pub lines: Vec<StatementLine>,
}

impl Statement {
    /// The balance when the period ended.
    pub fn closing(&self) -> Paise {
        self.lines.iter().fold(self.opening, |sum, l| sum + l.amount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DmtCharges, DmtStatus, ReferenceId};

    fn transfer(amount: Paise, charge: Paise, share: Paise) -> DmtTransfer {
        let at = Timestamp::from_unix(1_700_000_000);
        DmtTransfer {
            ackno: 7,
            partner: RegistrationId::new(1001),
            reference: ReferenceId::parse("R1").unwrap_or_else(|e| panic!("{e}")),
            amount,
            account: "123456789".into(),
            utr: None,
            status: DmtStatus::InProcess,
            charges: DmtCharges::compute(charge, share, at),
            created_at: at,
            refund_txn_id: None,
            refunded_at: None,
            upstream_ackno: None,
        }
    }

    #[test]
    fn a_dmt_debit_balances_and_takes_amount_plus_charge_from_the_wallet() {
        for (amount, charge, share) in [(10_000, 1_000, 350), (500_000, 5_000, 1_750), (100, 1_000, 0), (1, 1, 1)] {
            let journal = Journal::dmt_debit(
                &transfer(Paise::new(amount), Paise::new(charge), Paise::new(share)),
                Timestamp::from_unix(0),
            );
            assert!(journal.is_balanced(), "{journal:?}");
            assert_eq!(journal.wallet_change(), Paise::new(-(amount + charge)));
            let refund = Journal::refund_of(&journal, Timestamp::from_unix(1));
            assert!(refund.is_balanced());
            assert_eq!(refund.wallet_change(), Paise::new(amount + charge));
            assert_eq!(refund.purpose, Purpose::Refund);
        }
    }

    #[test]
    fn top_up_and_withdrawal_mirror_each_other() {
        let p = RegistrationId::new(5);
        let up = Journal::top_up(p, Paise::rupees(100), "x".into(), Timestamp::from_unix(0));
        let down = Journal::withdrawal(p, Paise::rupees(100), "x".into(), Timestamp::from_unix(0));
        assert!(up.is_balanced() && down.is_balanced());
        assert_eq!(up.wallet_change(), Paise::rupees(100));
        assert_eq!(down.wallet_change(), Paise::rupees(-100));
    }

    #[test]
    fn account_names_round_trip() {
        for account in [Account::Wallet(RegistrationId::new(554)), Account::Funding, Account::CommissionPayable] {
            assert_eq!(Account::parse(&account.name()), Ok(account));
        }
        assert!(Account::parse("wallet:x").is_err());
        assert!(Account::parse("cash").is_err());
    }
}
