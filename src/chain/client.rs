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
    revert::RevertReason,
};
use crate::intent::Interaction;

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
        Ok(Self {
            provider,
            deployment,
            chain_id,
            max_fee_per_gas_cap,
        })
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
    pub async fn account_address(&self, owner: Address, salt: U256) -> Result<Address, ChainError> {
        let factory = SessionKeyAccountFactory::new(self.deployment.factory, &self.provider);
        Ok(factory.getAddress(owner, salt).call().await?)
    }

    /// Whether `account` has code.
    pub async fn is_deployed(&self, account: Address) -> Result<bool, ChainError> {
        Ok(!self.provider.get_code_at(account).await?.is_empty())
    }

    /// The owner of a deployed account.
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

    /// The latest block's timestamp: the clock the EntryPoint checks windows against.
    pub async fn chain_time(&self) -> Result<u64, ChainError> {
        let block = self
            .provider
            .get_block_by_number(Default::default())
            .await?
            .ok_or(ChainError::NoLatestBlock)?;
        Ok(block.header.timestamp)
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

    /// Execution gas for `interactions` made by `account`: each call estimated from the
    /// account against the latest block, summed. A call that would revert fails here with
    /// its decoded reason, before any gas is spent. The latest block, not the pending pool,
    /// is the state every client can observe.
    pub async fn estimate_calls(
        &self,
        account: Address,
        interactions: &[Interaction],
    ) -> Result<u128, ChainError> {
        let mut total: u128 = 0;
        for (index, interaction) in interactions.iter().enumerate() {
            let request = TransactionRequest::default()
                .from(account)
                .to(interaction.to)
                .value(interaction.value)
                .input(interaction.data.clone().into());
            let gas = match self.provider.estimate_gas(request).latest().await {
                Ok(gas) => gas,
                Err(error) => {
                    let revert = error
                        .as_error_resp()
                        .and_then(|payload| payload.as_revert_data());
                    return Err(match revert {
                        Some(data) => ChainError::CallWouldRevert {
                            index,
                            reason: RevertReason::decode(&data).to_string(),
                        },
                        None => error.into(),
                    });
                }
            };
            // estimate_gas includes the 21,000 a transaction pays; an inner call does not.
            total = total.saturating_add(u128::from(gas.saturating_sub(21_000)));
        }
        Ok(total)
    }
}
