//! `latchkey dev`: the whole local stack in one command. The project's anvil with the
//! contracts deployed, a funded relayer and paymaster, and the daemon on a fresh store, with
//! an API key, a sponsorship policy and the admin token written where a shell can source
//! them.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::replace_file;
use crate::{
    app::NewPolicy,
    auth::{ClientAccess, Scope, TenantId},
    chain::devnet::{DevChain, DevChainOptions, PAYMASTER_DEPOSIT_ETH, PAYMASTER_STAKE_ETH},
    config::{AdminConfig, Config, KeysConfig},
    daemon::Daemon,
    keys::MasterKey,
    policy::{AccountFunction, ContractFunction, Policy, Rule, SponsorStrategy},
    session::SelectorRule,
};

/// Where the local stack serves, and how its chain runs.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Address to serve gRPC on.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Port for anvil's JSON-RPC.
    #[arg(long, default_value_t = 8545)]
    pub anvil_port: u16,
    /// Seconds between blocks; without it anvil mines a block per transaction.
    #[arg(long)]
    pub block_time: Option<u64>,
    /// Directory of the sled store; wiped at start, since the chain is new.
    #[arg(long, default_value = "target/latchkey-dev")]
    pub data_dir: PathBuf,
    /// Address to serve Prometheus metrics on.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_listen: SocketAddr,
    /// Address to serve the admin service on.
    #[arg(long, default_value = "127.0.0.1:50052")]
    pub admin_listen: SocketAddr,
    /// Address to serve the bundler JSON-RPC on (ERC-7769), open to the dev tenant without
    /// an API key.
    #[arg(long, default_value = "127.0.0.1:4337")]
    pub jsonrpc_listen: SocketAddr,
    /// The admin token; a random one is made (and printed) when absent.
    #[arg(long, env = "LATCHKEY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Where to write the shell exports that reach the stack (endpoints, the dev API
    /// key, the admin token): `. target/latchkey-dev.env` in another shell.
    #[arg(long, default_value = "target/latchkey-dev.env")]
    pub env_file: PathBuf,
    /// The web example to serve (`node <DIR>/server.mjs`): a page where a player with a
    /// passkey mints items from the browser. Skipped when the directory has no server.mjs.
    #[arg(long, default_value = "examples/web")]
    pub web_dir: PathBuf,
    /// Address the web example serves on; the page is at `http://localhost:<port>`, an origin
    /// the API's CORS allowlist lets in.
    #[arg(long, default_value = "127.0.0.1:5173")]
    pub web_listen: SocketAddr,
    /// Serve no web example.
    #[arg(long)]
    pub no_web: bool,
}

/// The tenant of the dev stack's API key and policy.
const DEV_TENANT: &str = "dev";

/// Runs the local stack until `shutdown`.
pub async fn run(args: DevArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    // 32 bytes from the OS random source, as hex.
    let token = args.admin_token.unwrap_or_else(|| {
        alloy::hex::encode(alloy::signers::local::PrivateKeySigner::random().to_bytes())
    });
    let mut config = Config {
        listen: args.listen,
        data_dir: args.data_dir,
        metrics_listen: Some(args.metrics_listen),
        admin: AdminConfig {
            listen: args.admin_listen,
            token: Some(token.clone()),
        },
        // The dev store is wiped at every start, so a new master key each time loses
        // nothing.
        keys: KeysConfig {
            master_key: Some(MasterKey::generate().to_hex().to_string()),
            master_key_file: None,
        },
        ..Config::default()
    };
    let chain = DevChain::start(DevChainOptions {
        block_time: args.block_time,
        port: Some(args.anvil_port),
        args: Vec::new(),
    })
    .await
    .context("starting anvil and deploying the contracts")?;
    if config.data_dir.exists() {
        std::fs::remove_dir_all(&config.data_dir)
            .with_context(|| format!("wiping the dev store {}", config.data_dir.display()))?;
    }
    config.chain.rpc_url = chain.rpc_url().to_string();
    config.chain.entry_point = chain.deployment.entry_point;
    config.chain.factory = Some(chain.deployment.factory);
    config.relayer.private_key = Some(format!(
        "0x{}",
        alloy::hex::encode(chain.relayer.to_bytes())
    ));
    config.jsonrpc.listen = Some(args.jsonrpc_listen);
    config.jsonrpc.open_tenant = Some(DEV_TENANT.to_owned());
    config.sponsor.paymaster = Some(chain.paymaster);
    config.sponsor.signer_private_key = Some(format!(
        "0x{}",
        alloy::hex::encode(chain.sponsor_signer.to_bytes())
    ));
    let web = (!args.no_web && args.web_dir.join(WEB_SERVER).is_file()).then_some(&args.web_dir);
    if web.is_some() {
        let port = args.web_listen.port();
        config.api.cors_allowed_origins = vec![
            format!("http://localhost:{port}"),
            format!("http://127.0.0.1:{port}"),
        ];
    }
    let daemon = Daemon::start(config.validate()?).await?;
    let tenant = TenantId::parse(DEV_TENANT).map_err(anyhow::Error::msg)?;
    let policy = daemon
        .app()
        .create_policy(dev_policy(tenant.clone()))
        .await
        .context("creating the default sponsorship policy")?;
    let api_key = daemon
        .app()
        .create_api_key(
            tenant,
            [Scope::Read, Scope::Write].into_iter().collect(),
            ClientAccess::ReadWrite,
            "latchkey dev".to_owned(),
        )
        .await
        .context("creating the dev API key")?;
    let addr = daemon.local_addr()?;
    let exports = DevExports {
        endpoint: format!("http://{addr}"),
        bundler: daemon
            .jsonrpc_addr()
            .map(|bundler| format!("http://{bundler}")),
        samples: chain.samples,
        api_key: api_key.token.as_str(),
        policy: policy.policy.id.resource_name(),
        admin: daemon
            .admin_addr()
            .map(|admin| format!("http://{admin}"))
            .map(|admin| (admin, token.as_str())),
    };
    write_dev_env(&args.env_file, &exports)?;
    // Held until the stack stops: dropping it stops the example's server.
    let _web_server = match web {
        Some(dir) => Some(start_web_example(dir, args.web_listen, &exports, &chain)?),
        None => None,
    };
    print_dev_banner(
        &chain,
        addr,
        daemon.metrics_addr(),
        &exports,
        &args.env_file,
        &policy.policy,
        web.map(|_| args.web_listen.port()),
    );
    daemon.run(shutdown).await?;
    Ok(())
}

/// The web example's server, in the example's directory.
const WEB_SERVER: &str = "server.mjs";

/// Starts the web example's server (Node.js) on `listen`, with what it needs to reach the
/// stack in its environment: the endpoint, the dev API key (the example's stand-in for a
/// game's backend holds it, never the page), the policy and the GameItems contract.
fn start_web_example(
    dir: &Path,
    listen: SocketAddr,
    exports: &DevExports<'_>,
    chain: &DevChain,
) -> anyhow::Result<tokio::process::Child> {
    tokio::process::Command::new("node")
        .arg(WEB_SERVER)
        .current_dir(dir)
        .env("LATCHKEY_ENDPOINT", &exports.endpoint)
        .env("LATCHKEY_API_KEY", exports.api_key)
        .env("LATCHKEY_DEV_POLICY", &exports.policy)
        .env(
            "LATCHKEY_GAME_ITEMS",
            chain.deployment.game_items.to_string(),
        )
        .env("LATCHKEY_CHAIN_ID", chain.chain_id().to_string())
        .env("LATCHKEY_CHAIN_RPC", chain.rpc_url().to_string())
        .env("WEB_LISTEN", listen.to_string())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "starting the web example ({}/{WEB_SERVER}) with node; pass --no-web to skip it",
                dir.display()
            )
        })
}

/// The dev stack's sponsorship policy: the paymaster pays for every operation of every
/// session that names it, up to 3M gas each and 10 ETH a day, so players need no ETH.
fn dev_policy(tenant: TenantId) -> NewPolicy {
    NewPolicy {
        tenant,
        name: "dev default".to_owned(),
        chain_id: None,
        strategy: SponsorStrategy::PayForUser,
        rules: vec![
            Rule::AccountFunctions(vec![
                AccountFunction::RegisterSession,
                AccountFunction::RevokeSession,
                AccountFunction::DeployAccount,
            ]),
            Rule::ContractFunctions(vec![ContractFunction {
                contract: None,
                selector: SelectorRule::Any,
                function: "*".to_owned(),
            }]),
            Rule::GasPerOperation { max_gas: 3_000_000 },
            Rule::SpendPerInterval {
                max_wei: 10 * 10u128.pow(18),
                interval_secs: 24 * 3600,
            },
        ],
    }
}

/// What a shell needs to reach the dev stack.
struct DevExports<'a> {
    endpoint: String,
    /// The bundler JSON-RPC's URL, when it is served.
    bundler: Option<String>,
    /// The SimpleAccountFactory and Counter the bundler's examples use.
    samples: crate::chain::deploy::BundlerSamples,
    api_key: &'a str,
    /// The dev sponsorship policy's resource name.
    policy: String,
    /// The admin endpoint and token, when the admin service is served.
    admin: Option<(String, &'a str)>,
}

impl DevExports<'_> {
    fn lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!("export LATCHKEY_ENDPOINT={}", self.endpoint),
            format!("export LATCHKEY_API_KEY={}", self.api_key),
            format!("export LATCHKEY_DEV_POLICY={}", self.policy),
            format!(
                "export LATCHKEY_SIMPLE_ACCOUNT_FACTORY={}",
                self.samples.simple_account_factory
            ),
            format!("export LATCHKEY_COUNTER={}", self.samples.counter),
        ];
        if let Some(bundler) = &self.bundler {
            lines.push(format!("export LATCHKEY_BUNDLER_URL={bundler}"));
        }
        if let Some((endpoint, token)) = &self.admin {
            lines.push(format!("export LATCHKEY_ADMIN_ENDPOINT={endpoint}"));
            lines.push(format!("export LATCHKEY_ADMIN_TOKEN={token}"));
        }
        lines
    }
}

/// Writes the exports to `path`, readable by the user alone: it holds credentials (of a
/// throwaway dev stack, but a habit worth keeping).
fn write_dev_env(path: &Path, exports: &DevExports<'_>) -> anyhow::Result<()> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)?;
    }
    let mut text = format!(
        "# latchkey dev: `. {}` to reach the running dev stack.\n",
        path.display()
    );
    for line in exports.lines() {
        text.push_str(&line);
        text.push('\n');
    }
    replace_file(path, &text, 0o600).with_context(|| format!("writing {}", path.display()))
}

fn print_dev_banner(
    chain: &DevChain,
    addr: SocketAddr,
    metrics: Option<SocketAddr>,
    exports: &DevExports<'_>,
    env_file: &Path,
    policy: &Policy,
    web_port: Option<u16>,
) {
    let deployment = chain.deployment;
    let owner = chain.dev_accounts().get(1).copied().unwrap_or_default();
    println!("latchkey dev stack is up (Ctrl-C stops it)");
    println!(
        "  chain       {} (chain id {})",
        chain.rpc_url(),
        chain.chain_id()
    );
    println!("  EntryPoint  {}", deployment.entry_point);
    println!("  factory     {}", deployment.factory);
    println!("  GameItems   {}", deployment.game_items);
    println!("  GameGold    {}", deployment.game_gold);
    println!("  relayer     {} (funded)", chain.relayer.address());
    println!(
        "  paymaster   {} ({} ETH deposited, {} ETH staked)",
        chain.paymaster, PAYMASTER_DEPOSIT_ETH, PAYMASTER_STAKE_ETH
    );
    println!(
        "  policy      policies/{} ({:?}: sponsors every operation)",
        policy.id, policy.name
    );
    println!("  tenant      {DEV_TENANT} (its API key reads and writes)");
    if let Some(metrics) = metrics {
        println!("  metrics     http://{metrics}/metrics");
    }
    println!("  gRPC        {addr} (health and reflection on; every call needs the API key)");
    if let Some((admin_endpoint, _)) = &exports.admin {
        println!("  admin       {admin_endpoint}");
    }
    if let Some(bundler) = &exports.bundler {
        println!(
            "  bundler     {bundler} (ERC-7769 JSON-RPC, open to the {DEV_TENANT} tenant;              SimpleAccountFactory {}, Counter {})",
            exports.samples.simple_account_factory, exports.samples.counter
        );
    }
    if let Some(port) = web_port {
        println!(
            "  web example http://localhost:{port} (a passkey player minting from the browser; \
             gRPC-web on {addr})"
        );
    }
    println!();
    println!(
        "The endpoints, the API key and the admin token, for the CLI and the calls below \
         (`. {}` in another shell):",
        env_file.display()
    );
    for line in exports.lines() {
        println!("  {line}");
    }
    println!();
    println!("First call: the account of anvil's dev account #1, salt 0:");
    println!(
        "  contracts/node_modules/@bufbuild/buf-linux-x64/bin/buf curl --protocol grpc --http2-prior-knowledge \\\n    -H \"Authorization: Bearer $LATCHKEY_API_KEY\" \\\n    --data '{{\"owner\":\"{owner}\",\"salt\":\"0\"}}' \\\n    http://{addr}/latchkey.v1.AccountService/ComputeAccountAddress"
    );
}
