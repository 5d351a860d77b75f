//! `latchkey bench`: a load generator. It starts the project's anvil, runs the real daemon as
//! a child process (so its memory can be read), registers HELD session keys on K accounts,
//! drives N mint intents through gRPC, and reports what it measured: throughput, latency
//! from creation to confirmation (from the daemon's own transition times), ops per bundle,
//! gas per op, and the daemon's resident memory.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    process::{Child, Command},
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256, utils::parse_ether},
    providers::{Provider, ext::AnvilApi},
    signers::local::PrivateKeySigner,
};
use anyhow::{Context, bail};
use tokio::sync::Semaphore;
use tonic::{service::interceptor::InterceptedService, transport::Channel};

use super::{ApiChannel, ClientArgs, Secret, print_output};
use crate::{
    api::proto::{
        self, policy_service_client::PolicyServiceClient,
        session_service_client::SessionServiceClient,
        transaction_intent_service_client::TransactionIntentServiceClient,
    },
    chain::{
        devnet::{DevChain, DevChainOptions},
        signature::sign_personal,
    },
};

/// What to run.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    /// Player accounts, each with one HELD session key.
    #[arg(long, default_value_t = 20)]
    pub accounts: usize,
    /// Intents in all.
    #[arg(long, default_value_t = 1_000)]
    pub intents: usize,
    /// Intents in creation at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Intents per second to aim for; as fast as possible when absent.
    #[arg(long)]
    pub rate: Option<f64>,
    /// anvil's block time in seconds; automine when absent.
    #[arg(long)]
    pub block_time: Option<u64>,
    /// Relayer keys the daemon gets.
    #[arg(long, default_value_t = 1)]
    pub relayers: usize,
    /// Sessions and intents name a policy and the dev paymaster pays, instead of the
    /// accounts.
    #[arg(long)]
    pub sponsored: bool,
}

/// Runs `latchkey bench` and prints its report, as JSON when `json`.
pub async fn main(options: BenchOptions, json: bool) -> anyhow::Result<()> {
    let report = run(options).await?;
    print_output(json, &report, || render(&report))?;
    Ok(())
}

/// What a run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// anvil's block time (0 = automine).
    pub block_time_secs: u64,
    /// Accounts, intents, relayers.
    pub accounts: usize,
    /// Intents driven.
    pub intents: usize,
    /// Relayer keys.
    pub relayers: usize,
    /// Intents that ended CONFIRMED.
    pub confirmed: usize,
    /// Confirmed intents per second, from the first creation to the last confirmation.
    pub ops_per_sec: f64,
    /// Intents created per second by the load generator.
    pub created_per_sec: f64,
    /// Creation to confirmation, milliseconds.
    pub latency_ms_p50: u64,
    /// 90th percentile.
    pub latency_ms_p90: u64,
    /// 99th percentile.
    pub latency_ms_p99: u64,
    /// Bundles (handleOps transactions) that carried the intents.
    pub bundles: usize,
    /// Mean operations per bundle.
    pub ops_per_bundle: f64,
    /// Gas of the handleOps transactions divided by the operations they carried.
    pub gas_per_op: f64,
    /// How many such operations a 30M-gas block holds.
    pub ops_per_30m_block: f64,
    /// Blocks that included the intents.
    pub blocks: usize,
    /// Median operations per block over the blocks between the first and the last (which
    /// catch the load ramping up and draining); all blocks when there are fewer than three.
    pub ops_per_block_median: f64,
    /// With a block time: the median block's operations per second of block time, the rate
    /// the relay sustains once the load is running. 0 under automine, where blocks have no
    /// time of their own.
    pub sustained_ops_per_sec: f64,
    /// The daemon's resident memory at the end, MiB.
    pub daemon_rss_mib: f64,
    /// The daemon's peak resident memory, MiB.
    pub daemon_peak_rss_mib: f64,
    /// Whether the paymaster paid, under a policy.
    pub sponsored: bool,
    /// With sponsorship: what the paymaster's EntryPoint deposit went down by, wei.
    pub paymaster_paid_wei: String,
    /// With sponsorship: what the policy recorded as settled spend, wei; equal to the
    /// above when the accounting is right.
    pub policy_recorded_wei: String,
}

/// Runs the benchmark and returns its report.
pub async fn run(options: BenchOptions) -> anyhow::Result<BenchReport> {
    if options.accounts == 0
        || options.intents == 0
        || options.concurrency == 0
        || options.relayers == 0
    {
        bail!("--accounts, --intents, --concurrency and --relayers must be at least 1");
    }
    let chain = DevChain::start(DevChainOptions {
        block_time: options.block_time,
        port: None,
        args: Vec::new(),
    })
    .await
    .context("starting anvil")?;
    let mut relayer_keys = vec![chain.relayer.clone()];
    for _ in 1..options.relayers {
        let extra = PrivateKeySigner::random();
        chain
            .provider
            .anvil_set_balance(extra.address(), parse_ether("1000")?)
            .await?;
        relayer_keys.push(extra);
    }
    let dir = std::env::temp_dir().join(format!("latchkey-bench-{}", std::process::id()));
    let daemon = DaemonChild::spawn(&chain, &relayer_keys, dir.clone()).await?;
    let channel = daemon.channel.clone();
    let mut sessions_client = SessionServiceClient::new(channel.clone());
    let intents_client = TransactionIntentServiceClient::new(channel.clone());
    let mut policies_client = PolicyServiceClient::new(channel);
    let deposit_before = paymaster_deposit(&chain).await?;
    let policy = if options.sponsored {
        policies_client
            .create_policy(bench_policy())
            .await?
            .into_inner()
            .name
    } else {
        String::new()
    };

    // K accounts with an ACTIVE HELD session each.
    eprintln!("registering {} sessions...", options.accounts);
    let now = chain_time(&chain).await?;
    let mut sessions = Vec::new();
    for _ in 0..options.accounts {
        let owner = PrivateKeySigner::random();
        let session = sessions_client
            .create_session(proto::CreateSessionRequest {
                owner: owner.address().to_string(),
                salt: "0".into(),
                custody: proto::KeyCustody::Held as i32,
                key_address: String::new(),
                valid_after: 0,
                valid_until: i64::try_from(now + 86_400)?,
                permissions: Some(proto::SessionPermissions {
                    call_limit: u32::MAX,
                    value_per_call_limit: String::new(),
                    value_budget: String::new(),
                    gas_budget: parse_ether("100")?.to_string(),
                    calls: vec![proto::CallPermission {
                        target: chain.deployment.game_items.to_string(),
                        function: "mint(address,uint256,uint256)".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                policy: policy.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let account: Address = session.account.trim_start_matches("accounts/").parse()?;
        if !options.sponsored {
            chain
                .provider
                .anvil_set_balance(account, parse_ether("100")?)
                .await?;
        }
        let hash: B256 = session
            .next_action
            .as_ref()
            .context("next action")?
            .signable_hash
            .parse()?;
        let signature = sign_personal(&owner, hash)?;
        sessions_client
            .submit_session_signature(proto::SubmitSessionSignatureRequest {
                name: session.name.clone(),
                signature: signature.to_string(),
                ..Default::default()
            })
            .await?;
        sessions.push((session.name, account));
    }
    for (name, _) in &sessions {
        wait_active(&mut sessions_client, name).await?;
    }

    // N intents, spread over the accounts.
    eprintln!("driving {} intents...", options.intents);
    let permits = Arc::new(Semaphore::new(options.concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(options.intents);
    for index in 0..options.intents {
        if let Some(rate) = options.rate {
            let due = started + Duration::from_secs_f64(index as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let permit = permits.clone().acquire_owned().await?;
        let (session, account) = sessions[index % sessions.len()].clone();
        let mut client = intents_client.clone();
        let game = chain.deployment.game_items.to_string();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            client
                .create_transaction_intent(proto::CreateTransactionIntentRequest {
                    session,
                    interactions: vec![proto::Interaction {
                        to: game,
                        value: String::new(),
                        call: Some(proto::interaction::Call::FunctionCall(
                            proto::FunctionCall {
                                signature: "mint(address,uint256,uint256)".into(),
                                args: vec![
                                    account.to_string(),
                                    (index % 16).to_string(),
                                    "1".into(),
                                ],
                            },
                        )),
                    }],
                    idempotency_key: String::new(),
                    policy: String::new(),
                })
                .await
                .map(|response| response.into_inner().name)
        }));
    }
    let mut names = Vec::with_capacity(tasks.len());
    for task in tasks {
        names.push(task.await?.context("creating an intent")?);
    }
    let created_secs = started.elapsed().as_secs_f64();

    // Wait for every intent to be final, then read what happened from the daemon's records.
    let mut client = intents_client.clone();
    let mut finals = Vec::with_capacity(names.len());
    for name in &names {
        finals.push(wait_final(&mut client, name).await?);
    }
    let rss = daemon.memory()?;
    let mut report = measure(&chain, &options, &finals, created_secs, rss).await?;
    if options.sponsored {
        let paid = deposit_before - paymaster_deposit(&chain).await?;
        let recorded = policies_client
            .get_policy(proto::GetPolicyRequest {
                name: policy.clone(),
            })
            .await?
            .into_inner()
            .usage
            .and_then(|usage| usage.settled)
            .map(|settled| settled.wei)
            .unwrap_or_default();
        report.paymaster_paid_wei = paid.to_string();
        report.policy_recorded_wei = recorded;
    }
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(dir.with_extension("toml"));
    Ok(report)
}

/// The policy a sponsored run names: every registration and every call, without limits
/// that a run could reach.
fn bench_policy() -> proto::CreatePolicyRequest {
    use proto::policy_rule::Rule;
    proto::CreatePolicyRequest {
        display_name: "bench".into(),
        chain_id: 0,
        strategy: proto::SponsorStrategy::PayForUser as i32,
        rules: vec![
            proto::PolicyRule {
                rule: Some(Rule::AccountFunctions(proto::AccountFunctionsRule {
                    register_session: true,
                    revoke_session: true,
                    deploy_account: true,
                })),
            },
            proto::PolicyRule {
                rule: Some(Rule::ContractFunctions(proto::ContractFunctionsRule {
                    functions: vec![proto::ContractFunction {
                        contract: "*".into(),
                        function: "*".into(),
                    }],
                })),
            },
            // Limits are checked (and usage written) on every operation even when they are
            // never reached, as in production.
            proto::PolicyRule {
                rule: Some(Rule::OperationsPerInterval(
                    proto::OperationsPerIntervalRule {
                        max_operations: 1_000_000_000,
                        interval_seconds: 3_600,
                    },
                )),
            },
        ],
    }
}

/// The dev paymaster's deposit at the EntryPoint.
async fn paymaster_deposit(chain: &DevChain) -> anyhow::Result<alloy::primitives::U256> {
    Ok(
        crate::chain::contracts::EntryPoint::new(chain.deployment.entry_point, &chain.provider)
            .balanceOf(chain.paymaster)
            .call()
            .await?,
    )
}

async fn measure(
    chain: &DevChain,
    options: &BenchOptions,
    finals: &[proto::TransactionIntent],
    created_secs: f64,
    (rss, peak): (f64, f64),
) -> anyhow::Result<BenchReport> {
    let millis = |step: &proto::StatusTransition| {
        step.time
            .as_ref()
            .map(|t| t.seconds * 1_000 + i64::from(t.nanos) / 1_000_000)
    };
    let mut latencies = Vec::new();
    let mut first_created = i64::MAX;
    let mut last_confirmed = i64::MIN;
    let mut bundles: HashMap<String, usize> = HashMap::new();
    for intent in finals
        .iter()
        .filter(|intent| intent.status == proto::TransactionIntentStatus::Confirmed as i32)
    {
        let created = intent
            .history
            .first()
            .and_then(millis)
            .context("creation time")?;
        let confirmed = intent
            .history
            .last()
            .and_then(millis)
            .context("confirmation time")?;
        latencies.push(u64::try_from(confirmed - created).unwrap_or(0));
        first_created = first_created.min(created);
        last_confirmed = last_confirmed.max(confirmed);
        if let Some(result) = &intent.result {
            *bundles.entry(result.transaction_hash.clone()).or_default() += 1;
        }
    }
    latencies.sort_unstable();
    let confirmed = latencies.len();
    let percentile = |p: f64| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        latencies[rank.clamp(1, latencies.len()) - 1]
    };
    let mut gas = 0u128;
    let mut per_block: BTreeMap<u64, usize> = BTreeMap::new();
    for (tx, ops) in &bundles {
        let receipt = chain
            .provider
            .get_transaction_receipt(tx.parse()?)
            .await?
            .context("a bundle's receipt")?;
        gas += u128::from(receipt.gas_used);
        *per_block
            .entry(receipt.block_number.context("a mined bundle's block")?)
            .or_default() += ops;
    }
    let mut steady: Vec<usize> = per_block.values().copied().collect();
    if steady.len() >= 3 {
        steady = steady[1..steady.len() - 1].to_vec();
    }
    steady.sort_unstable();
    let ops_per_block_median = match steady.len() {
        0 => 0.0,
        n if n % 2 == 1 => steady[n / 2] as f64,
        n => (steady[n / 2 - 1] + steady[n / 2]) as f64 / 2.0,
    };
    let ops_in_bundles: usize = bundles.values().sum();
    let gas_per_op = gas as f64 / ops_in_bundles.max(1) as f64;
    let span_secs = ((last_confirmed - first_created).max(1)) as f64 / 1_000.0;
    Ok(BenchReport {
        block_time_secs: options.block_time.unwrap_or(0),
        accounts: options.accounts,
        intents: options.intents,
        relayers: options.relayers,
        confirmed,
        ops_per_sec: confirmed as f64 / span_secs,
        created_per_sec: options.intents as f64 / created_secs.max(f64::EPSILON),
        latency_ms_p50: percentile(50.0),
        latency_ms_p90: percentile(90.0),
        latency_ms_p99: percentile(99.0),
        bundles: bundles.len(),
        ops_per_bundle: ops_in_bundles as f64 / bundles.len().max(1) as f64,
        gas_per_op,
        ops_per_30m_block: 30_000_000.0 / gas_per_op.max(1.0),
        blocks: per_block.len(),
        ops_per_block_median,
        sustained_ops_per_sec: match options.block_time {
            Some(secs) if secs > 0 => ops_per_block_median / secs as f64,
            _ => 0.0,
        },
        daemon_rss_mib: rss,
        daemon_peak_rss_mib: peak,
        sponsored: options.sponsored,
        paymaster_paid_wei: String::new(),
        policy_recorded_wei: String::new(),
    })
}

async fn chain_time(chain: &DevChain) -> anyhow::Result<u64> {
    let block = chain
        .provider
        .get_block_by_number(Default::default())
        .await?
        .context("latest block")?;
    Ok(block.header.timestamp)
}

/// Until session `name` is ACTIVE; an error when it fails or a minute passes.
async fn wait_active(
    client: &mut SessionServiceClient<ApiChannel>,
    name: &str,
) -> anyhow::Result<()> {
    use proto::SessionStatus as S;
    let request = proto::GetSessionRequest {
        name: name.to_owned(),
    };
    let fetch = async || client.get_session(request.clone()).await;
    let active = poll_until(Duration::from_secs(60), fetch, |session| match S::try_from(
        session.status,
    ) {
        Ok(S::Active) => Ok(Some(())),
        Ok(S::Failed) => bail!("session {name} failed: {}", session.failure_reason),
        _ => Ok(None),
    })
    .await?;
    active.with_context(|| format!("session {name} did not become ACTIVE in a minute"))
}

/// Intent `name` once it is final; an error when five minutes pass first.
async fn wait_final(
    client: &mut TransactionIntentServiceClient<ApiChannel>,
    name: &str,
) -> anyhow::Result<proto::TransactionIntent> {
    use proto::TransactionIntentStatus as S;
    let request = proto::GetTransactionIntentRequest {
        name: name.to_owned(),
    };
    let fetch = async || client.get_transaction_intent(request.clone()).await;
    let is_final = |intent: &proto::TransactionIntent| {
        matches!(
            S::try_from(intent.status),
            Ok(S::Confirmed | S::Reverted | S::Dropped | S::Expired)
        )
    };
    let intent = poll_until(Duration::from_secs(300), fetch, |intent| {
        Ok(is_final(&intent).then_some(intent))
    })
    .await?;
    intent.with_context(|| format!("intent {name} was not final after five minutes"))
}

/// Asks `fetch` every 50 ms, for at most `timeout`, until `settled` makes an end of its
/// answer; `None` when the time ran out first.
async fn poll_until<T, R>(
    timeout: Duration,
    mut fetch: impl AsyncFnMut() -> Result<tonic::Response<T>, tonic::Status>,
    mut settled: impl FnMut(T) -> anyhow::Result<Option<R>>,
) -> anyhow::Result<Option<R>> {
    const INTERVAL: Duration = Duration::from_millis(50);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(end) = settled(fetch().await?.into_inner())? {
            return Ok(Some(end));
        }
        tokio::time::sleep(INTERVAL).await;
    }
    Ok(None)
}

/// The daemon under test, as a child process of the benchmark.
struct DaemonChild {
    child: Child,
    /// The API, with a READ and WRITE key of the tenant `bench`.
    channel: ApiChannel,
}

impl DaemonChild {
    async fn spawn(
        chain: &DevChain,
        relayers: &[PrivateKeySigner],
        dir: PathBuf,
    ) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let admin_port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let admin_token = alloy::hex::encode(PrivateKeySigner::random().to_bytes());
        // The benchmark measures the relay, so one key may call as fast as it can.
        let config_file = dir.with_extension("toml");
        std::fs::write(
            &config_file,
            "[api]\nrate_limit_per_second = 1000000\nrate_limit_burst = 1000000\n",
        )?;
        let keys: Vec<String> = relayers
            .iter()
            .map(|key| format!("0x{}", alloy::hex::encode(key.to_bytes())))
            .collect();
        let child = Command::new(std::env::current_exe()?)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--config", &config_file.display().to_string()])
            .env("LATCHKEY_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
            .env("LATCHKEY_ADMIN_TOKEN", &admin_token)
            .args(["--data-dir", &dir.display().to_string()])
            .args(["--rpc-url", chain.rpc_url().as_str()])
            .env("LATCHKEY_FACTORY", chain.deployment.factory.to_string())
            .env("LATCHKEY_RELAYER_PRIVATE_KEY", keys.join(","))
            .env(
                "LATCHKEY_MASTER_KEY",
                crate::keys::MasterKey::generate().to_hex().as_str(),
            )
            .env("LATCHKEY_PAYMASTER", chain.paymaster.to_string())
            .env(
                "LATCHKEY_SPONSOR_SIGNER_KEY",
                format!("0x{}", alloy::hex::encode(chain.sponsor_signer.to_bytes())),
            )
            // Quiet by default, so the report stands out; LATCHKEY_BENCH_LOG sets the
            // daemon's log filter (for example `relay=info`) to see what it did.
            .env(
                "RUST_LOG",
                std::env::var("LATCHKEY_BENCH_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .spawn()
            .context("starting the daemon")?;
        let uri = format!("http://127.0.0.1:{port}");
        let admin = ClientArgs {
            endpoint: uri.clone(),
            api_key: None,
            admin_endpoint: format!("http://127.0.0.1:{admin_port}"),
            admin_token: Some(Secret::new(&admin_token)),
            ca_cert: None,
            json: false,
        };
        for _ in 0..200 {
            if let Ok(channel) = Channel::from_shared(uri.clone())?.connect().await {
                let secret = admin
                    .connect_admin()
                    .await?
                    .create_api_key(proto::CreateApiKeyRequest {
                        tenant: "bench".to_owned(),
                        scopes: vec![
                            proto::ApiKeyScope::Read.into(),
                            proto::ApiKeyScope::Write.into(),
                        ],
                        display_name: "latchkey bench".to_owned(),
                        client_access: proto::ClientAccess::Unspecified.into(),
                    })
                    .await
                    .map_err(super::rpc_error)?
                    .into_inner()
                    .secret;
                let channel = InterceptedService::new(channel, Secret::new(&secret).bearer()?);
                return Ok(Self { child, channel });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        bail!("the daemon did not start listening")
    }

    /// Resident memory now and at its peak, MiB, from /proc.
    fn memory(&self) -> anyhow::Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .context("reading the daemon's /proc status (Linux only)")?;
        let field = |name: &str| -> f64 {
            status
                .lines()
                .find(|line| line.starts_with(name))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
                .map_or(0.0, |kib| kib / 1024.0)
        };
        Ok((field("VmRSS:"), field("VmHWM:")))
    }
}

impl Drop for DaemonChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One line per measure, for people.
pub fn render(report: &BenchReport) -> String {
    let mode = if report.block_time_secs == 0 {
        "automine".to_owned()
    } else {
        format!("{} s blocks", report.block_time_secs)
    };
    let sustained = if report.block_time_secs == 0 {
        String::new()
    } else {
        let target = 0.8 * report.ops_per_30m_block / report.block_time_secs as f64;
        format!(
            "sustained         {:.1} ops/s in the median block ({:.0}% of a 30M-gas block; \
             the 80% target is {:.1})\n",
            report.sustained_ops_per_sec,
            100.0 * report.ops_per_block_median / report.ops_per_30m_block.max(1.0),
            target
        )
    };
    let sponsorship = if report.sponsored {
        format!(
            "sponsorship       the paymaster paid {} wei; the policy recorded {} wei\n",
            report.paymaster_paid_wei, report.policy_recorded_wei
        )
    } else {
        String::new()
    };
    format!(
        "latchkey bench ({mode}, {} accounts, {} relayers)\n\
         intents           {} created, {} confirmed\n\
         throughput        {:.1} confirmed ops/s (created at {:.1}/s)\n\
         latency           p50 {} ms, p90 {} ms, p99 {} ms (created -> confirmed)\n\
         bundles           {} ({:.1} ops per bundle)\n\
         gas per op        {:.0} (a 30M-gas block holds {:.0})\n\
         blocks            {} (median {:.0} ops per block between the first and the last)\n\
         {sustained}\
         daemon memory     {:.1} MiB resident, {:.1} MiB peak\n\
         {sponsorship}",
        report.accounts,
        report.relayers,
        report.intents,
        report.confirmed,
        report.ops_per_sec,
        report.created_per_sec,
        report.latency_ms_p50,
        report.latency_ms_p90,
        report.latency_ms_p99,
        report.bundles,
        report.ops_per_bundle,
        report.gas_per_op,
        report.ops_per_30m_block,
        report.blocks,
        report.ops_per_block_median,
        report.daemon_rss_mib,
        report.daemon_peak_rss_mib,
    )
}
