//! The `latchkey` binary: `serve` runs the daemon, `dev` the whole local stack.

use clap::{Parser, Subcommand, ValueEnum};
use latchkey::{
    cli::{
        ClientArgs, api_key::ApiKeyCommand, bench::BenchOptions, config_check::CheckArgs,
        contracts::ContractsCommand, dev::DevArgs, intent::IntentCommand, keys::KeysCommand,
        paymaster::PaymasterCommand, policy::PolicyCommand, relayer::RelayerCommand,
        session::SessionCommand,
    },
    config::{Config, ConfigArgs},
    daemon::Daemon,
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
    ///
    /// The configuration comes from defaults, then the file, then LATCHKEY_* variables, then
    /// flags: each flag below beats its variable, and both beat the file.
    Serve(ConfigArgs),
    /// Measure: start anvil and the daemon, register sessions on fresh accounts, drive mint
    /// intents through gRPC, and report throughput, latency, bundling, gas and memory.
    Bench {
        #[command(flatten)]
        options: BenchOptions,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the local stack: the project's anvil, the contracts deployed, a funded relayer,
    /// and the daemon with a fresh sled store.
    Dev(DevArgs),
    /// The daemon's status: version, uptime, the chain's head and the relay's lag, each
    /// relayer's balance, nonce and bundles in flight, the queue, and intents by status.
    ///
    /// Operator commands (status, session, intent, relayer, api-key) talk to the admin
    /// service with the admin token or an ADMIN key. Exit codes: 0 done; 1 the daemon refused or could not be reached (the
    /// message says which); 2 bad command line; `intent watch` adds 3: the intent ended
    /// other than CONFIRMED.
    Status {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Sessions on a running daemon: list them, show one, revoke one.
    Session {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: SessionCommand,
    },
    /// Transaction intents on a running daemon: list them, show one, watch one to its end.
    Intent {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: IntentCommand,
    },
    /// The relayer accounts: list them, fund them; pause and resume relaying.
    Relayer {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: RelayerCommand,
    },
    /// API keys on a running daemon: create (the key is shown once), list, revoke. Each
    /// key acts for one tenant, with READ, WRITE and ADMIN scopes.
    ApiKey {
        #[command(flatten)]
        client: ClientArgs,
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
    /// Load the configuration as `serve` does (file, then LATCHKEY_* variables, then flags)
    /// and check every field, then the chain: it answers, the EntryPoint and factory have
    /// code, the paymaster accepts the approving key, and each relayer holds ETH. Opens no
    /// store and binds no port.
    ///
    /// Exit codes: 0 every check passed; 1 a check against the chain failed; 2 bad
    /// command line; 3 the configuration cannot be loaded or a field is invalid.
    Check(CheckArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format);

    // The daemon, the stack, the benchmark and the configuration check end through `main`;
    // every client command ends in `exit_with`, with the exit code it chose (0 for one
    // that only succeeds or fails).
    let outcome = match cli.command {
        Command::Serve(args) => {
            let settings = Config::load(args)?.validate()?;
            let daemon = Daemon::start(settings).await?;
            daemon.run(shutdown_on_signal()).await?;
            return Ok(());
        }
        Command::Bench { options, json } => return latchkey::cli::bench::main(options, json).await,
        Command::Dev(args) => return latchkey::cli::dev::run(args, shutdown_on_signal()).await,
        Command::Config {
            command: ConfigCommand::Check(args),
        } => return latchkey::cli::config_check::main(args).await,
        Command::Status { client } => latchkey::cli::status::run(client).await,
        Command::Session { client, command } => latchkey::cli::session::run(client, command).await,
        Command::Intent { client, command } => latchkey::cli::intent::run(client, command).await,
        Command::Relayer { client, command } => latchkey::cli::relayer::run(client, command).await,
        Command::ApiKey { client, command } => latchkey::cli::api_key::run(client, command).await,
        Command::Policy { client, command } => latchkey::cli::policy::run(client, command)
            .await
            .map(|()| 0),
        Command::Paymaster { client, command } => latchkey::cli::paymaster::run(client, command)
            .await
            .map(|()| 0),
        Command::Keys { command } => latchkey::cli::keys::run(command).await.map(|()| 0),
        Command::Contracts { command } => latchkey::cli::contracts::run(command).await.map(|()| 0),
    };
    exit_with(outcome);
    Ok(())
}

/// Ends a client command with the exit code it chose, or, when it failed, with
/// `error: <cause>` on stderr and exit code 1, the way clap reports usage errors (with 2);
/// a gRPC failure reads `error: CODE: message`.
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
