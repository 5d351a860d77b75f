//! `latchkey contracts deploy`: puts latchkey's contracts on any chain through the CREATE2
//! deployer, so that each lands at the same address everywhere and a second run sends
//! nothing. It checks the chain before it sends anything, reports each step on stderr, and
//! can write the config fragment `latchkey serve` needs to find what it deployed.

use std::{
    collections::BTreeMap,
    future::Future,
    io::IsTerminal,
    path::{Path, PathBuf},
    time::Duration,
};

use alloy::{
    primitives::{Address, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::client::RpcClient,
    transports::http::{Http, reqwest},
};
use anyhow::{Context, bail, ensure};
use serde::Serialize;

use super::{
    Secret, format_eth, interrupted, parse_wei, print_output, spinner, table, wei_with_eth,
};
use crate::chain::{
    contracts::{CREATE2_DEPLOYER, ENTRY_POINT_V08, EntryPoint, SponsorPaymaster},
    deploy::{Create2Contract, Placed, Placement, TopUp, ensure_deployed, top_up_deposit},
};

/// What `latchkey contracts` does.
#[derive(Debug, clap::Subcommand)]
pub enum ContractsCommand {
    /// Deploy latchkey's contracts where they are missing: EntryPoint v0.8 at its canonical
    /// address, the SessionKeyAccountFactory, and the SponsorPaymaster with its EntryPoint
    /// deposit topped up. Each goes through the CREATE2 deployer
    /// (0x4e59b44847b379578588920cA78FbF26c0B4956C), so its address is the same on every
    /// chain; whatever is already there is left alone, and a second run sends nothing.
    ///
    /// It checks first that the chain answers, that the CREATE2 deployer is there and that
    /// the deployer key holds enough ETH. Progress goes to stderr; the result, a table or
    /// JSON, to stdout.
    ///
    /// Exit codes: 0 every contract deployed or already there; 1 failed (nothing is lost:
    /// run it again to finish); 2 bad command line.
    Deploy(DeployArgs),
}

/// The arguments of `latchkey contracts deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The chain's JSON-RPC endpoint.
    #[arg(long, value_name = "URL")]
    pub rpc_url: url::Url,
    /// The deployer's private key, 0x-prefixed hex: it sends every transaction and pays for
    /// the gas and the deposit. Prefer LATCHKEY_DEPLOYER_PRIVATE_KEY: other users of the
    /// machine can read a command line in the process list.
    #[arg(
        long,
        env = "LATCHKEY_DEPLOYER_PRIVATE_KEY",
        hide_env_values = true,
        value_name = "KEY",
        required = true
    )]
    pub private_key: Option<Secret>,
    /// The address whose signatures the paymaster accepts as sponsorship approvals: the
    /// daemon's LATCHKEY_SPONSOR_SIGNER_KEY. Required unless --no-paymaster.
    #[arg(long, value_name = "ADDR", required_unless_present = "no_paymaster")]
    pub paymaster_signer: Option<Address>,
    /// The paymaster's owner, who can withdraw its deposit and change its signer; the
    /// deployer's address when absent.
    #[arg(long, value_name = "ADDR")]
    pub paymaster_owner: Option<Address>,
    /// Top the paymaster's EntryPoint deposit up to at least this amount: wei, or a decimal
    /// with an `ether` or `gwei` suffix (`0.5ether`). A deposit that holds as much already is
    /// left alone.
    #[arg(long, value_name = "WEI|Nether", value_parser = parse_wei, default_value = "0")]
    pub deposit: u128,
    /// Deploy no paymaster: the daemon then runs without sponsorship.
    #[arg(long, conflicts_with_all = ["paymaster_signer", "paymaster_owner", "deposit"])]
    pub no_paymaster: bool,
    /// Also deploy the example game contracts that the local stack and the walkthrough use:
    /// GameItems (ERC-1155 items) and GameGold (an ERC-20 currency).
    #[arg(long)]
    pub example_contracts: bool,
    /// Also write a latchkey config file naming the chain and the contracts, which
    /// `latchkey serve --config FILE` reads as it is; the keys then come from
    /// LATCHKEY_RELAYER_PRIVATE_KEY and LATCHKEY_SPONSOR_SIGNER_KEY. Replaced atomically.
    #[arg(long, value_name = "FILE")]
    pub config_out: Option<PathBuf>,
    /// The RPC URL to write in --config-out, when the daemon reaches the chain by another
    /// URL than this command does; --rpc-url when absent.
    #[arg(long, value_name = "URL", requires = "config_out")]
    pub config_rpc_url: Option<url::Url>,
    /// Print the result as JSON instead of a table; wei and gas as decimal strings.
    #[arg(long)]
    pub json: bool,
}

/// Runs `command`. Ctrl-C or SIGTERM stops it with an error; a transaction already sent
/// may still land, and running the command again finishes the job.
pub async fn run(command: ContractsCommand) -> anyhow::Result<()> {
    match command {
        ContractsCommand::Deploy(args) => tokio::select! {
            result = deploy(args) => result,
            () = interrupted() => bail!(
                "interrupted; a transaction already sent may still be mined: run the same \
                 command again to finish, it skips whatever is deployed"
            ),
        },
    }
}

/// Requests per JSON-RPC call may take this long before the command gives up on the node.
const RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// The keyless account that deploys the CREATE2 deployer on any chain, from a presigned
/// transaction made before any key existed.
const CREATE2_DEPLOYER_SIGNER: &str = "0x3fab184622dc19b6109349b94811493bf2a45362";

/// That presigned transaction (pre-EIP-155, 100 gwei × 100,000 gas, so the signer needs
/// 0.01 ETH for its gas). Broadcasting it puts the deployer at [`CREATE2_DEPLOYER`].
const CREATE2_DEPLOYER_TX: &str = concat!(
    "0xf8a58085174876e800830186a08080b853604580600e600039806000f350fe7fffffffffffffff",
    "ffffffffffffffffffffffffffffffffffffffffffffffffe03601600081602082378035828234f5",
    "8015156039578182fd5b8082525050506014600cf31ba02222222222222222222222222222222222",
    "222222222222222222222222222222a0222222222222222222222222222222222222222222222222",
    "2222222222222222",
);

/// One of latchkey's contracts, in the order they are deployed: each may need the one
/// before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    EntryPoint,
    Factory,
    Paymaster,
    GameItems,
    GameGold,
}

impl Item {
    /// Its name in the table and in progress lines.
    fn label(self) -> &'static str {
        match self {
            Self::EntryPoint => "EntryPoint v0.8",
            Self::Factory => "SessionKeyAccountFactory",
            Self::Paymaster => "SponsorPaymaster",
            Self::GameItems => "GameItems",
            Self::GameGold => "GameGold",
        }
    }

    /// Its key in the JSON output, as the config names it.
    fn key(self) -> &'static str {
        match self {
            Self::EntryPoint => "entry_point",
            Self::Factory => "factory",
            Self::Paymaster => "paymaster",
            Self::GameItems => "game_items",
            Self::GameGold => "game_gold",
        }
    }

    /// Most gas its deployment uses: what it used on anvil 1.7.1, plus a quarter. The
    /// balance check counts with these before anything is sent.
    fn gas_budget(self) -> u64 {
        match self {
            Self::EntryPoint => 6_300_000,
            Self::Factory => 3_600_000,
            Self::Paymaster => 1_550_000,
            Self::GameItems => 1_550_000,
            Self::GameGold => 1_550_000,
        }
    }
}

/// Gas a `depositTo` uses at most.
const DEPOSIT_GAS_BUDGET: u64 = 100_000;

/// What a run deploys: the contracts in order, and the paymaster's deposit target.
struct Plan {
    contracts: Vec<(Item, Create2Contract)>,
    /// The paymaster's owner and approving signer, and the deposit it should hold (wei).
    paymaster: Option<(Address, Address, u128)>,
}

impl Plan {
    fn new(args: &DeployArgs, deployer: Address) -> Self {
        let mut contracts = vec![
            (Item::EntryPoint, Create2Contract::entry_point()),
            (Item::Factory, Create2Contract::factory(ENTRY_POINT_V08)),
        ];
        let paymaster = args.paymaster_signer.map(|signer| {
            let owner = args.paymaster_owner.unwrap_or(deployer);
            contracts.push((
                Item::Paymaster,
                Create2Contract::paymaster(ENTRY_POINT_V08, owner, signer),
            ));
            (owner, signer, args.deposit)
        });
        if args.example_contracts {
            contracts.push((Item::GameItems, Create2Contract::game_items()));
            contracts.push((Item::GameGold, Create2Contract::game_gold()));
        }
        Self {
            contracts,
            paymaster,
        }
    }

    /// Steps shown in progress: one a contract, and one for the deposit.
    fn steps(&self) -> usize {
        self.contracts.len() + usize::from(self.paymaster.is_some())
    }

    fn address(&self, item: Item) -> Option<Address> {
        self.contracts
            .iter()
            .find(|(known, _)| *known == item)
            .map(|(_, contract)| contract.address())
    }
}

async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let signer = args
        .private_key
        .as_ref()
        .context("no deployer key: set LATCHKEY_DEPLOYER_PRIVATE_KEY or pass --private-key")?
        .signer("the deployer private key (--private-key or LATCHKEY_DEPLOYER_PRIVATE_KEY)")?;
    let deployer = signer.address();
    let shown_url = shown_url(&args.rpc_url);
    let http = reqwest::Client::builder()
        .timeout(RPC_TIMEOUT)
        .build()
        .context("building the HTTP client")?;
    let transport = Http::with_client(http, args.rpc_url.clone());
    let is_local = transport.guess_local();
    let provider = ProviderBuilder::new()
        .wallet(signer)
        .connect_client(RpcClient::new(transport, is_local))
        .erased();
    let mut progress = Progress::new(std::io::stderr().is_terminal());

    let chain_id = provider.get_chain_id().await.with_context(|| {
        format!("cannot reach the chain at {shown_url} (is the node up and --rpc-url right?)")
    })?;
    progress.note(&format!("chain {chain_id} at {shown_url}"));
    if provider
        .get_code_at(CREATE2_DEPLOYER)
        .await
        .context("reading the CREATE2 deployer's code")?
        .is_empty()
    {
        bail!("{}", missing_create2_deployer(&shown_url));
    }
    progress.note(&format!("CREATE2 deployer present at {CREATE2_DEPLOYER}"));

    let plan = Plan::new(&args, deployer);
    ensure!(
        plan.address(Item::EntryPoint) == Some(ENTRY_POINT_V08),
        "the embedded EntryPoint is not the canonical v0.8 bytecode: it would not land at \
         {ENTRY_POINT_V08}"
    );
    check_funds(&provider, &plan, deployer, &progress).await?;
    progress.total = plan.steps();

    let mut report = Report {
        chain_id,
        deployer: deployer.to_string(),
        entry_point: ENTRY_POINT_V08.to_string(),
        factory: String::new(),
        paymaster: None,
        game_items: None,
        game_gold: None,
        contracts: BTreeMap::new(),
        paymaster_owner: None,
        paymaster_signer: None,
        deposit: None,
        config_out: None,
    };
    for (item, contract) in &plan.contracts {
        let placed = progress
            .step(
                item.label(),
                ensure_deployed(&provider, contract),
                |placed| match placed.placement {
                    Placement::AlreadyDeployed => {
                        format!("already deployed at {}", placed.address)
                    }
                    Placement::Deployed { tx, gas_used, .. } => format!(
                        "deployed at {} (tx {tx}, {} gas)",
                        placed.address,
                        group_digits(gas_used)
                    ),
                },
            )
            .await
            .map_err(|error| {
                send_failed(
                    &format!("deploying {}", item.label()),
                    deployer,
                    error.into(),
                )
            })?;
        let address = placed.address.to_string();
        match item {
            Item::EntryPoint => report.entry_point = address,
            Item::Factory => report.factory = address,
            Item::GameItems => report.game_items = Some(address),
            Item::GameGold => report.game_gold = Some(address),
            Item::Paymaster => {
                let (owner, signer, deposit) = plan.paymaster.context("a paymaster is planned")?;
                check_paymaster_signer(&provider, placed.address, signer).await?;
                report.paymaster = Some(address);
                report.paymaster_owner = Some(owner.to_string());
                report.paymaster_signer = Some(signer.to_string());
                let target = U256::from(deposit);
                let top_up = progress
                    .step(
                        "paymaster deposit",
                        top_up_deposit(&provider, ENTRY_POINT_V08, placed.address, target),
                        |top_up| describe_top_up(top_up, deposit),
                    )
                    .await
                    .map_err(|error| {
                        send_failed("topping up the paymaster deposit", deployer, error.into())
                    })?;
                report.deposit = Some(DepositJson::new(&top_up, deposit));
            }
        }
        report
            .contracts
            .insert(item.key(), ContractJson::new(&placed));
    }

    if let Some(path) = &args.config_out {
        let rpc_url = args.config_rpc_url.as_ref().unwrap_or(&args.rpc_url);
        let factory = plan
            .address(Item::Factory)
            .context("a factory is planned")?;
        let sponsor = plan
            .paymaster
            .and_then(|(_, signer, _)| Some((plan.address(Item::Paymaster)?, signer)));
        let text = config_fragment(rpc_url.as_str(), chain_id, factory, sponsor)?;
        write_atomically(path, &text)?;
        progress.note(&format!("config written to {}", path.display()));
        report.config_out = Some(path.display().to_string());
    }

    print_output(args.json, &report, || report.render())?;
    Ok(())
}

/// Refuses to start when the deployer cannot pay for what is missing, so that a run never
/// stops halfway for want of ETH.
async fn check_funds(
    provider: &DynProvider,
    plan: &Plan,
    deployer: Address,
    progress: &Progress,
) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    let mut gas = 0u64;
    for (item, contract) in &plan.contracts {
        let code = provider
            .get_code_at(contract.address())
            .await
            .with_context(|| format!("reading the code at {}", contract.address()))?;
        if code.is_empty() {
            missing.push(*item);
            gas += item.gas_budget();
        }
    }
    let mut deposit_wei = 0u128;
    if let (Some((_, _, deposit)), Some(paymaster)) =
        (plan.paymaster, plan.address(Item::Paymaster))
    {
        let held = if missing.contains(&Item::Paymaster) {
            0
        } else {
            let held = EntryPoint::new(ENTRY_POINT_V08, provider)
                .balanceOf(paymaster)
                .call()
                .await
                .context("reading the paymaster's deposit at the EntryPoint")?;
            u128::try_from(held).unwrap_or(u128::MAX)
        };
        deposit_wei = deposit.saturating_sub(held);
        if deposit_wei > 0 {
            gas += DEPOSIT_GAS_BUDGET;
        }
    }
    if gas == 0 {
        progress.note("every contract is in place; nothing to send");
        return Ok(());
    }
    let missing: Vec<&str> = missing.into_iter().map(Item::label).collect();
    let fee_per_gas = match provider.estimate_eip1559_fees().await {
        Ok(fees) => fees.max_fee_per_gas,
        Err(_) => provider
            .get_gas_price()
            .await
            .context("asking the chain for its gas price")?,
    };
    let balance = provider
        .get_balance(deployer)
        .await
        .context("reading the deployer's balance")?;
    let balance = u128::try_from(balance).unwrap_or(u128::MAX);
    let cost = Cost {
        gas,
        fee_per_gas,
        deposit_wei,
    };
    let needed = cost.total_wei();
    if balance < needed {
        bail!(
            "the deployer {deployer} holds {} ETH, but {} needs up to {} ETH ({}); send it ETH \
             and run again. Nothing was sent",
            format_eth(balance),
            what_is_sent(&missing, deposit_wei),
            format_eth(needed),
            cost.explain()
        );
    }
    progress.note(&format!(
        "deployer {deployer} holds {} ETH; {} needs up to {} ETH",
        format_eth(balance),
        what_is_sent(&missing, deposit_wei),
        format_eth(needed)
    ));
    Ok(())
}

/// The most a run may spend: gas at the highest fee it may pay, and the deposit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cost {
    gas: u64,
    fee_per_gas: u128,
    deposit_wei: u128,
}

impl Cost {
    fn total_wei(self) -> u128 {
        u128::from(self.gas)
            .saturating_mul(self.fee_per_gas)
            .saturating_add(self.deposit_wei)
    }

    /// `11,700,000 gas at up to 2 gwei, plus the 1 ETH deposit`.
    fn explain(self) -> String {
        // format_eth shows ETH with 6 decimals; a fee scaled up by 10^9 reads as gwei.
        let gwei = format_eth(self.fee_per_gas.saturating_mul(1_000_000_000));
        let mut text = format!("{} gas at up to {gwei} gwei", group_digits(self.gas));
        if self.deposit_wei > 0 {
            text.push_str(&format!(
                ", plus {} ETH for the paymaster deposit",
                format_eth(self.deposit_wei)
            ));
        }
        text
    }
}

/// What a run sends, for people: `deploying EntryPoint v0.8 and SponsorPaymaster, and
/// topping up the paymaster deposit`.
fn what_is_sent(missing: &[&str], deposit_wei: u128) -> String {
    let deploying = match missing {
        [] => None,
        [only] => Some(format!("deploying {only}")),
        [first @ .., last] => Some(format!("deploying {} and {last}", first.join(", "))),
    };
    match (deploying, deposit_wei > 0) {
        (Some(deploying), true) => format!("{deploying}, and topping up the paymaster deposit"),
        (Some(deploying), false) => deploying,
        (None, _) => "topping up the paymaster deposit".to_owned(),
    }
}

/// A paymaster found at its address approves with the signer it was deployed with, unless
/// its owner has changed it since; then the daemon could not sponsor with the key asked for.
async fn check_paymaster_signer(
    provider: &DynProvider,
    paymaster: Address,
    expected: Address,
) -> anyhow::Result<()> {
    let on_chain = SponsorPaymaster::new(paymaster, provider)
        .signer()
        .call()
        .await
        .context("reading the paymaster's signer")?;
    if on_chain != expected {
        bail!(
            "the SponsorPaymaster at {paymaster} now accepts approvals from {on_chain}, not \
             {expected} as --paymaster-signer says: its owner changed it with setSigner. Give \
             the daemon the key of {on_chain}, or have the owner call setSigner({expected})"
        );
    }
    Ok(())
}

/// A failed send, with the remedy when it is the usual one.
fn send_failed(action: &str, deployer: Address, error: anyhow::Error) -> anyhow::Error {
    let text = format!("{error:#}");
    if text.to_ascii_lowercase().contains("insufficient funds") {
        anyhow::anyhow!(
            "{action}: the deployer {deployer} lacks the ETH for it ({text}); send it ETH and \
             run again, which skips whatever is deployed"
        )
    } else {
        error.context(format!("{action} from {deployer} failed"))
    }
}

/// What to do about a chain without the CREATE2 deployer.
fn missing_create2_deployer(shown_url: &str) -> String {
    format!(
        "the chain at {shown_url} has no CREATE2 deployer at {CREATE2_DEPLOYER}, through which \
         latchkey places every contract. Most chains have it; on this one anyone can add it: \
         send 0.01 ETH to its one-time deployer account {CREATE2_DEPLOYER_SIGNER} (the gas of \
         its presigned transaction at 100 gwei), then broadcast that transaction, for example \
         with `cast publish --rpc-url URL {CREATE2_DEPLOYER_TX}`. It predates EIP-155, so a \
         node that refuses unprotected transactions must allow it (geth: \
         --rpc.allow-unprotected-txs); where none will, ask the chain's operators to predeploy \
         it"
    )
}

/// The RPC URL as it may be shown: scheme, host and port. A path, a query or credentials
/// often hold a provider's API key, so they show as `/…`.
fn shown_url(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    let port = url
        .port()
        .map(|port| format!(":{port}"))
        .unwrap_or_default();
    let hidden = (url.path() != "/" && !url.path().is_empty())
        || url.query().is_some()
        || !url.username().is_empty()
        || url.password().is_some();
    let rest = if hidden { "/…" } else { "" };
    format!("{}://{host}{port}{rest}", url.scheme())
}

fn describe_top_up(top_up: &TopUp, asked_wei: u128) -> String {
    match *top_up {
        TopUp::Enough { held } => format!(
            "holds {} ETH, at least the {} ETH asked for; nothing sent",
            format_eth(wei(held)),
            format_eth(asked_wei)
        ),
        TopUp::ToppedUp { before, added, tx } => format!(
            "topped up from {} ETH to {} ETH (tx {tx})",
            format_eth(wei(before)),
            format_eth(wei(before.saturating_add(added)))
        ),
    }
}

fn wei(amount: U256) -> u128 {
    u128::try_from(amount).unwrap_or(u128::MAX)
}

/// `1234567` as `1,234,567`.
fn group_digits(number: u64) -> String {
    let digits = number.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// What a run found and did; the `--json` output.
#[derive(Debug, Serialize)]
struct Report {
    chain_id: u64,
    deployer: String,
    entry_point: String,
    factory: String,
    paymaster: Option<String>,
    game_items: Option<String>,
    game_gold: Option<String>,
    /// Each contract considered, by its config name.
    contracts: BTreeMap<&'static str, ContractJson>,
    paymaster_owner: Option<String>,
    paymaster_signer: Option<String>,
    deposit: Option<DepositJson>,
    config_out: Option<String>,
}

#[derive(Debug, Serialize)]
struct ContractJson {
    address: String,
    /// `deployed` (now) or `already_deployed`.
    status: &'static str,
    transaction_hash: Option<String>,
    gas_used: Option<String>,
    fee_wei: Option<String>,
}

impl ContractJson {
    fn new(placed: &Placed) -> Self {
        let address = placed.address.to_string();
        match placed.placement {
            Placement::AlreadyDeployed => Self {
                address,
                status: "already_deployed",
                transaction_hash: None,
                gas_used: None,
                fee_wei: None,
            },
            Placement::Deployed {
                tx,
                gas_used,
                fee_wei,
            } => Self {
                address,
                status: "deployed",
                transaction_hash: Some(tx.to_string()),
                gas_used: Some(gas_used.to_string()),
                fee_wei: Some(fee_wei.to_string()),
            },
        }
    }

    fn describe(&self) -> String {
        match (&self.transaction_hash, &self.gas_used) {
            (Some(tx), Some(gas)) => {
                let gas = gas
                    .parse()
                    .map(group_digits)
                    .unwrap_or_else(|_| gas.clone());
                format!("deployed now (tx {tx}, {gas} gas)")
            }
            _ => "already deployed".to_owned(),
        }
    }
}

#[derive(Debug, Serialize)]
struct DepositJson {
    /// The paymaster's deposit at the EntryPoint after the run.
    wei: String,
    /// What `--deposit` asked it to hold at least.
    target_wei: String,
    /// What this run added.
    added_wei: String,
    transaction_hash: Option<String>,
}

impl DepositJson {
    fn new(top_up: &TopUp, target_wei: u128) -> Self {
        let (held, added, tx) = match *top_up {
            TopUp::Enough { held } => (held, U256::ZERO, None),
            TopUp::ToppedUp { before, added, tx } => {
                (before.saturating_add(added), added, Some(tx.to_string()))
            }
        };
        Self {
            wei: held.to_string(),
            target_wei: target_wei.to_string(),
            added_wei: added.to_string(),
            transaction_hash: tx,
        }
    }
}

impl Report {
    /// The result for people: one row a contract, and the deposit.
    fn render(&self) -> String {
        let mut rows = Vec::new();
        for item in [
            Item::EntryPoint,
            Item::Factory,
            Item::Paymaster,
            Item::GameItems,
            Item::GameGold,
        ] {
            let Some(contract) = self.contracts.get(item.key()) else {
                continue;
            };
            rows.push(vec![
                item.label().to_owned(),
                contract.address.clone(),
                contract.describe(),
            ]);
            if let (Item::Paymaster, Some(deposit)) = (item, &self.deposit) {
                let held = format!("{} at the EntryPoint", wei_with_eth(&deposit.wei));
                let result = match &deposit.transaction_hash {
                    Some(tx) => format!("{held}: topped up now (tx {tx})"),
                    None => format!("{held}: enough already"),
                };
                rows.push(vec![
                    "paymaster deposit".to_owned(),
                    contract.address.clone(),
                    result,
                ]);
            }
        }
        let mut out = format!("chain {}\n", self.chain_id);
        out.push_str(&table(&["CONTRACT", "ADDRESS", "RESULT"], &rows));
        out
    }
}

/// The config fragment `--config-out` writes, which `latchkey serve --config FILE` reads as
/// it is: where the chain and the contracts are. Keys stay out of it; the header says which
/// environment variables carry them.
fn config_fragment(
    rpc_url: &str,
    chain_id: u64,
    factory: Address,
    sponsor: Option<(Address, Address)>,
) -> anyhow::Result<String> {
    #[derive(Serialize)]
    struct Fragment {
        chain: ChainSection,
        #[serde(skip_serializing_if = "Option::is_none")]
        sponsor: Option<SponsorSection>,
    }
    #[derive(Serialize)]
    struct ChainSection {
        rpc_url: String,
        entry_point: String,
        factory: String,
    }
    #[derive(Serialize)]
    struct SponsorSection {
        paymaster: String,
    }
    let fragment = Fragment {
        chain: ChainSection {
            rpc_url: rpc_url.to_owned(),
            entry_point: ENTRY_POINT_V08.to_string(),
            factory: factory.to_string(),
        },
        sponsor: sponsor.map(|(paymaster, _)| SponsorSection {
            paymaster: paymaster.to_string(),
        }),
    };
    let mut text = format!(
        "# latchkey configuration written by `latchkey contracts deploy` for chain {chain_id}.\n\
         # `latchkey serve --config FILE` reads it as it is; every other field keeps its\n\
         # default (see deploy/latchkey.example.toml). The keys come from the environment:\n\
         #   LATCHKEY_RELAYER_PRIVATE_KEY  the relayer: it sends handleOps and pays their gas\n"
    );
    if let Some((_, signer)) = sponsor {
        text.push_str(&format!(
            "#   LATCHKEY_SPONSOR_SIGNER_KEY   the key of {signer}, whose approvals the paymaster \
             accepts\n"
        ));
    }
    text.push('\n');
    text.push_str(&toml::to_string(&fragment).context("writing the config as TOML")?);
    Ok(text)
}

/// Replaces `path` with `text` so that a reader sees the old file or the new one, never a
/// part: it writes a temporary file beside it, syncs it and renames it over.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    path.file_name()
        .with_context(|| format!("--config-out {} does not name a file", path.display()))?;
    super::replace_file(path, text, 0o644)
        .with_context(|| format!("cannot write the config to {}", path.display()))
}

/// Progress on stderr: a line for each step, `[2/4] SessionKeyAccountFactory ... deployed
/// at 0x…`. On a terminal a spinner and the seconds elapsed show while a step runs;
/// elsewhere (a log, a test) only the finished lines appear.
struct Progress {
    step: usize,
    total: usize,
    live: bool,
}

impl Progress {
    fn new(live: bool) -> Self {
        Self {
            step: 0,
            total: 0,
            live,
        }
    }

    /// A line that is not a step: what was checked.
    fn note(&self, line: &str) {
        eprintln!("{line}");
    }

    /// Runs `work` as the next step, then prints how it ended: `describe` of its result, or
    /// `failed`.
    async fn step<T, E>(
        &mut self,
        label: &str,
        work: impl Future<Output = Result<T, E>>,
        describe: impl FnOnce(&T) -> String,
    ) -> Result<T, E> {
        self.step += 1;
        let prefix = format!("[{}/{}] {label} ...", self.step, self.total.max(self.step));
        let spinner = spinner(self.live, format!("{prefix} "));
        let result = work.await;
        spinner.finish_and_clear();
        match &result {
            Ok(value) => eprintln!("{prefix} {}", describe(value)),
            Err(_) => eprintln!("{prefix} failed"),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use alloy::primitives::{TxHash, address};

    use super::*;
    use crate::config::{Config, ConfigArgs};

    #[test]
    fn gas_reads_in_groups_of_three_digits() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1_000), "1,000");
        assert_eq!(group_digits(1_234_567), "1,234,567");
        assert_eq!(group_digits(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn urls_show_without_what_may_hold_an_api_key() {
        let shown = |text: &str| shown_url(&text.parse().expect("a URL"));
        assert_eq!(shown("http://127.0.0.1:8545"), "http://127.0.0.1:8545");
        assert_eq!(shown("http://anvil:8545/"), "http://anvil:8545");
        assert_eq!(
            shown("https://eth-mainnet.example.com/v2/SECRET"),
            "https://eth-mainnet.example.com/…"
        );
        assert_eq!(
            shown("https://rpc.example.com?key=SECRET"),
            "https://rpc.example.com/…"
        );
        assert_eq!(
            shown("https://user:SECRET@rpc.example.com"),
            "https://rpc.example.com/…"
        );
    }

    #[test]
    fn the_cost_counts_gas_at_the_highest_fee_and_the_deposit() {
        let cost = Cost {
            gas: 11_700_000,
            fee_per_gas: 2_000_000_000,
            deposit_wei: 10u128.pow(18),
        };
        assert_eq!(cost.total_wei(), 23_400_000_000_000_000 + 10u128.pow(18));
        assert_eq!(
            cost.explain(),
            "11,700,000 gas at up to 2 gwei, plus 1 ETH for the paymaster deposit"
        );
        let no_deposit = Cost {
            deposit_wei: 0,
            fee_per_gas: 1_500_000_001,
            ..cost
        };
        assert_eq!(no_deposit.explain(), "11,700,000 gas at up to 1.5 gwei");
        assert_eq!(
            what_is_sent(&["EntryPoint v0.8", "SponsorPaymaster"], 1),
            "deploying EntryPoint v0.8 and SponsorPaymaster, and topping up the paymaster deposit"
        );
        assert_eq!(
            what_is_sent(
                &["EntryPoint v0.8", "SessionKeyAccountFactory", "GameItems"],
                0
            ),
            "deploying EntryPoint v0.8, SessionKeyAccountFactory and GameItems"
        );
        assert_eq!(what_is_sent(&["GameItems"], 0), "deploying GameItems");
        assert_eq!(what_is_sent(&[], 1), "topping up the paymaster deposit");
    }

    #[test]
    fn the_plan_deploys_in_order_and_the_paymaster_follows_its_owner_and_signer() {
        let deployer = address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
        let signer = address!("3C44CdDdB6a900fa2b585dd299e03d12FA4293BC");
        let args = |extra: &[&str]| {
            use clap::Parser;
            #[derive(clap::Parser)]
            struct Cli {
                #[command(flatten)]
                args: DeployArgs,
            }
            let mut argv = vec![
                "deploy",
                "--rpc-url",
                "http://127.0.0.1:8545",
                "--private-key",
                "0x01",
            ];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv).map(|cli| cli.args)
        };
        let full = args(&[
            "--paymaster-signer",
            &signer.to_string(),
            "--example-contracts",
        ])
        .expect("parses");
        let plan = Plan::new(&full, deployer);
        let items: Vec<Item> = plan.contracts.iter().map(|(item, _)| *item).collect();
        assert_eq!(
            items,
            [
                Item::EntryPoint,
                Item::Factory,
                Item::Paymaster,
                Item::GameItems,
                Item::GameGold
            ]
        );
        assert_eq!(plan.steps(), 6, "five contracts and the deposit");
        assert_eq!(plan.address(Item::EntryPoint), Some(ENTRY_POINT_V08));
        assert_eq!(
            plan.address(Item::Paymaster),
            Some(Create2Contract::paymaster(ENTRY_POINT_V08, deployer, signer).address()),
            "owned by the deployer unless --paymaster-owner"
        );
        assert_eq!(plan.paymaster, Some((deployer, signer, 0)));

        let owner = address!("70997970C51812dc3A010C7d01b50e0d17dc79C8");
        let owned = args(&[
            "--paymaster-signer",
            &signer.to_string(),
            "--paymaster-owner",
            &owner.to_string(),
            "--deposit",
            "1.5ether",
        ])
        .expect("parses");
        let plan = Plan::new(&owned, deployer);
        assert_eq!(
            plan.paymaster,
            Some((owner, signer, 1_500_000_000_000_000_000))
        );
        assert_eq!(plan.steps(), 4);

        let bare = Plan::new(&args(&["--no-paymaster"]).expect("parses"), deployer);
        assert_eq!(bare.contracts.len(), 2);
        assert_eq!(bare.steps(), 2);

        for wrong in [
            &[][..],
            &["--no-paymaster", "--deposit", "1ether"],
            &[
                "--no-paymaster",
                "--paymaster-signer",
                "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            ],
            &["--no-paymaster", "--config-rpc-url", "http://anvil:8545"],
            &["--paymaster-signer", "not-an-address"],
            &["--no-paymaster", "--deposit", "1.5"],
        ] {
            assert!(args(wrong).is_err(), "{wrong:?}");
        }
    }

    #[test]
    fn the_config_fragment_is_a_config_serve_accepts() {
        let factory = Create2Contract::factory(ENTRY_POINT_V08).address();
        let paymaster = address!("52908400098527886E0F7030069857D2E4169EE7");
        let signer = address!("3C44CdDdB6a900fa2b585dd299e03d12FA4293BC");
        let text = config_fragment(
            "http://anvil:8545/",
            31_337,
            factory,
            Some((paymaster, signer)),
        )
        .expect("fragment");
        assert!(text.contains("LATCHKEY_RELAYER_PRIVATE_KEY"), "{text}");
        assert!(text.contains(&signer.to_string()), "{text}");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("latchkey.toml");
        write_atomically(&path, &text).expect("write");
        let relayer = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
        let sponsor = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
        let master_key = crate::keys::MasterKey::generate().to_hex().to_string();
        let relayer_only = ConfigArgs {
            config: Some(path.clone()),
            relayer_private_key: Some(relayer.to_owned()),
            master_key: Some(master_key),
            ..ConfigArgs::default()
        };
        let config = Config::load(ConfigArgs {
            sponsor_signer_key: Some(sponsor.to_owned()),
            ..relayer_only.clone()
        })
        .expect("loads");
        assert_eq!(config.chain.rpc_url, "http://anvil:8545/");
        assert_eq!(config.chain.entry_point, ENTRY_POINT_V08);
        assert_eq!(config.factory(), factory);
        assert_eq!(config.sponsor.paymaster, Some(paymaster));
        config.validate().expect("valid");

        let without =
            config_fragment("http://127.0.0.1:8545/", 1, factory, None).expect("fragment");
        assert!(!without.contains("[sponsor]"), "{without}");
        assert!(
            !without.contains("LATCHKEY_SPONSOR_SIGNER_KEY"),
            "{without}"
        );
        write_atomically(&path, &without).expect("replace");
        // Without a paymaster, sponsorship is off and the daemon needs only the relayer.
        let config = Config::load(relayer_only).expect("loads");
        assert_eq!(config.sponsor.paymaster, None);
        config.validate().expect("valid");
    }

    #[test]
    fn config_files_are_replaced_whole_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("out.toml");
        write_atomically(&path, "first").expect("write");
        write_atomically(&path, "second").expect("replace");
        assert_eq!(fs::read_to_string(&path).expect("read"), "second");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["out.toml"]);
        let missing = dir.path().join("no/such/dir/out.toml");
        let error = write_atomically(&missing, "x").expect_err("no directory");
        assert!(
            error.to_string().contains("no/such/dir/out.toml"),
            "{error}"
        );
    }

    #[test]
    fn the_missing_create2_deployer_says_how_to_get_it() {
        let text = missing_create2_deployer("http://127.0.0.1:8545");
        assert!(
            text.contains("0x4e59b44847b379578588920cA78FbF26c0B4956C"),
            "{text}"
        );
        assert!(text.contains(CREATE2_DEPLOYER_SIGNER), "{text}");
        assert!(text.contains("0.01 ETH"), "{text}");
        assert!(text.contains("cast publish"), "{text}");
        let tx = alloy::hex::decode(CREATE2_DEPLOYER_TX).expect("hex");
        assert_eq!(tx.len(), 167, "the presigned transaction is whole");
    }

    #[test]
    fn the_result_reads_as_a_table() {
        let tx = TxHash::repeat_byte(0xab);
        let placed = |address: Address, deployed: bool| Placed {
            address,
            placement: if deployed {
                Placement::Deployed {
                    tx,
                    gas_used: 1_234_567,
                    fee_wei: 1,
                }
            } else {
                Placement::AlreadyDeployed
            },
        };
        let factory = Create2Contract::factory(ENTRY_POINT_V08).address();
        let paymaster = Address::repeat_byte(0x11);
        let mut contracts = BTreeMap::new();
        contracts.insert(
            "entry_point",
            ContractJson::new(&placed(ENTRY_POINT_V08, false)),
        );
        contracts.insert("factory", ContractJson::new(&placed(factory, true)));
        contracts.insert("paymaster", ContractJson::new(&placed(paymaster, true)));
        let report = Report {
            chain_id: 31_337,
            deployer: Address::ZERO.to_string(),
            entry_point: ENTRY_POINT_V08.to_string(),
            factory: factory.to_string(),
            paymaster: Some(paymaster.to_string()),
            game_items: None,
            game_gold: None,
            contracts,
            paymaster_owner: None,
            paymaster_signer: None,
            deposit: Some(DepositJson::new(
                &TopUp::ToppedUp {
                    before: U256::ZERO,
                    added: U256::from(10u128.pow(18)),
                    tx,
                },
                10u128.pow(18),
            )),
            config_out: None,
        };
        let text = report.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "chain 31337");
        assert!(lines[1].starts_with("CONTRACT "), "{text}");
        assert!(lines[2].starts_with("EntryPoint v0.8 "), "{text}");
        assert!(lines[2].ends_with("already deployed"), "{text}");
        assert!(lines[3].contains(&factory.to_string()), "{text}");
        assert!(
            lines[3].ends_with(&format!("deployed now (tx {tx}, 1,234,567 gas)")),
            "{text}"
        );
        assert!(lines[4].starts_with("SponsorPaymaster "), "{text}");
        assert!(
            lines[5].contains("1000000000000000000 wei (1 ETH) at the EntryPoint: topped up now"),
            "{text}"
        );
        assert_eq!(lines.len(), 6, "{text}");

        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["contracts"]["factory"]["status"], "deployed");
        assert_eq!(json["contracts"]["factory"]["gas_used"], "1234567");
        assert_eq!(
            json["contracts"]["entry_point"]["status"],
            "already_deployed"
        );
        assert_eq!(json["deposit"]["wei"], "1000000000000000000");
        assert_eq!(json["deposit"]["added_wei"], "1000000000000000000");
        assert_eq!(json["game_items"], serde_json::Value::Null);
    }
}
