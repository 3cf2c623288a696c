//! The work behind the API and the CLI: sealing secrets, managing partners,
//! fees, wallets, remittance and bill payments, creating and moving
//! transactions, imports and the demo data set. Services talk to the
//! [`crate::store::Store`] trait (and to a [`notifier::Notifier`] and a
//! [`upstream::provider::Provider`]) and know nothing of HTTP.

pub mod billers;
pub mod bills;
pub mod callback_secrets;
pub mod callbacks;
pub mod chain;
pub mod demo;
pub mod demo_live;
pub mod ekyc;
pub mod fees;
pub mod flights;
pub mod held;
pub mod import;
pub mod ledger;
pub mod notifier;
pub mod operators;
pub mod partners;
pub mod penny_drops;
pub mod reconcile;
pub mod remittance;
pub mod search;
pub mod secrets;
pub mod settlement;
pub mod transactions;
pub mod upstream;
pub mod verify;
pub mod workers;
