//! Black-box tests of payrail through its real interfaces: HTTP and the
//! `payrail` binary. Each behaviour runs on SQLite and, when
//! PAYRAIL_TEST_DATABASE_URL is set, on PostgreSQL (see `both_engines!`).

// Test code panics on what it did not expect, with a message. clippy.toml's
// allow-unwrap/expect-in-tests covers #[test] functions only, not the
// helpers every test of this binary shares, so the binary allows them whole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod journey;
mod logs;
mod mock_upstream;

mod admin;
mod admin_partners;
mod auth;
mod backups;
mod bbps_lifecycle;
mod bbps_pages;
mod beneficiaries;
mod callback_secret;
mod change_feed;
mod cli;
mod cli_json;
mod cli_secrets;
mod cli_status;
mod commission;
mod config_file;
mod console;
mod console_browser;
mod console_queues;
mod delivery;
mod dmt_lifecycle;
mod health;
mod held;
mod history_chain;
mod hostile_clients;
mod isolation;
mod master_key;
mod metrics;
mod openapi;
mod operator_holds;
mod operators;
mod otp_texts;
mod partner_access;
mod partner_lookups;
mod paysprint;
mod paysprint_codes;
mod penny_drop;
mod plan_dates;
mod postgres_tls;
mod reconcile;
mod remitter_ekyc;
mod replay;
mod search;
mod seeds;
mod service_unit;
mod settlement;
mod store_from_old_main;
mod strict_input;
mod transfer_fields;
mod txn_numbers;
mod upstream_ids;
mod upstream_paysprint;
mod upstream_refunds;
mod upstream_sandbox;
mod upstream_transport;
mod wallet;
mod wire_rules;
