//! Everything payrail does with the upstream, the bank-side API that
//! settles transfers and bill payments (the sandbox, or Paysprint):
//! the [`provider::Provider`] trait that speaks to it, its two
//! implementations ([`sandbox`], [`paysprint`]), and [`sync`], which hands
//! transactions to it, polls it and applies what it answers.

pub mod paysprint;
pub mod provider;
pub mod sandbox;
pub mod sync;
