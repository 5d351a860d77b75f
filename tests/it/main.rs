//! Integration tests on a real anvil with the real contracts: one binary, one module per
//! story, all sharing the harness.

// A test binary exports nothing: its modules share items with `pub`, and its items are
// documented where it helps the story rather than everywhere.
#![allow(unreachable_pub, missing_docs)]

mod access;
mod admin;
mod at_rest;
mod bench;
mod bundler_rpc;
mod bundling;
mod cli_json;
mod client_sessions;
mod config_check;
mod contracts_cli;
mod crash;
mod daemon;
mod deploy_files;
mod deployment;
mod edge;
mod faults;
mod flows;
mod front_run;
mod game_currency;
mod harness;
mod held_flow;
mod hostile;
mod inspect_cli;
mod intent_kinds;
mod layering;
mod limits;
mod logs;
mod malformed;
mod metrics;
mod outcomes;
mod passkeys;
mod policy_cli;
mod reflection;
mod refusals;
mod restart;
mod session_key_flow;
mod shutdown;
mod spend_agreement;
mod sponsor;
mod sponsorship;
mod tls;
mod unsigned;
mod user_op_hash;
mod value_transfers;
mod walkthrough;
mod windows;
