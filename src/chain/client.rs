//! Reads the application layer needs from the chain. Sending transactions is the relay's job
//! alone; this client only reads and estimates.

use alloy::{
    primitives::{Address, U256},
    providers::{DynProvider, Provider},
    rpc::types::TransactionRequest,
};

use super::{
    ChainError,
    contracts::{EntryPoint, SessionKeyAccount, SessionKeyAccountFactory, SponsorPaymaster},
    deploy::Deployment,
    ops::{ContractSigner, P256Path, factory_owner},
    revert::RevertReason,
};
use crate::call::Interaction;

/// EIP-1559 fees for a new operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fees {
    /// Fee cap, wei per gas.
    pub max_fee_per_gas: u128,
    /// Priority fee, wei per gas.
    pub max_priority_fee_per_gas: u128,
}

/// A paymaster's funds at the EntryPoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymasterFunds {
    /// The deposit that pays for sponsored operations, wei.
    pub deposit: U256,
    /// The stake, wei.
    pub stake: U256,
    /// Whether the stake is locked.
    pub staked: bool,
}

/// A read-only view of the chain latchkey serves.
#[derive(Debug, Clone)]
pub struct ChainClient {
    provider: DynProvider,
    deployment: Deployment,
    chain_id: u64,
    max_fee_per_gas_cap: u128,
    p256_path: P256Path,
}

impl ChainClient {
    /// Connects the view to `provider`, checking the chain id and that the contracts exist.
    pub async fn connect(
        provider: DynProvider,
        deployment: Deployment,
        max_fee_per_gas_cap: u128,
    ) -> Result<Self, ChainError> {
        let chain_id = provider.get_chain_id().await?;
        for (contract, address) in [
            ("EntryPoint", deployment.entry_point),
            ("SessionKeyAccountFactory", deployment.factory),
        ] {
            if provider.get_code_at(address).await?.is_empty() {
                return Err(ChainError::MissingContract { contract, address });
            }
        }
        let factory = SessionKeyAccountFactory::new(deployment.factory, &provider);
        let implementation = factory.accountImplementation().call().await?;
        let p256_path = if SessionKeyAccount::new(implementation, &provider)
            .usesP256Precompile()
            .call()
            .await?
        {
            P256Path::Precompile
        } else {
            P256Path::Solidity
        };
        Ok(Self {
            provider,
            deployment,
            chain_id,
            max_fee_per_gas_cap,
            p256_path,
        })
    }

    /// How the accounts verify P-256 signatures on this chain.
    pub fn p256_path(&self) -> P256Path {
        self.p256_path
    }

    /// The provider, for callers that need more than this view.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// Where the contracts are.
    pub fn deployment(&self) -> Deployment {
        self.deployment
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The highest fee cap latchkey pays or signs, wei per gas.
    pub fn max_fee_per_gas_cap(&self) -> u128 {
        self.max_fee_per_gas_cap
    }

    /// The counterfactual address of the account of (owner, salt).
    pub async fn account_address(
        &self,
        owner: &ContractSigner,
        salt: U256,
    ) -> Result<Address, ChainError> {
        let factory = SessionKeyAccountFactory::new(self.deployment.factory, &self.provider);
        Ok(factory
            .getAddress(factory_owner(owner), salt)
            .call()
            .await?)
    }

    /// Whether `account` has code.
    pub async fn is_deployed(&self, account: Address) -> Result<bool, ChainError> {
        Ok(!self.provider.get_code_at(account).await?.is_empty())
    }

    /// The owner of a deployed account: its id (an Ethereum owner's address).
    pub async fn owner_of(&self, account: Address) -> Result<Address, ChainError> {
        Ok(SessionKeyAccount::new(account, &self.provider)
            .owner()
            .call()
            .await?)
    }

    /// The approving signer a SponsorPaymaster trusts and the EntryPoint it serves; an error
    /// if `paymaster` has no code.
    pub async fn paymaster_setup(
        &self,
        paymaster: Address,
    ) -> Result<(Address, Address), ChainError> {
        if self.provider.get_code_at(paymaster).await?.is_empty() {
            return Err(ChainError::MissingContract {
                contract: "SponsorPaymaster",
                address: paymaster,
            });
        }
        let contract = SponsorPaymaster::new(paymaster, &self.provider);
        Ok((
            contract.signer().call().await?,
            contract.entryPoint().call().await?,
        ))
    }

    /// What `paymaster` holds at the EntryPoint.
    pub async fn paymaster_funds(&self, paymaster: Address) -> Result<PaymasterFunds, ChainError> {
        let info = EntryPoint::new(self.deployment.entry_point, &self.provider)
            .getDepositInfo(paymaster)
            .call()
            .await?;
        Ok(PaymasterFunds {
            deposit: U256::from(info.deposit),
            stake: U256::from(info.stake),
            staked: info.staked,
        })
    }

    /// The latest block's timestamp.
    pub async fn block_time(&self) -> Result<u64, ChainError> {
        let block = self
            .provider
            .get_block_by_number(Default::default())
            .await?
            .ok_or(ChainError::NoLatestBlock)?;
        Ok(block.header.timestamp)
    }

    /// The time an operation sent now is judged by: see [`inclusion_time`].
    pub async fn inclusion_time(&self) -> Result<u64, ChainError> {
        Ok(inclusion_time(
            self.block_time().await?,
            crate::clock::wall_clock_secs(),
        ))
    }

    /// Fees for an operation signed now: the chain's estimate, capped by configuration. The
    /// cap bounds what a session's gas budget is charged; an operation priced under the
    /// market waits in the queue rather than overpaying.
    pub async fn fees(&self) -> Result<Fees, ChainError> {
        let estimate = self.provider.estimate_eip1559_fees().await?;
        let max_fee_per_gas = estimate.max_fee_per_gas.min(self.max_fee_per_gas_cap);
        let max_priority_fee_per_gas = estimate.max_priority_fee_per_gas.min(max_fee_per_gas);
        Ok(Fees {
            max_fee_per_gas,
            max_priority_fee_per_gas,
        })
    }

    /// Execution gas of `interactions` made by `account`: the account's whole `execute` or
    /// `executeBatch`, run as the EntryPoint will call it, against the latest block. Running
    /// the account's own call, rather than each interaction as a transaction of its own,
    /// counts what a transaction's intrinsic gas hides: the 25,000 of value sent to an empty
    /// account, the 9,000 of any value call, cold access to each target, a contract
    /// recipient's code, and what one call of a batch leaves warm or changed for the next.
    /// A call that would revert fails here with its decoded reason, before any gas is spent.
    /// The latest block, not the pending pool, is the state every client can observe.
    pub async fn estimate_calls(
        &self,
        account: Address,
        interactions: &[Interaction],
    ) -> Result<u128, ChainError> {
        let call_data = super::ops::intent_call_data(interactions);
        let request = TransactionRequest::default()
            .from(self.deployment.entry_point)
            .to(account)
            .input(call_data.clone().into());
        match self.provider.estimate_gas(request).latest().await {
            Ok(gas) => Ok(u128::from(gas).saturating_sub(intrinsic_gas(&call_data))),
            Err(error) => {
                let revert = error
                    .as_error_resp()
                    .and_then(|payload| payload.as_revert_data());
                Err(match revert {
                    Some(data) => would_revert(interactions.len(), &data),
                    None => error.into(),
                })
            }
        }
    }
}

/// The earliest time the block that includes an operation sent now can carry: the later of
/// the latest block's time and the wall clock. The EntryPoint checks windows against the
/// including block's timestamp, and a chain that mines only on demand can have a latest
/// block minutes old, while its next block takes the wall clock's time.
pub fn inclusion_time(block_time: u64, wall_clock: u64) -> u64 {
    block_time.max(wall_clock)
}

/// What a transaction carrying `call_data` pays before it executes: 21,000 and the calldata
/// (16 a non-zero byte, 4 a zero byte). The EntryPoint's call into the account pays neither.
fn intrinsic_gas(call_data: &[u8]) -> u128 {
    let data: u128 = call_data
        .iter()
        .map(|byte| if *byte == 0 { 4 } else { 16 })
        .sum();
    21_000 + data
}

/// The refusal of `calls` interactions whose execution reverted with `data`: a batch names
/// its failed call in `ExecuteError`, a single call's revert is its own.
fn would_revert(calls: usize, data: &[u8]) -> ChainError {
    match RevertReason::decode(data) {
        RevertReason::BatchCall { index, reason } if calls > 1 => ChainError::CallWouldRevert {
            index: usize::try_from(index).ok().filter(|index| *index < calls),
            reason: reason.to_string(),
        },
        reason => ChainError::CallWouldRevert {
            index: (calls == 1).then_some(0),
            reason: reason.to_string(),
        },
    }
}
