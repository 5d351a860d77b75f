//! The `latchkey` binary: `serve` runs the daemon, `dev` the whole local stack.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use latchkey::{
    app::NewPolicy,
    auth::{Scope, TenantId},
    chain::devnet::{DevChain, DevChainOptions, PAYMASTER_DEPOSIT_ETH},
    cli::{
        ClientArgs, admin::AdminArgs, api_key::ApiKeyCommand, contracts::ContractsCommand,
        intent::IntentCommand, keys::KeysCommand, paymaster::PaymasterCommand,
        policy::PolicyCommand, relayer::RelayerCommand, session::SessionCommand,
    },
    config::{AdminConfig, Config, KeysConfig, Overrides},
    daemon::Daemon,
    keys::MasterKey,
    policy::{AccountFunction, ContractFunction, Policy, Rule, SponsorStrategy},
    session::SelectorRule,
};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// latchkey: a self-hosted session-key relayer for ERC-4337 smart accounts.
#[derive(Debug, Parser)]
#[command(name = "latchkey", version, about)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "LATCHKEY_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: the gRPC API and the relay, against a configured chain.
    Serve {
        /// TOML configuration file (see deploy/latchkey.example.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Address to serve gRPC on; overrides the file and LATCHKEY_LISTEN.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Directory of the sled store; overrides the file and LATCHKEY_DATA_DIR.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Chain JSON-RPC endpoint; overrides the file and LATCHKEY_RPC_URL.
        #[arg(long)]
        rpc_url: Option<String>,
    },
    /// Measure: start anvil and the daemon, register sessions on fresh accounts, drive mint
    /// intents through gRPC, and report throughput, latency, bundling, gas and memory.
    Bench {
        /// Player accounts, each with one HELD session key.
        #[arg(long, default_value_t = 20)]
        accounts: usize,
        /// Intents in all.
        #[arg(long, default_value_t = 1_000)]
        intents: usize,
        /// Intents in creation at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Intents per second to aim for; as fast as possible when absent.
        #[arg(long)]
        rate: Option<f64>,
        /// anvil's block time in seconds; automine when absent.
        #[arg(long)]
        block_time: Option<u64>,
        /// Relayer keys the daemon gets.
        #[arg(long, default_value_t = 1)]
        relayers: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Sessions and intents name a policy and the dev paymaster pays, instead of the
        /// accounts.
        #[arg(long)]
        sponsored: bool,
    },
    /// Run the local stack: the project's anvil, the contracts deployed, a funded relayer,
    /// and the daemon with a fresh sled store.
    Dev {
        /// Address to serve gRPC on.
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: SocketAddr,
        /// Port for anvil's JSON-RPC.
        #[arg(long, default_value_t = 8545)]
        anvil_port: u16,
        /// Seconds between blocks; without it anvil mines a block per transaction.
        #[arg(long)]
        block_time: Option<u64>,
        /// Directory of the sled store; wiped at start, since the chain is new.
        #[arg(long, default_value = "target/latchkey-dev")]
        data_dir: PathBuf,
        /// Address to serve Prometheus metrics on.
        #[arg(long, default_value = "127.0.0.1:9464")]
        metrics_listen: SocketAddr,
        /// Address to serve the admin service on.
        #[arg(long, default_value = "127.0.0.1:50052")]
        admin_listen: SocketAddr,
        /// The admin token; a random one is made (and printed) when absent.
        #[arg(long, env = "LATCHKEY_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
        /// Where to write the shell exports that reach the stack (endpoints, the dev API
        /// key, the admin token): `. target/latchkey-dev.env` in another shell.
        #[arg(long, default_value = "target/latchkey-dev.env")]
        env_file: PathBuf,
    },
    /// The daemon's status: version, uptime, the chain's head and the relay's lag, each
    /// relayer's balance, nonce and bundles in flight, the queue, and intents by status.
    ///
    /// Operator commands (status, session, intent, relayer, api-key) talk to the admin
    /// service with the admin token or an ADMIN key. Exit codes: 0 done; 1 the daemon refused or could not be reached (the
    /// message says which); 2 bad command line; `intent watch` adds 3: the intent ended
    /// other than CONFIRMED.
    Status {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Sessions on a running daemon: list them, show one, revoke one.
    Session {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: SessionCommand,
    },
    /// Transaction intents on a running daemon: list them, show one, watch one to its end.
    Intent {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: IntentCommand,
    },
    /// The relayer accounts: list them, fund them; pause and resume relaying.
    Relayer {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: RelayerCommand,
    },
    /// API keys on a running daemon: create (the key is shown once), list, revoke. Each
    /// key acts for one tenant, with READ, WRITE and ADMIN scopes.
    ApiKey {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Manage gas sponsorship policies on a running daemon: create, list, show, disable.
    Policy {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The paymaster a running daemon sponsors through: its deposit, and topping it up.
    Paymaster {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: PaymasterCommand,
    },
    /// latchkey's contracts on a chain: the EntryPoint where it is missing, the account
    /// factory and the paymaster.
    Contracts {
        #[command(subcommand)]
        command: ContractsCommand,
    },
    /// The master key that seals held session keys in the store: generate one, or move
    /// every held key to a new one.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The configuration, as `latchkey serve` would load it.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Load the configuration (file, then LATCHKEY_* variables) and check every field, then
    /// the chain: it answers, the EntryPoint and factory have code, the paymaster accepts the
    /// approving key, and each relayer holds ETH. Opens no store and binds no port.
    ///
    /// Exit codes: 0 every check passed; 1 a check against the chain failed; 2 bad
    /// command line; 3 the configuration cannot be loaded or a field is invalid.
    Check {
        /// TOML configuration file (see deploy/latchkey.example.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Check the configuration only, not the chain.
        #[arg(long)]
        offline: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format);

    match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
            rpc_url,
        } => {
            let overrides = Overrides {
                listen,
                data_dir,
                rpc_url,
            };
            let config = Config::load(
                config.as_deref(),
                |name| std::env::var(name).ok(),
                &overrides,
            )?;
            let daemon = Daemon::start(&config).await?;
            daemon.run(shutdown_on_signal()).await?;
        }
        Command::Bench {
            accounts,
            intents,
            concurrency,
            rate,
            block_time,
            relayers,
            json,
            sponsored,
        } => {
            let options = latchkey::cli::bench::BenchOptions {
                accounts,
                intents,
                concurrency,
                rate,
                block_time,
                relayers,
                sponsored,
            };
            let report = latchkey::cli::bench::run(options).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", latchkey::cli::bench::render(&report));
            }
        }
        Command::Dev {
            listen,
            anvil_port,
            block_time,
            data_dir,
            metrics_listen,
            admin_listen,
            admin_token,
            env_file,
        } => {
            // 32 bytes from the OS random source, as hex.
            let token = admin_token.unwrap_or_else(|| {
                alloy::hex::encode(alloy::signers::local::PrivateKeySigner::random().to_bytes())
            });
            let config = Config {
                listen,
                data_dir,
                metrics_listen: Some(metrics_listen),
                admin: AdminConfig {
                    listen: admin_listen,
                    token: Some(token),
                },
                // The dev store is wiped at every start, so a new master key each time
                // loses nothing.
                keys: KeysConfig {
                    master_key: Some(MasterKey::generate().to_hex().to_string()),
                    master_key_file: None,
                },
                ..Config::default()
            };
            dev(
                config,
                DevOptions {
                    anvil_port,
                    block_time,
                    env_file,
                },
                shutdown_on_signal(),
            )
            .await?;
        }
        Command::Status { admin } => exit_with(latchkey::cli::status::run(admin).await),
        Command::Session { admin, command } => {
            exit_with(latchkey::cli::session::run(admin, command).await);
        }
        Command::Intent { admin, command } => {
            exit_with(latchkey::cli::intent::run(admin, command).await);
        }
        Command::Relayer { admin, command } => {
            exit_with(latchkey::cli::relayer::run(admin, command).await);
        }
        Command::ApiKey { admin, command } => {
            exit_with(latchkey::cli::api_key::run(admin, command).await);
        }
        Command::Policy { client, command } => {
            exit_on_error(latchkey::cli::policy::run(client, command).await);
        }
        Command::Paymaster { client, command } => {
            exit_on_error(latchkey::cli::paymaster::run(client, command).await);
        }
        Command::Keys { command } => {
            exit_on_error(latchkey::cli::keys::run(command).await);
        }
        Command::Contracts { command } => {
            exit_on_error(latchkey::cli::contracts::run(command).await);
        }
        Command::Config {
            command:
                ConfigCommand::Check {
                    config,
                    offline,
                    json,
                },
        } => config_check(config, offline, json).await?,
    }
    Ok(())
}

/// Ends a client command that failed with `error: <cause>` on stderr and exit code 1, the
/// way clap reports usage errors (with 2); a gRPC failure reads `error: CODE: message`.
fn exit_on_error(result: anyhow::Result<()>) {
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

/// Ends an operator command with the exit code it chose, or with `error: <cause>` on
/// stderr and exit code 1.
fn exit_with(result: anyhow::Result<i32>) {
    match result {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(1);
        }
    }
}

/// Runs `latchkey config check` and exits with its documented code.
async fn config_check(config: Option<PathBuf>, offline: bool, json: bool) -> anyhow::Result<()> {
    use latchkey::cli::config_check::{EXIT_CHECK_FAILED, EXIT_INVALID_CONFIG, run};
    match run(config.as_deref(), offline).await {
        Ok(report) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render());
            }
            if !report.ok {
                std::process::exit(EXIT_CHECK_FAILED);
            }
            Ok(())
        }
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(EXIT_INVALID_CONFIG);
        }
    }
}

/// What `latchkey dev` sets up besides the daemon's own config.
struct DevOptions {
    anvil_port: u16,
    block_time: Option<u64>,
    env_file: PathBuf,
}

/// The tenant of the dev stack's API key and policy.
const DEV_TENANT: &str = "dev";

/// Runs the local stack: `config` gives the daemon's addresses and store; the chain's
/// settings are filled in here.
async fn dev(
    mut config: Config,
    options: DevOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let chain = DevChain::start(DevChainOptions {
        block_time: options.block_time,
        port: Some(options.anvil_port),
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
    config.sponsor.paymaster = Some(chain.paymaster);
    config.sponsor.signer_private_key = Some(format!(
        "0x{}",
        alloy::hex::encode(chain.sponsor_signer.to_bytes())
    ));
    let daemon = Daemon::start(&config).await?;
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
            "latchkey dev".to_owned(),
        )
        .await
        .context("creating the dev API key")?;
    let addr = daemon.local_addr()?;
    let exports = DevExports {
        endpoint: format!("http://{addr}"),
        api_key: api_key.token.as_str(),
        policy: policy.policy.id.resource_name(),
        admin: daemon
            .admin_addr()
            .map(|admin| format!("http://{admin}"))
            .zip(config.admin.token.as_deref()),
    };
    write_dev_env(&options.env_file, &exports)?;
    print_dev_banner(
        &chain,
        addr,
        daemon.metrics_addr(),
        &exports,
        &options.env_file,
        &policy.policy,
    );
    daemon.run(shutdown).await?;
    Ok(())
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
        ];
        if let Some((endpoint, token)) = &self.admin {
            lines.push(format!("export LATCHKEY_ADMIN_ENDPOINT={endpoint}"));
            lines.push(format!("export LATCHKEY_ADMIN_TOKEN={token}"));
        }
        lines
    }
}

/// Writes the exports to `path`, readable by the user alone: it holds credentials (of a
/// throwaway dev stack, but a habit worth keeping).
fn write_dev_env(path: &std::path::Path, exports: &DevExports<'_>) -> anyhow::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)?;
    }
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(
        file,
        "# latchkey dev: `. {}` to reach the running dev stack.",
        path.display()
    )?;
    for line in exports.lines() {
        writeln!(file, "{line}")?;
    }
    Ok(())
}

fn print_dev_banner(
    chain: &DevChain,
    addr: SocketAddr,
    metrics: Option<SocketAddr>,
    exports: &DevExports<'_>,
    env_file: &std::path::Path,
    policy: &Policy,
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
    println!("  relayer     {} (funded)", chain.relayer.address());
    println!(
        "  paymaster   {} ({} ETH deposited)",
        chain.paymaster, PAYMASTER_DEPOSIT_ETH
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

/// The log filter when `RUST_LOG` is unset: latchkey's own records at info (state changes,
/// warnings, errors), and the node client's per-request spans left out, since they would
/// log every JSON-RPC call the relay makes, several a second while idle.
const DEFAULT_LOG_FILTER: &str = "info,alloy_transport_http=warn,alloy_rpc_client=warn";

fn init_tracing(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    // Colours only for a person at a terminal, never into a file or the journal.
    // A span's close is logged, with how long it was open: for an intent's span, the time
    // from its request to its end.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// A token cancelled on SIGINT or SIGTERM, for the commands that stop gracefully; every
/// other command keeps the default, where Ctrl-C ends it at once.
fn shutdown_on_signal() -> CancellationToken {
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    shutdown
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn cancel_on_signal(shutdown: CancellationToken) {
    latchkey::cli::interrupted().await;
    tracing::info!(target: "daemon", "shutdown requested");
    shutdown.cancel();
}
