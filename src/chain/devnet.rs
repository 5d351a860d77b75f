//! A local development chain: the project's anvil with latchkey's contracts deployed, a
//! funded relayer and a funded, staked paymaster, and the bundler's sample contracts. Integration tests and the local stack both start from here.

use std::path::PathBuf;

use alloy::{
    node_bindings::{Anvil, AnvilInstance},
    primitives::{Address, U256, utils::parse_ether},
    providers::{DynProvider, Provider, ProviderBuilder, ext::AnvilApi},
    signers::local::PrivateKeySigner,
};
use url::Url;

use super::{
    ChainError,
    contracts::SponsorPaymaster,
    deploy::{BundlerSamples, Deployment, deploy_all, deploy_bundler_samples, deploy_paymaster},
    validation_rules::MIN_UNSTAKE_DELAY_SECS,
};

/// Environment variable that points at an anvil binary other than the project's own.
pub const ANVIL_PATH_ENV: &str = "LATCHKEY_ANVIL";

/// Ether given to the relayer on a fresh dev chain.
pub const RELAYER_FUNDING_ETH: &str = "1000";

/// Ether deposited at the EntryPoint for the paymaster on a fresh dev chain.
pub const PAYMASTER_DEPOSIT_ETH: &str = "100";

/// The stake the dev chain's paymaster holds at the EntryPoint, in ETH, locked for
/// ERC-7562's least unstake delay.
pub const PAYMASTER_STAKE_ETH: &str = "1";

/// The anvil binary to run: `$LATCHKEY_ANVIL`, or the one `npm ci` installs in
/// `contracts/node_modules` of this source tree (pinned to Foundry 1.7.1 by its lockfile).
pub fn anvil_path() -> PathBuf {
    std::env::var_os(ANVIL_PATH_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contracts/node_modules/.bin/anvil")
        })
}

/// How to start a dev chain.
#[derive(Debug, Clone, Default)]
pub struct DevChainOptions {
    /// Seconds between blocks; `None` mines a block for every transaction (automine).
    pub block_time: Option<u64>,
    /// RPC port; `None` lets the OS pick a free one.
    pub port: Option<u16>,
    /// More anvil arguments, for example `--state FILE` to keep the chain across restarts.
    pub args: Vec<String>,
}

/// A running anvil with the contracts deployed. Dropping it stops anvil.
#[derive(Debug)]
pub struct DevChain {
    anvil: AnvilInstance,
    /// Provider that signs with the deployer, anvil's first dev account.
    pub provider: DynProvider,
    /// Where the contracts are.
    pub deployment: Deployment,
    /// A fresh key funded with [`RELAYER_FUNDING_ETH`] ether, for sending `handleOps`.
    pub relayer: PrivateKeySigner,
    /// The SponsorPaymaster, owned by the deployer, with [`PAYMASTER_DEPOSIT_ETH`] ether
    /// deposited at the EntryPoint.
    pub paymaster: Address,
    /// A fresh key the paymaster accepts approvals from.
    pub sponsor_signer: PrivateKeySigner,
    /// The bundler's sample contracts: SimpleAccountFactory and Counter.
    pub samples: BundlerSamples,
}

impl DevChain {
    /// Starts anvil, deploys the contracts and funds a new relayer key.
    pub async fn start(options: DevChainOptions) -> Result<Self, ChainError> {
        let path = anvil_path();
        if !path.exists() {
            return Err(ChainError::AnvilNotInstalled(path));
        }
        let mut anvil = Anvil::at(path);
        if let Some(port) = options.port {
            anvil = anvil.port(port);
        }
        if let Some(block_time) = options.block_time {
            anvil = anvil.block_time(block_time);
        }
        anvil = anvil.args(&options.args);
        let anvil = anvil.try_spawn()?;

        let deployer: PrivateKeySigner = anvil.first_key().clone().into();
        let owner = deployer.address();
        let provider = ProviderBuilder::new()
            .wallet(deployer)
            .connect_http(anvil.endpoint_url())
            .erased();
        let deployment = deploy_all(&provider).await?;
        let samples = deploy_bundler_samples(&provider, deployment.entry_point).await?;

        let relayer = PrivateKeySigner::random();
        let funding: U256 = parse_ether(RELAYER_FUNDING_ETH).expect("constant parses");
        provider
            .anvil_set_balance(relayer.address(), funding)
            .await?;

        let sponsor_signer = PrivateKeySigner::random();
        let paymaster = deploy_paymaster(
            &provider,
            deployment.entry_point,
            owner,
            sponsor_signer.address(),
            parse_ether(PAYMASTER_DEPOSIT_ETH).expect("constant parses"),
        )
        .await?;
        // Staked, as ERC-7562 asks of a paymaster that reads its own storage (its signer)
        // during validation, so the bundler JSON-RPC accepts the operations it sponsors.
        SponsorPaymaster::new(paymaster, &provider)
            .addStake(MIN_UNSTAKE_DELAY_SECS as u32)
            .value(parse_ether(PAYMASTER_STAKE_ETH).expect("constant parses"))
            .send()
            .await?
            .get_receipt()
            .await?;

        Ok(Self {
            anvil,
            provider,
            deployment,
            relayer,
            paymaster,
            sponsor_signer,
            samples,
        })
    }

    /// The HTTP JSON-RPC endpoint.
    pub fn rpc_url(&self) -> Url {
        self.anvil.endpoint_url()
    }

    /// The chain id anvil reports (31337 unless configured otherwise).
    pub fn chain_id(&self) -> u64 {
        self.anvil.chain_id()
    }

    /// The anvil process, for tests that stop the node under a running daemon.
    pub fn node_mut(&mut self) -> &mut std::process::Child {
        self.anvil.child_mut()
    }

    /// anvil's prefunded dev accounts.
    pub fn dev_accounts(&self) -> &[Address] {
        self.anvil.addresses()
    }
}
