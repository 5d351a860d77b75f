//! The test harness: a fresh anvil per test with EntryPoint v0.8 at its canonical address,
//! the account factory and the game-item contract deployed, and a funded relayer. Dropping
//! the harness stops anvil.

use std::collections::HashMap;

use alloy::{
    node_bindings::{Anvil, AnvilInstance},
    primitives::{Address, B256, Bytes, U256, aliases::U192, utils::parse_ether},
    providers::{DynProvider, Provider, ProviderBuilder, ext::AnvilApi},
    rpc::types::{Filter, TransactionReceipt},
    signers::local::PrivateKeySigner,
    sol_types::{SolCall, SolEvent},
};
use latchkey::chain::{
    contracts::{
        EntryPoint::{self, EntryPointInstance},
        SessionKeyAccount, SessionKeyAccountFactory,
    },
    devnet::{DevChain, DevChainOptions, anvil_path},
    ops::{ContractSigner, factory_data, factory_owner},
    user_operation::UserOperation,
};

/// Gas limits generous enough for deploying an account and registering a session key in
/// one operation; the relay engine estimates them in production.
pub const VERIFICATION_GAS: u128 = 1_000_000;
pub const CALL_GAS: u128 = 500_000;
pub const PRE_VERIFICATION_GAS: u64 = 100_000;

/// A bare anvil: anvil's prefunded dev accounts and nothing of latchkey's, for tests that
/// deploy the contracts themselves. `args` go to anvil as they are (for example
/// `--disable-default-create2-deployer`). Dropping it stops anvil.
pub fn bare_anvil(args: &[&str]) -> AnvilInstance {
    Anvil::at(anvil_path())
        .args(args)
        .try_spawn()
        .expect("start anvil (run `make toolchain` first)")
}

pub struct TestChain {
    pub chain: DevChain,
    /// Provider that signs with the funded relayer; it sends every `handleOps`.
    pub relayer: DynProvider,
}

impl TestChain {
    pub async fn start() -> Self {
        Self::start_with(DevChainOptions::default()).await
    }

    /// A chain that mines a block every `seconds`, so operations gather into bundles while
    /// each block is awaited.
    pub async fn with_block_time(seconds: u64) -> Self {
        Self::start_with(DevChainOptions {
            block_time: Some(seconds),
            ..DevChainOptions::default()
        })
        .await
    }

    /// A chain started with `options` (for example interval mining).
    pub async fn start_with(options: DevChainOptions) -> Self {
        let chain = DevChain::start(options)
            .await
            .expect("start anvil and deploy the contracts (run `make toolchain` first)");
        let relayer = ProviderBuilder::new()
            .wallet(chain.relayer.clone())
            .connect_http(chain.rpc_url())
            .erased();
        Self { chain, relayer }
    }

    pub fn entry_point(&self) -> EntryPointInstance<DynProvider> {
        EntryPoint::new(self.chain.deployment.entry_point, self.relayer.clone())
    }

    pub fn chain_id(&self) -> u64 {
        self.chain.chain_id()
    }

    pub async fn latest_timestamp(&self) -> u64 {
        self.relayer
            .get_block_by_number(Default::default())
            .await
            .expect("latest block")
            .expect("a latest block exists")
            .header
            .timestamp
    }

    /// Mines one block at `timestamp`, so later calls and estimates see that time.
    pub async fn mine_at(&self, timestamp: u64) {
        self.relayer
            .anvil_set_next_block_timestamp(timestamp)
            .await
            .expect("set timestamp");
        self.relayer.anvil_mine(Some(1), None).await.expect("mine");
    }

    /// A player: a fresh owner key and salt, with the counterfactual account funded so it can
    /// pay for its own operations.
    pub async fn new_player(&self) -> Player {
        let owner = PrivateKeySigner::random();
        let salt = U256::from(rand::random::<u64>());
        let factory = SessionKeyAccountFactory::new(self.chain.deployment.factory, &self.relayer);
        let account = factory
            .getAddress(
                factory_owner(&ContractSigner::ethereum(owner.address())),
                salt,
            )
            .call()
            .await
            .expect("getAddress");
        self.relayer
            .anvil_set_balance(account, parse_ether("1").expect("constant"))
            .await
            .expect("fund account");
        Player {
            owner,
            salt,
            account,
        }
    }

    /// Gives `account` 1 ETH, so it can pay for its own operations.
    pub async fn fund(&self, account: Address) {
        self.relayer
            .anvil_set_balance(account, parse_ether("1").expect("constant"))
            .await
            .expect("fund account");
    }

    /// An operation from `sender` under nonce key `nonce_key`, with the chain's current fees
    /// and fixed gas limits; the caller sets calldata, initCode and the signature.
    pub async fn op(&self, sender: Address, nonce_key: U192, call_data: Bytes) -> UserOperation {
        let nonce = self
            .entry_point()
            .getNonce(sender, nonce_key)
            .call()
            .await
            .expect("getNonce");
        let fees = self.relayer.estimate_eip1559_fees().await.expect("fees");
        UserOperation {
            sender,
            nonce,
            call_data,
            call_gas_limit: CALL_GAS,
            verification_gas_limit: VERIFICATION_GAS,
            pre_verification_gas: U256::from(PRE_VERIFICATION_GAS),
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            ..Default::default()
        }
    }

    /// Relays one operation with `handleOps`, the relayer as beneficiary.
    pub async fn handle_op(
        &self,
        op: &UserOperation,
    ) -> Result<TransactionReceipt, alloy::contract::Error> {
        let beneficiary = self.chain.relayer.address();
        let receipt = self
            .entry_point()
            .handleOps(vec![op.pack()], beneficiary)
            .send()
            .await?
            .get_receipt()
            .await?;
        Ok(receipt)
    }
}

pub struct Player {
    pub owner: PrivateKeySigner,
    pub salt: U256,
    pub account: Address,
}

impl Player {
    /// initCode fields that deploy this player's account through the factory.
    pub fn deploy_with(&self, chain: &TestChain, op: &mut UserOperation) {
        op.factory = Some(chain.chain.deployment.factory);
        op.factory_data = factory_data(&ContractSigner::ethereum(self.owner.address()), self.salt);
    }
}

/// `execute(target, value, data)` on the account.
pub fn execute_call(target: Address, value: U256, data: Bytes) -> Bytes {
    SessionKeyAccount::executeCall {
        target,
        value,
        data,
    }
    .abi_encode()
    .into()
}

/// The one `UserOperationEvent` in a `handleOps` receipt.
pub fn user_operation_event(receipt: &TransactionReceipt) -> EntryPoint::UserOperationEvent {
    let mut events = receipt
        .inner
        .logs()
        .iter()
        .filter(|log| log.topic0() == Some(&EntryPoint::UserOperationEvent::SIGNATURE_HASH))
        .map(|log| {
            log.log_decode::<EntryPoint::UserOperationEvent>()
                .expect("decode")
                .inner
                .data
        });
    let event = events.next().expect("a UserOperationEvent");
    assert!(events.next().is_none(), "exactly one UserOperationEvent");
    event
}

impl TestChain {
    pub async fn relayer_code(&self, address: Address) -> Bytes {
        self.relayer.get_code_at(address).await.expect("getCode")
    }
}

/// How many times each userOpHash executed on the canonical chain.
pub async fn executions(chain: &TestChain) -> HashMap<B256, usize> {
    let filter = Filter::new()
        .address(chain.chain.deployment.entry_point)
        .event_signature(EntryPoint::UserOperationEvent::SIGNATURE_HASH)
        .from_block(0);
    let mut executed = HashMap::new();
    for log in chain.relayer.get_logs(&filter).await.expect("logs") {
        *executed.entry(log.topics()[1]).or_default() += 1;
    }
    executed
}
