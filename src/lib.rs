//! latchkey: a self-hosted session-key relayer for ERC-4337 smart accounts.
//!
//! A game backend registers session keys on its players' accounts; latchkey turns the
//! backend's requests into user operations, signs them with the session key and relays them
//! through the EntryPoint. The account contract enforces every permission on-chain.
//!
//! # Module map
//! - [`api`]: the gRPC API: generated code, proto <-> domain conversion, the one error ->
//!   status mapping, thin service handlers, and the operator's admin service behind its
//!   token.
//! - [`app`]: the application layer: each request as one function over store, chain and
//!   relay, the daemon's status, and the relay's pause.
//! - [`auth`]: who may call: API keys with their tenant and scopes, the gate every call
//!   passes, and the per-key request rate.
//! - [`chain`]: contract bindings, user operations and the v0.8 userOpHash, deployment, and
//!   the local dev chain.
//! - [`cli`]: operator subcommands: `bench`, the load generator; `contracts deploy` and
//!   `config check`; and the clients of a running daemon: `status`, `session`, `intent` and
//!   `relayer` on the admin service, `policy` and `paymaster` on the application API.
//! - [`config`]: layered configuration (defaults < TOML < env < flags), validated at start.
//! - [`daemon`]: wiring: store, chain, relay and gRPC server, with one shutdown path.
//! - [`intent`]: transaction intents: the record, its pure state machine, and turning an
//!   interaction's function signature and text arguments (or raw calldata) into calldata.
//! - [`keys`]: held session keys: generation and signing; they never leave the daemon.
//! - [`metrics`]: the Prometheus metrics: events counted where they happen, levels read
//!   from the store and the chain at each scrape.
//! - [`policy`]: gas sponsorship policies: their rules, rate limits and budgets, and what
//!   an operation is charged against them.
//! - [`relay`]: the relay engine, sole owner of the relayer keys: bundles, sends, replaces,
//!   follows through reorgs, settles.
//! - [`session`]: session keys on accounts: the record, permissions, the pure state
//!   machine of registration, expiry and revocation, and the off-chain mirror of the
//!   account's session-key rules, checked before any gas is spent.
//! - [`store`]: sled persistence: one atomic, revision-checked write per state change, and
//!   the indexes that lists and restart recovery read.

#![warn(missing_docs, unreachable_pub)]

pub mod api;
pub mod app;
pub mod auth;
pub mod chain;
pub mod cli;
pub mod config;
pub mod daemon;
mod ids;
pub mod intent;
pub mod keys;
pub mod metrics;
pub mod policy;
pub mod relay;
pub mod session;
pub mod store;
