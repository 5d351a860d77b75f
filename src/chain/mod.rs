//! Everything that touches an EVM chain: contract bindings, user operations and their hash,
//! deployment, and the local dev chain.

pub mod client;
pub mod contracts;
pub mod deploy;
pub mod devnet;
pub mod ops;
pub mod revert;
pub mod signature;
pub mod simulation;
pub mod sponsor;
pub mod user_operation;
pub mod validation_rules;

use std::path::PathBuf;

use alloy::{
    contract,
    node_bindings::NodeError,
    primitives::{Address, TxHash},
    providers::PendingTransactionError,
    signers,
    transports::TransportError,
};

/// Failures of chain access, each one a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The JSON-RPC endpoint failed or refused a request.
    #[error("chain RPC request failed: {0}")]
    Rpc(#[from] TransportError),
    /// A contract call reverted or could not be decoded.
    #[error("contract call failed: {0}")]
    Contract(#[from] contract::Error),
    /// A sent transaction was not confirmed.
    #[error("transaction was not confirmed: {0}")]
    Pending(#[from] PendingTransactionError),
    /// A key could not sign.
    #[error("signing failed: {0}")]
    Signing(#[from] signers::Error),
    /// The chain has no CREATE2 deployer at its well-known address, so contracts cannot be
    /// placed at deterministic addresses.
    #[error(
        "the chain has no CREATE2 deployer at {}; deploy it first",
        contracts::CREATE2_DEPLOYER
    )]
    MissingCreate2Deployer,
    /// A deployment transaction was mined but left no code behind.
    #[error("deploying {contract} failed in transaction {tx}")]
    DeploymentFailed {
        /// The contract being deployed.
        contract: &'static str,
        /// The deployment transaction.
        tx: TxHash,
    },
    /// A sponsorship cannot be encoded as the paymaster reads it.
    #[error("invalid sponsorship: {0}")]
    InvalidSponsorship(&'static str),
    /// A contract landed somewhere other than where it must be.
    #[error("{contract} deployed at {actual}, expected {expected}")]
    UnexpectedAddress {
        /// The contract being deployed.
        contract: &'static str,
        /// Where it must be.
        expected: Address,
        /// Where it is.
        actual: Address,
    },
    /// The user operation's initCode carries the EIP-7702 marker, whose hash depends on
    /// chain state; latchkey does not build such operations.
    #[error("EIP-7702 initCode is not supported")]
    Eip7702InitCode,
    /// A contract latchkey needs has no code at its configured address.
    #[error("{contract} has no code at {address}; deploy it or fix the configured address")]
    MissingContract {
        /// The contract.
        contract: &'static str,
        /// Where it was expected.
        address: Address,
    },
    /// Simulating the interactions reverted: they would fail on chain too.
    #[error("{} would revert: {reason}", match index {
        Some(index) => format!("interactions[{index}]"),
        None => "the interactions".to_owned(),
    })]
    CallWouldRevert {
        /// Index of the interaction that failed, when the revert tells.
        index: Option<usize>,
        /// The decoded revert.
        reason: String,
    },
    /// The node answered with something that does not decode as what was asked for.
    #[error("the node's answer cannot be read: {0}")]
    Decode(String),
    /// The node returned no latest block.
    #[error("the node returned no latest block")]
    NoLatestBlock,
    /// The anvil binary is missing.
    #[error(
        "anvil not found at {0}; run `make toolchain` (npm ci in contracts/) or set LATCHKEY_ANVIL"
    )]
    AnvilNotInstalled(PathBuf),
    /// anvil did not start.
    #[error("anvil failed to start: {0}")]
    Node(#[from] NodeError),
}
