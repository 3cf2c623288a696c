//! Everything payrail does with the upstream.
//!
//! Here "the upstream" always means one thing: the outside service that
//! actually moves the money for transfers and bill payments (Paysprint, or
//! the sandbox standing in for it). payrail speaks to it through a
//! [`provider::Provider`] (two implementations: [`sandbox`], [`paysprint`]);
//! [`sync::Upstream`] is payrail's side of it, which hands transactions over,
//! polls, takes callbacks and applies what the upstream answers.

pub mod health;
pub mod paysprint;
pub mod provider;
pub mod sandbox;
pub mod sync;
