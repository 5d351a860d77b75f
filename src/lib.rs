//! latchkey: a self-hosted session-key relayer for ERC-4337 smart accounts.
//!
//! A game backend registers session keys on its players' accounts; latchkey turns the
//! backend's requests into user operations, signs them with the session key and relays them
//! through the EntryPoint. The account contract enforces every permission on-chain.
//!
//! # Module map
//! - [`api`]: the gRPC API, generated from `proto/latchkey/v1`.
//! - [`chain`]: contract bindings, user operations and the v0.8 userOpHash, deployment, and
//!   the local dev chain.

#![warn(missing_docs, unreachable_pub)]

pub mod api;
pub mod chain;
