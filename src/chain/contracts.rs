//! Bindings for the contracts latchkey talks to, generated from the compiled artifacts in
//! `contracts/artifacts/`. The artifacts are committed, so building the crate needs neither
//! node nor forge; `make contracts` refreshes them and `make test` fails when they drift
//! from the Solidity sources.

// Generated code: its items mirror the ABI, and an event with many fields gets a constructor
// with as many arguments.
#![allow(missing_docs, clippy::too_many_arguments)]

use alloy::{
    primitives::{Address, B256, address, b256},
    sol,
};

/// Canonical address of EntryPoint v0.8 on every chain where it is deployed.
pub const ENTRY_POINT_V08: Address = address!("4337084D9E255Ff0702461CF8895CE9E3b5Ff108");

/// The deterministic CREATE2 deployer (Arachnid's proxy) present on most chains, and built
/// into anvil. Deploying through it gives a contract the same address on every chain.
pub const CREATE2_DEPLOYER: Address = address!("4e59b44847b379578588920ca78fbf26c0b4956c");

/// The salt under which the CREATE2 deployer puts EntryPoint v0.8 at [`ENTRY_POINT_V08`].
pub const ENTRY_POINT_V08_SALT: B256 =
    b256!("0a59dbff790c23c976a548690c27297883cc66b4c67024f9117b0238995e35e9");

/// The user operation as `handleOps` takes it (the ERC-4337 v0.7+ packed layout). In
/// Solidity it is a file-level struct; the ABI expansion also needs it at this level for
/// `IEntryPoint.UserOpsPerAggregator`, so the EntryPoint's own type is re-exported here.
pub use EntryPoint::PackedUserOperation;

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    EntryPoint,
    "contracts/artifacts/EntryPoint.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    SessionKeyAccount,
    "contracts/artifacts/SessionKeyAccount.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    SessionKeyAccountFactory,
    "contracts/artifacts/SessionKeyAccountFactory.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    GameItems,
    "contracts/artifacts/GameItems.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    GameGold,
    "contracts/artifacts/GameGold.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    SponsorPaymaster,
    "contracts/artifacts/SponsorPaymaster.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    Counter,
    "contracts/artifacts/Counter.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    SimpleAccountFactory,
    "contracts/artifacts/SimpleAccountFactory.json"
);

/// SimpleAccount, the EntryPoint package's v0.8 sample account, in a module of its own:
/// its ABI names `BaseAccount` as SessionKeyAccount's does.
pub mod simple_account {
    #![allow(missing_docs)]

    use alloy::sol;

    sol!(
        #[sol(rpc)]
        #[derive(Debug)]
        SimpleAccount,
        "contracts/artifacts/SimpleAccount.json"
    );
}

/// EntryPointSimulations, the EntryPoint with the view-only entry points a bundler runs
/// through `eth_call` with its code put in place of the EntryPoint's by a state override.
/// Never deployed: its simulation functions skip signature checks. In a module of its own,
/// since its ABI declares the EntryPoint's types again.
pub mod simulations {
    #![allow(missing_docs, clippy::too_many_arguments)]

    use alloy::sol;

    pub use super::PackedUserOperation;

    /// The same operation as the simulation's ABI names its type.
    pub fn packed(op: PackedUserOperation) -> EntryPointSimulations::PackedUserOperation {
        EntryPointSimulations::PackedUserOperation {
            sender: op.sender,
            nonce: op.nonce,
            initCode: op.initCode,
            callData: op.callData,
            accountGasLimits: op.accountGasLimits,
            preVerificationGas: op.preVerificationGas,
            gasFees: op.gasFees,
            paymasterAndData: op.paymasterAndData,
            signature: op.signature,
        }
    }

    sol!(
        #[derive(Debug)]
        EntryPointSimulations,
        "contracts/artifacts/EntryPointSimulations.json"
    );

    /// The runtime code put at the EntryPoint's address for a simulation.
    pub fn runtime_code() -> alloy::primitives::Bytes {
        EntryPointSimulations::DEPLOYED_BYTECODE.clone()
    }
}
