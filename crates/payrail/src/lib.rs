//! payrail: a self-hostable engine for Indian domestic money transfer (DMT)
//! and Bharat BillPay (BBPS) transactions, wire-compatible with the AOPay
//! partner API.
//!
//! # Layout
//!
//! Dependencies point one way, top to bottom:
//!
//! - [`domain`]: money, identifiers, India time, transaction states, the
//!   charge arithmetic, the bank list and penny drops, operators' roles and
//!   audit entries. No I/O.
//! - [`store`]: one trait per aggregate (partners, transactions, ledger,
//!   remittance, e-KYC, upstream work, penny drops, operator search,
//!   operators and the audit log), [`store::Store`] being all
//!   of them, and the two engines, SQLite (the embedded default) and
//!   PostgreSQL, each a folder with one file per aggregate.
//! - [`services`]: the work: partners and their sealed secrets, fees,
//!   wallets, remittance (with the remitter e-KYC, `ekyc`), penny drops and
//!   bill payments, imports, the demo data set, operator search and
//!   timelines (`search`), operator accounts and their tokens (`operators`); the
//!   upstream (`services::upstream`: the `provider` trait, the `sandbox`,
//!   the `paysprint` connector, and `sync`, which keeps transactions in step
//!   with it), partner callbacks
//!   (`callbacks`, signed with `callback_secrets`) and the background `workers`.
//! - [`http`]: the edge: wire format, authentication, rate limits, routes;
//!   the operator API's tokens and roles in `admin_auth` (one table).
//! - [`cli`]: the `payrail` binary's commands (server and operator tools).
//!
//! The wire contract is `docs/WIRE.md`; the found bodies are the types of
//! the `payrail-client` crate, so client and server cannot drift apart.

pub mod cli;
pub mod domain;
pub mod http;
pub mod observe;
pub mod services;
pub mod store;
