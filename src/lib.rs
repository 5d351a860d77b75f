//! latchkey: a self-hosted session-key relayer for ERC-4337 smart accounts.
//!
//! A game backend registers session keys on its players' accounts; latchkey turns the
//! backend's requests into user operations, signs them with the session key and relays them
//! through the EntryPoint. The account contract enforces every permission on-chain.
//!
//! # Module map
//!
//! The modules form layers, listed here from the bottom up: each imports only from those
//! above it in this list (`tests/it/layering.rs` holds the crate to that, and to having no
//! import circle).
//! - [`ids`]: the ids every layer shares: resource ids that sort by creation time, and the
//!   tenant.
//! - [`clock`]: the wall clock, read in one place.
//! - [`call`]: a contract call, and which calls a selector rule covers: what intents carry,
//!   sessions allow, policies sponsor and the chain encodes.
//! - [`chain`]: contract bindings, user operations and the v0.8 userOpHash, the signature
//!   frames the account takes (`chain::signature`), the gas
//!   constants of an operation (`chain::ops`), the simulation of any account's operation
//!   through EntryPointSimulations (`chain::simulation`), deployment, the paymaster's
//!   signature, and the local dev chain.
//! - [`signer`]: the kinds of key that own accounts and act as session keys (secp256k1,
//!   raw P-256 as WebCrypto signs, WebAuthn passkeys): their ids, and the off-chain mirror of
//!   the account's signature checks, WebAuthn assertions included.
//! - [`auth`]: who may call: API keys with their tenant, scopes and the client access their
//!   sessions may grant; client sessions' stamps (`auth::stamp`: the signed bytes, the
//!   window, the nonces used); the per-caller request rate and the per-peer budget of
//!   failed authentications.
//! - [`session`]: session keys on accounts: the record, permissions (allowlist, argument
//!   rules, spend limits) and their usage, the pure state machine of registration, expiry
//!   and revocation, and the off-chain mirror of the account's session-key rules
//!   (`session::rules`, with `session::spend` reading what a token call spends), checked
//!   before any gas is spent.
//! - [`policy`]: gas sponsorship policies: their rules, rate limits and budgets, and the
//!   amounts an operation is charged against them.
//! - [`intent`]: transaction intents: the record, its pure state machine, how its outcome
//!   settles its session and its policy charge, and turning an interaction's function
//!   signature and text arguments (or raw calldata) into calldata.
//! - [`keys`]: held session keys: generation, sealing under the master key, and signing;
//!   they never leave the daemon.
//! - [`events`]: intent changes told to watchers, the relay and the log. The store writes
//!   each change into its outbox in the change's own transaction and tells it here once
//!   durable, so no writer publishes by hand.
//! - [`store`]: persistence. The [`store::Store`] trait is what the use cases and the relay
//!   need of a database: one atomic [`store::Batch`] of revision-checked records per state
//!   change, with its outbox entry; the lookups and lists by index that the API, the
//!   bundler JSON-RPC (by userOpHash, a sender's nonce keys in use) and restart recovery
//!   read; held keys kept sealed (and moved to a new master key). The embedded
//!   backend on sled ([`store::embedded`]) declares its tables once
//!   (`store/embedded/layout.rs`) and does sponsorship admission: a policy's limits are
//!   checked against its stored usage inside the write that charges it
//!   (`store/embedded/tx.rs`, `admit`).
//! - [`metrics`]: the Prometheus metrics: events counted where they happen, levels read
//!   from the store and the chain at each scrape.
//! - [`relay`]: the relay engine, sole owner of the relayer keys: bundles, sends, replaces,
//!   follows through reorgs, settles. It works on the store and the chain alone; the rest of
//!   the daemon holds its [`relay::RelayHandle`] (relayers, progress, wake-up).
//! - [`app`]: the use cases, one file per resource (accounts, sessions, intents, policies,
//!   API keys, status, the sponsorship decision in `app/sponsor.rs`, and the bundler's
//!   operations of any account in `app/bundler.rs`), over a small
//!   context: store, chain, settings, metrics and the relay's handle. One helper
//!   ([`store::retry_lost_races`]) re-reads and decides again when a write loses an
//!   optimistic-concurrency race.
//! - [`api`]: the gRPC API: generated code; the table of every method with its server and
//!   scope (and client access); the gate (API keys, stamps, rate, failed-authentication
//!   budget) and the edge, a tower layer that admits, counts and audits each call before its
//!   message is decoded (from its headers, or for a stamped call from its exact bytes); proto <-> domain conversion; the one error -> status mapping; handlers that
//!   convert, call and convert; watch streams and their per-tenant slots; and the admin
//!   service.
//! - [`config`]: layered configuration (defaults < TOML < env < flags, each flag reading its
//!   `LATCHKEY_*` variable when absent), checked once at start into the `Settings` the
//!   daemon runs on: keys parsed and the TLS files read there, never again.
//! - [`rpc`]: the bundler JSON-RPC that account-abstraction SDKs speak (ERC-7769 for
//!   EntryPoint v0.8, and the gas-price methods they call), on a listener of its own: the
//!   JSON-RPC framing, user operations as JSON, each method and its scope, and the error
//!   codes; the operations it takes run through `app`'s bundler use case (simulated by
//!   `chain::simulation`) into the same store and relay as latchkey's own.
//! - [`daemon`]: wiring: store, chain, relay and gRPC server (with gRPC-web and CORS for
//!   browsers on the application port), with one shutdown path, and the HTTP/2 limits both
//!   servers set.
//! - [`cli`]: operator subcommands: `bench`, the load generator; `contracts deploy` and
//!   `config check`; `dev`, the local stack with the web example; and the clients of a
//!   running daemon: `status`, `session`, `intent` and `relayer` on the admin service,
//!   `policy` and `paymaster` on the application API.

#![warn(missing_docs, unreachable_pub)]

pub mod api;
pub mod app;
pub mod auth;
pub mod call;
pub mod chain;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod events;
pub mod ids;
pub mod intent;
pub mod keys;
pub mod metrics;
pub mod policy;
pub mod relay;
pub mod rpc;
pub mod session;
pub mod signer;
pub mod store;
