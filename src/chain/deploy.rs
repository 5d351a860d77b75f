//! Puts latchkey's contracts on a chain through the CREATE2 deployer, so that each one has
//! the same address on every chain and deploying twice is a no-op. [`ensure_deployed`]
//! places one contract and says whether it sent anything; `latchkey contracts deploy`
//! reports each step with it, and [`deploy_all`] and [`deploy_paymaster`] set up the dev
//! chain.

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, B256, Bytes, TxHash, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
    sol_types::SolValue,
};
use tracing::info;

use super::{
    ChainError,
    contracts::{
        CREATE2_DEPLOYER, Counter, ENTRY_POINT_V08, ENTRY_POINT_V08_SALT, EntryPoint, GameGold,
        GameItems, SessionKeyAccountFactory, SimpleAccountFactory, SponsorPaymaster,
    },
};

/// Salt for latchkey's own contracts. Their addresses then depend only on their bytecode and
/// constructor arguments.
pub const LATCHKEY_SALT: B256 = B256::ZERO;

/// Where the contracts live on one chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    /// EntryPoint v0.8, at its canonical address.
    pub entry_point: Address,
    /// The SessionKeyAccountFactory bound to that EntryPoint.
    pub factory: Address,
    /// The GameItems example contract.
    pub game_items: Address,
    /// The GameGold example contract, an ERC-20 game currency.
    pub game_gold: Address,
}

/// A contract that latchkey places through the CREATE2 deployer. Its salt and init code
/// (bytecode and constructor arguments) fix its address, the same on every chain, so
/// whether it is deployed is a matter of whether that address has code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Create2Contract {
    /// The contract's name, for messages.
    pub name: &'static str,
    /// The CREATE2 salt.
    pub salt: B256,
    /// Bytecode followed by the ABI-encoded constructor arguments.
    pub init_code: Bytes,
}

impl Create2Contract {
    /// EntryPoint v0.8, which lands at its canonical address [`ENTRY_POINT_V08`].
    pub fn entry_point() -> Self {
        Self {
            name: "EntryPoint",
            salt: ENTRY_POINT_V08_SALT,
            init_code: EntryPoint::BYTECODE.clone(),
        }
    }

    /// The SessionKeyAccountFactory bound to `entry_point`.
    pub fn factory(entry_point: Address) -> Self {
        Self {
            name: "SessionKeyAccountFactory",
            salt: LATCHKEY_SALT,
            init_code: factory_init_code(entry_point),
        }
    }

    /// The GameItems example contract.
    pub fn game_items() -> Self {
        Self {
            name: "GameItems",
            salt: LATCHKEY_SALT,
            init_code: GameItems::BYTECODE.clone(),
        }
    }

    /// The GameGold example contract.
    pub fn game_gold() -> Self {
        Self {
            name: "GameGold",
            salt: LATCHKEY_SALT,
            init_code: GameGold::BYTECODE.clone(),
        }
    }

    /// The SponsorPaymaster of `entry_point` owned by `owner` and approving with `signer`.
    /// Another owner or signer gives another paymaster, at another address.
    pub fn paymaster(entry_point: Address, owner: Address, signer: Address) -> Self {
        Self {
            name: "SponsorPaymaster",
            salt: LATCHKEY_SALT,
            init_code: [
                &SponsorPaymaster::BYTECODE[..],
                &(entry_point, owner, signer).abi_encode_params()[..],
            ]
            .concat()
            .into(),
        }
    }

    /// The EntryPoint package's SimpleAccountFactory for `entry_point`: the sample v0.8
    /// account the bundler JSON-RPC's tests and benchmark send operations from.
    pub fn simple_account_factory(entry_point: Address) -> Self {
        Self {
            name: "SimpleAccountFactory",
            salt: LATCHKEY_SALT,
            init_code: [
                &SimpleAccountFactory::BYTECODE[..],
                &entry_point.abi_encode()[..],
            ]
            .concat()
            .into(),
        }
    }

    /// The Counter the bundler benchmark's operations call.
    pub fn counter() -> Self {
        Self {
            name: "Counter",
            salt: LATCHKEY_SALT,
            init_code: Counter::BYTECODE.clone(),
        }
    }

    /// Where the CREATE2 deployer puts it.
    pub fn address(&self) -> Address {
        create2_address(self.salt, &self.init_code)
    }
}

/// How a contract came to be at its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The address had code already, so nothing was sent.
    AlreadyDeployed,
    /// Deployed now, by this transaction.
    Deployed {
        /// The transaction to the CREATE2 deployer.
        tx: TxHash,
        /// The gas it used.
        gas_used: u64,
        /// What it cost the sender: gas used times the effective gas price, in wei.
        fee_wei: u128,
    },
}

/// A contract at its address, and how it got there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// The contract's address.
    pub address: Address,
    /// Whether it was deployed now or was already there.
    pub placement: Placement,
}

/// What topping up a paymaster's EntryPoint deposit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopUp {
    /// The deposit already held at least the amount asked for; nothing was sent.
    Enough {
        /// The deposit, in wei.
        held: U256,
    },
    /// `depositTo` added the difference.
    ToppedUp {
        /// The deposit before, in wei.
        before: U256,
        /// What was added, in wei.
        added: U256,
        /// The `depositTo` transaction.
        tx: TxHash,
    },
}

/// Deploys whatever is missing of EntryPoint v0.8, the account factory and the game-item
/// contract, from the provider's default sender, and returns their addresses.
pub async fn deploy_all<P: Provider>(provider: &P) -> Result<Deployment, ChainError> {
    let entry_point = deploy_logged(provider, Create2Contract::entry_point())
        .await?
        .address;
    if entry_point != ENTRY_POINT_V08 {
        // Only possible if the embedded artifact is not the canonical v0.8 bytecode.
        return Err(ChainError::UnexpectedAddress {
            contract: "EntryPoint",
            expected: ENTRY_POINT_V08,
            actual: entry_point,
        });
    }
    let factory = deploy_logged(provider, Create2Contract::factory(entry_point)).await?;
    let game_items = deploy_logged(provider, Create2Contract::game_items()).await?;
    let game_gold = deploy_logged(provider, Create2Contract::game_gold()).await?;
    Ok(Deployment {
        entry_point,
        factory: factory.address,
        game_items: game_items.address,
        game_gold: game_gold.address,
    })
}

/// Where the bundler's sample contracts live: the SimpleAccountFactory and the Counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundlerSamples {
    /// The EntryPoint package's SimpleAccountFactory.
    pub simple_account_factory: Address,
    /// The Counter.
    pub counter: Address,
}

/// Where [`deploy_bundler_samples`] puts them for `entry_point`, known without a chain.
pub fn bundler_samples(entry_point: Address) -> BundlerSamples {
    BundlerSamples {
        simple_account_factory: Create2Contract::simple_account_factory(entry_point).address(),
        counter: Create2Contract::counter().address(),
    }
}

/// Deploys whatever is missing of the bundler's sample contracts, from the provider's
/// default sender.
pub async fn deploy_bundler_samples<P: Provider>(
    provider: &P,
    entry_point: Address,
) -> Result<BundlerSamples, ChainError> {
    let factory = deploy_logged(
        provider,
        Create2Contract::simple_account_factory(entry_point),
    )
    .await?
    .address;
    let counter = deploy_logged(provider, Create2Contract::counter())
        .await?
        .address;
    Ok(BundlerSamples {
        simple_account_factory: factory,
        counter,
    })
}

/// Deploys (unless already there) the SponsorPaymaster of `entry_point` owned by `owner`
/// and approving with `signer`, and tops its EntryPoint deposit up to at least `deposit`
/// wei from the provider's default sender. Its address follows from its owner and signer.
pub async fn deploy_paymaster<P: Provider>(
    provider: &P,
    entry_point: Address,
    owner: Address,
    signer: Address,
    deposit: U256,
) -> Result<Address, ChainError> {
    let placed = deploy_logged(
        provider,
        Create2Contract::paymaster(entry_point, owner, signer),
    )
    .await?;
    let paymaster = placed.address;
    if let TopUp::ToppedUp { added, tx, .. } =
        top_up_deposit(provider, entry_point, paymaster, deposit).await?
    {
        info!(target: "chain", %paymaster, wei = %added, %tx, "paymaster deposit topped up");
    }
    Ok(paymaster)
}

/// Tops the EntryPoint deposit of `paymaster` up to at least `deposit` wei from the
/// provider's default sender; sends nothing when it already holds that much.
pub async fn top_up_deposit<P: Provider>(
    provider: &P,
    entry_point: Address,
    paymaster: Address,
    deposit: U256,
) -> Result<TopUp, ChainError> {
    let entry_point = EntryPoint::new(entry_point, provider);
    let held = entry_point.balanceOf(paymaster).call().await?;
    if held >= deposit {
        return Ok(TopUp::Enough { held });
    }
    let added = deposit - held;
    let receipt = entry_point
        .depositTo(paymaster)
        .value(added)
        .send()
        .await?
        .get_receipt()
        .await?;
    let tx = receipt.transaction_hash;
    if !receipt.status() {
        // depositTo only adds to a balance; it fails only when it runs out of gas.
        return Err(ChainError::DeploymentFailed {
            contract: "the paymaster's EntryPoint deposit",
            tx,
        });
    }
    Ok(TopUp::ToppedUp {
        before: held,
        added,
        tx,
    })
}

/// Where [`deploy_all`] puts the contracts for `entry_point`, known without a chain.
pub fn expected_addresses(entry_point: Address) -> Deployment {
    Deployment {
        entry_point,
        factory: Create2Contract::factory(entry_point).address(),
        game_items: Create2Contract::game_items().address(),
        game_gold: Create2Contract::game_gold().address(),
    }
}

fn factory_init_code(entry_point: Address) -> Bytes {
    [
        &SessionKeyAccountFactory::BYTECODE[..],
        &entry_point.abi_encode()[..],
    ]
    .concat()
    .into()
}

/// The address the CREATE2 deployer gives `init_code` under `salt`.
pub fn create2_address(salt: B256, init_code: &[u8]) -> Address {
    CREATE2_DEPLOYER.create2_from_code(salt, init_code)
}

/// Deploys `contract` through the CREATE2 deployer from the provider's default sender,
/// unless its address already has code. Logs nothing: callers report what happened.
pub async fn ensure_deployed<P: Provider>(
    provider: &P,
    contract: &Create2Contract,
) -> Result<Placed, ChainError> {
    let address = contract.address();
    if !provider.get_code_at(address).await?.is_empty() {
        return Ok(Placed {
            address,
            placement: Placement::AlreadyDeployed,
        });
    }
    if provider.get_code_at(CREATE2_DEPLOYER).await?.is_empty() {
        return Err(ChainError::MissingCreate2Deployer);
    }
    let request = TransactionRequest::default()
        .with_to(CREATE2_DEPLOYER)
        .with_input([contract.salt.as_slice(), &contract.init_code].concat());
    let receipt = provider
        .send_transaction(request)
        .await?
        .get_receipt()
        .await?;
    let tx: TxHash = receipt.transaction_hash;
    if !receipt.status() || provider.get_code_at(address).await?.is_empty() {
        return Err(ChainError::DeploymentFailed {
            contract: contract.name,
            tx,
        });
    }
    Ok(Placed {
        address,
        placement: Placement::Deployed {
            tx,
            gas_used: receipt.gas_used,
            fee_wei: u128::from(receipt.gas_used).saturating_mul(receipt.effective_gas_price),
        },
    })
}

/// [`ensure_deployed`], logging what it did.
async fn deploy_logged<P: Provider>(
    provider: &P,
    contract: Create2Contract,
) -> Result<Placed, ChainError> {
    let placed = ensure_deployed(provider, &contract).await?;
    let (name, address) = (contract.name, placed.address);
    match placed.placement {
        Placement::AlreadyDeployed => {
            info!(target: "chain", contract = name, %address, "already deployed");
        }
        Placement::Deployed { tx, gas_used, .. } => {
            info!(target: "chain", contract = name, %address, %tx, gas = gas_used, "deployed");
        }
    }
    Ok(placed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_point_lands_at_its_canonical_address() {
        assert_eq!(Create2Contract::entry_point().address(), ENTRY_POINT_V08);
    }

    #[test]
    fn a_paymaster_address_follows_from_its_owner_and_signer() {
        let [owner, signer, other] = [1u8, 2, 3].map(Address::repeat_byte);
        let paymaster = Create2Contract::paymaster(ENTRY_POINT_V08, owner, signer);
        assert_eq!(
            paymaster.address(),
            Create2Contract::paymaster(ENTRY_POINT_V08, owner, signer).address()
        );
        assert_ne!(
            paymaster.address(),
            Create2Contract::paymaster(ENTRY_POINT_V08, owner, other).address()
        );
        assert_ne!(
            paymaster.address(),
            Create2Contract::paymaster(ENTRY_POINT_V08, other, signer).address()
        );
    }
}
