//! Black-box tests of payrail through its real interfaces: HTTP and the
//! `payrail` binary. Each behaviour runs on SQLite and, when
//! PAYRAIL_TEST_DATABASE_URL is set, on PostgreSQL (see `both_engines!`).

mod helpers;

mod admin;
mod auth;
mod cli;
mod isolation;
mod seeds;
mod wire_rules;
