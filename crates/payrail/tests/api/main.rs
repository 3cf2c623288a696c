//! Black-box tests of payrail through its real interfaces: HTTP and the
//! `payrail` binary. Each behaviour runs on SQLite and, when
//! PAYRAIL_TEST_DATABASE_URL is set, on PostgreSQL (see `both_engines!`).

mod helpers;
mod journey;
mod mock_upstream;

mod admin;
mod auth;
mod bbps_lifecycle;
mod cli;
mod cli_secrets;
mod cli_status;
mod dmt_lifecycle;
mod isolation;
mod master_key;
mod partner_access;
mod paysprint;
mod postgres_tls;
mod seeds;
mod upstream_paysprint;
mod upstream_sandbox;
mod wallet;
mod wire_rules;
