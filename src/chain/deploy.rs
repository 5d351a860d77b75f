//! Puts latchkey's contracts on a chain through the CREATE2 deployer, so that each one has
//! the same address on every chain and deploying twice is a no-op.

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
        CREATE2_DEPLOYER, ENTRY_POINT_V08, ENTRY_POINT_V08_SALT, EntryPoint, GameItems,
        SessionKeyAccountFactory, SponsorPaymaster,
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
}

/// Deploys whatever is missing of EntryPoint v0.8, the account factory and the game-item
/// contract, from the provider's default sender, and returns their addresses.
pub async fn deploy_all<P: Provider>(provider: &P) -> Result<Deployment, ChainError> {
    let entry_point = ensure_deployed(
        provider,
        "EntryPoint",
        ENTRY_POINT_V08_SALT,
        EntryPoint::BYTECODE.clone(),
    )
    .await?;
    if entry_point != ENTRY_POINT_V08 {
        // Only possible if the embedded artifact is not the canonical v0.8 bytecode.
        return Err(ChainError::UnexpectedAddress {
            contract: "EntryPoint",
            expected: ENTRY_POINT_V08,
            actual: entry_point,
        });
    }
    let factory = ensure_deployed(
        provider,
        "SessionKeyAccountFactory",
        LATCHKEY_SALT,
        factory_init_code(entry_point),
    )
    .await?;
    let game_items = ensure_deployed(
        provider,
        "GameItems",
        LATCHKEY_SALT,
        GameItems::BYTECODE.clone(),
    )
    .await?;
    Ok(Deployment {
        entry_point,
        factory,
        game_items,
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
    let init_code: Bytes = [
        &SponsorPaymaster::BYTECODE[..],
        &(entry_point, owner, signer).abi_encode_params()[..],
    ]
    .concat()
    .into();
    let paymaster = ensure_deployed(provider, "SponsorPaymaster", LATCHKEY_SALT, init_code).await?;
    let held = EntryPoint::new(entry_point, provider)
        .balanceOf(paymaster)
        .call()
        .await?;
    if held < deposit {
        let receipt = EntryPoint::new(entry_point, provider)
            .depositTo(paymaster)
            .value(deposit - held)
            .send()
            .await?
            .get_receipt()
            .await?;
        info!(target: "chain", %paymaster, wei = %(deposit - held), tx = %receipt.transaction_hash, "paymaster deposit topped up");
    }
    Ok(paymaster)
}

/// Where [`deploy_all`] puts the contracts for `entry_point`, known without a chain.
pub fn expected_addresses(entry_point: Address) -> Deployment {
    Deployment {
        entry_point,
        factory: create2_address(LATCHKEY_SALT, &factory_init_code(entry_point)),
        game_items: create2_address(LATCHKEY_SALT, &GameItems::BYTECODE),
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

async fn ensure_deployed<P: Provider>(
    provider: &P,
    contract: &'static str,
    salt: B256,
    init_code: Bytes,
) -> Result<Address, ChainError> {
    let address = create2_address(salt, &init_code);
    if !provider.get_code_at(address).await?.is_empty() {
        info!(target: "chain", contract, %address, "already deployed");
        return Ok(address);
    }
    if provider.get_code_at(CREATE2_DEPLOYER).await?.is_empty() {
        return Err(ChainError::MissingCreate2Deployer);
    }
    let request = TransactionRequest::default()
        .with_to(CREATE2_DEPLOYER)
        .with_input([salt.as_slice(), &init_code].concat());
    let receipt = provider
        .send_transaction(request)
        .await?
        .get_receipt()
        .await?;
    let tx: TxHash = receipt.transaction_hash;
    if !receipt.status() || provider.get_code_at(address).await?.is_empty() {
        return Err(ChainError::DeploymentFailed { contract, tx });
    }
    info!(target: "chain", contract, %address, %tx, gas = receipt.gas_used, "deployed");
    Ok(address)
}
