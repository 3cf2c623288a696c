//! The work behind the API and the CLI: sealing secrets, managing partners,
//! fees, creating and moving transactions, imports and the demo data set.
//! Services talk to the [`crate::store::Store`] trait and know nothing of HTTP.

pub mod demo;
pub mod fees;
pub mod import;
pub mod partners;
pub mod secrets;
pub mod transactions;
