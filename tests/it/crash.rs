//! Crash safety under load: while a client streams 500 intents into the real daemon process
//! and the relay sends them, the process is killed with SIGKILL at a random moment and started
//! again on the same sled directory and the same port, five times over. The client only
//! retries: each create carries its own idempotency key, so a create whose answer was lost in
//! a crash comes back as the same intent. In the end every intent is CONFIRMED, and the chain
//! holds exactly one UserOperationEvent per intent (plus one per session registration):
//! nothing was lost and nothing ran twice.
//!
//! The kill delays come from a seeded generator; the seed is printed, and setting
//! `LATCHKEY_CRASH_SEED` replays the same delays.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use alloy::{
    primitives::B256, providers::Provider, rpc::types::Filter, signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
use futures::StreamExt;
use latchkey::{
    api::proto::{self, TransactionIntentStatus as S},
    chain::contracts::EntryPoint,
    intent::{IntentKind, IntentStatus},
    store::{IntentFilter, PageRequest, SledStore, Store},
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::time::{Instant, sleep, sleep_until};
use tonic::{Code, transport::Channel};

use crate::{
    daemon::{Clients, DaemonProcess, account_address, free_port, is_final, mint_interaction},
    harness::TestChain,
};

const INTENTS: u64 = 500;
const SESSIONS: usize = 10;
/// 50 intents per session, well within the limit.
const CALL_LIMIT: u32 = 100;
const KILLS: usize = 5;
/// Milliseconds between a (re)start and the next kill.
const KILL_DELAY_MS: std::ops::Range<u64> = 300..2_500;
/// Creates in flight at once.
const CREATE_CONCURRENCY: usize = 8;
/// Intent `i` is not created before `i` times this after the load starts. It spreads the 500
/// creates over 20 s, longer than the five kill delays and restarts can add up to, so every
/// kill lands while the client is still creating (and the relay still sending).
const CREATE_PACE: Duration = Duration::from_millis(40);
/// Between retries of a create the daemon did not answer.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// A create still unanswered after this fails the test.
const CREATE_GIVE_UP: Duration = Duration::from_secs(120);
/// All intents final within this after the last restart, or the test fails.
const FINAL_TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test]
async fn five_sigkills_during_five_hundred_intents_lose_none_and_execute_each_exactly_once() {
    let started = Instant::now();
    // One-second blocks: operations gather into bundles of many while each block is awaited,
    // so kills land with multi-operation bundles in the pool, not yet included.
    let chain = TestChain::with_block_time(1).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("store");
    // One port for every daemon: the client's channel outlives each process and reconnects
    // to the next one by itself.
    let port = free_port();
    let mut daemon = DaemonProcess::spawn_on(&chain, &data_dir, port, "").await;
    let mut api = Clients::new(
        Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("uri")
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(10))
            .connect_lazy(),
        &daemon.api_key,
    );

    // Ten players, each with an active HELD session: the daemon signs their intents itself,
    // so every created intent goes straight to QUEUED.
    let mut sessions = Vec::new();
    for _ in 0..SESSIONS {
        let owner = PrivateKeySigner::random();
        let session = api.active_held_session(&chain, &owner, CALL_LIMIT).await;
        let account = account_address(&session.account).to_string();
        sessions.push((session.name, account));
    }

    let acknowledged = Arc::new(AtomicUsize::new(0));
    let driver = tokio::spawn(drive_load(
        api.clone(),
        requests(&chain, &sessions),
        acknowledged.clone(),
    ));

    let seed = std::env::var("LATCHKEY_CRASH_SEED")
        .ok()
        .map(|seed| seed.parse().expect("LATCHKEY_CRASH_SEED is a u64"))
        .unwrap_or_else(rand::random::<u64>);
    let mut rng = StdRng::seed_from_u64(seed);
    println!("crash: seed {seed} (LATCHKEY_CRASH_SEED={seed} replays the kill delays)");
    for kill in 1..=KILLS {
        let delay = rng.random_range(KILL_DELAY_MS);
        sleep(Duration::from_millis(delay)).await;
        daemon.kill();
        let acked = acknowledged.load(Ordering::SeqCst);
        let at_kill = stored_statuses(&data_dir).await;
        let stored: usize = at_kill.iter().map(|(_, count)| count).sum();
        let unfinished: usize = at_kill
            .iter()
            .filter(|(status, _)| !status.is_final())
            .map(|(_, count)| count)
            .sum();
        println!(
            "crash: kill {kill} after {delay} ms: {acked}/{INTENTS} creates acknowledged, \
             {stored} stored, {unfinished} not final: {at_kill:?}"
        );
        // An acknowledged create is durable: its answer was sent before the process died.
        assert!(
            stored >= acked,
            "kill {kill}: {acked} creates were acknowledged but only {stored} intents survived"
        );
        assert!(
            acked < INTENTS as usize || unfinished > 0,
            "kill {kill} hit an idle daemon: every intent was created and final"
        );
        let restart = Instant::now();
        daemon = DaemonProcess::spawn_on(&chain, &data_dir, port, "").await;
        println!(
            "crash: restart {kill} listening after {} ms",
            restart.elapsed().as_millis()
        );
    }
    let created = driver.await.expect("the load driver");
    let load_done = started.elapsed();

    // Distinct keys, distinct intents; and the daemon holds no others (a retried create that
    // made a second intent would show here).
    let names: HashSet<&String> = created.iter().collect();
    assert_eq!(
        names.len(),
        created.len(),
        "two creates returned one intent"
    );
    let intents = wait_all_final(&mut api, &created).await;
    assert_eq!(
        intents.len(),
        created.len(),
        "the daemon holds intents nobody created: {:?}",
        intents
            .keys()
            .filter(|name| !names.contains(name))
            .collect::<Vec<_>>()
    );
    let mut hashes = Vec::new();
    for name in &created {
        let intent = &intents[name];
        assert_eq!(
            intent.status,
            S::Confirmed as i32,
            "{name} did not confirm: {}",
            describe(intent)
        );
        hashes.push(intent.user_op_hash.parse::<B256>().expect("a userOpHash"));
    }

    // On chain: exactly one UserOperationEvent per intent, and one per session registration.
    let filter = Filter::new()
        .address(chain.chain.deployment.entry_point)
        .event_signature(EntryPoint::UserOperationEvent::SIGNATURE_HASH)
        .from_block(0);
    let logs = chain.relayer.get_logs(&filter).await.expect("logs");
    let mut executed: HashMap<B256, usize> = HashMap::new();
    for log in &logs {
        *executed.entry(log.topics()[1]).or_default() += 1;
    }
    for (name, hash) in created.iter().zip(&hashes) {
        assert_eq!(
            executed.get(hash).copied().unwrap_or(0),
            1,
            "{name} ({hash}) must have executed exactly once"
        );
    }
    assert_eq!(
        logs.len(),
        INTENTS as usize + SESSIONS,
        "the intents plus the registrations, nothing twice and nothing extra"
    );
    let bundles: HashSet<_> = logs.iter().map(|log| log.transaction_hash).collect();
    println!(
        "crash: {INTENTS} intents, {KILLS} kills; since the test started, all created at {:.1} s \
         and all final at {:.1} s; {} handleOps transactions",
        load_done.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        bundles.len()
    );
}

/// The 500 creates, round-robin over the sessions, each minting its own token id under its
/// own idempotency key.
fn requests(
    chain: &TestChain,
    sessions: &[(String, String)],
) -> Vec<proto::CreateTransactionIntentRequest> {
    (0..INTENTS)
        .map(|i| {
            let (session, account) = &sessions[i as usize % sessions.len()];
            proto::CreateTransactionIntentRequest {
                session: session.clone(),
                interactions: vec![mint_interaction(chain, account, i, 1)],
                idempotency_key: format!("crash-{i}"),
                policy: String::new(),
            }
        })
        .collect()
}

/// Creates every intent, paced and a few at a time, retrying each until the daemon answers;
/// counts the answers in `acknowledged`. Returns the intents' names in request order.
async fn drive_load(
    api: Clients,
    requests: Vec<proto::CreateTransactionIntentRequest>,
    acknowledged: Arc<AtomicUsize>,
) -> Vec<String> {
    let start = Instant::now();
    let mut names = futures::stream::iter(requests.into_iter().enumerate())
        .map(|(i, request)| {
            let api = api.clone();
            let acknowledged = acknowledged.clone();
            async move {
                sleep_until(start + CREATE_PACE * u32::try_from(i).expect("fits")).await;
                let name = create_until_answered(api, request).await;
                acknowledged.fetch_add(1, Ordering::SeqCst);
                (i, name)
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    names.sort();
    names.into_iter().map(|(_, name)| name).collect()
}

/// Sends the same create until the daemon answers: it may be dead, restarting, or have died
/// after storing the intent but before answering, which the idempotency key covers.
async fn create_until_answered(
    mut api: Clients,
    request: proto::CreateTransactionIntentRequest,
) -> String {
    let since = Instant::now();
    loop {
        match api.intents.create_transaction_intent(request.clone()).await {
            Ok(response) => return response.into_inner().name,
            Err(status) => {
                // Unavailable is the daemon being down; anything else is worth seeing.
                if status.code() != Code::Unavailable {
                    println!(
                        "crash: create {} failed, retrying: {status:?}",
                        request.idempotency_key
                    );
                }
                assert!(
                    since.elapsed() < CREATE_GIVE_UP,
                    "create {} was never answered in {CREATE_GIVE_UP:?}; last error: {status:?}",
                    request.idempotency_key
                );
                sleep(RETRY_PAUSE).await;
            }
        }
    }
}

/// Lists every intent until all of `names` are final (or fails the test with those that are
/// not after [`FINAL_TIMEOUT`]), and returns all the intents the daemon holds by name.
async fn wait_all_final(
    api: &mut Clients,
    names: &[String],
) -> HashMap<String, proto::TransactionIntent> {
    let since = Instant::now();
    loop {
        let listed = list_all(api).await;
        let waiting: Vec<&String> = names
            .iter()
            .filter(|name| {
                !listed
                    .as_ref()
                    .and_then(|intents| intents.get(*name))
                    .is_some_and(|intent| is_final(intent.status))
            })
            .collect();
        if let Some(intents) = &listed
            && waiting.is_empty()
        {
            return intents.clone();
        }
        // Checked whether or not the list answered: a daemon that never answers again
        // fails the test here rather than hanging it.
        if since.elapsed() > FINAL_TIMEOUT {
            let report: Vec<String> = waiting
                .iter()
                .map(
                    |name| match listed.as_ref().and_then(|intents| intents.get(*name)) {
                        Some(intent) => format!("{name}: {}", describe(intent)),
                        None if listed.is_none() => format!("{name}: the list failed"),
                        None => format!("{name}: not listed"),
                    },
                )
                .collect();
            panic!(
                "{} of {} intents not final after {FINAL_TIMEOUT:?}:\n{}",
                waiting.len(),
                names.len(),
                report.join("\n")
            );
        }
        sleep(Duration::from_millis(250)).await;
    }
}

/// Every call intent the daemon lists, by name; `None` if a page failed.
async fn list_all(api: &mut Clients) -> Option<HashMap<String, proto::TransactionIntent>> {
    let mut intents = HashMap::new();
    let mut page_token = String::new();
    loop {
        let page = api
            .intents
            .list_transaction_intents(proto::ListTransactionIntentsRequest {
                page_size: 100,
                page_token,
                kind: proto::TransactionIntentKind::Call as i32,
                ..Default::default()
            })
            .await
            .ok()?
            .into_inner();
        for intent in page.transaction_intents {
            intents.insert(intent.name.clone(), intent);
        }
        if page.next_page_token.is_empty() {
            return Some(intents);
        }
        page_token = page.next_page_token;
    }
}

/// An intent's status, its way there, and why it ended as it did.
fn describe(intent: &proto::TransactionIntent) -> String {
    let name = |status: i32| {
        S::try_from(status).map_or_else(|_| status.to_string(), |s| s.as_str_name().to_owned())
    };
    let history: Vec<String> = intent
        .history
        .iter()
        .map(|transition| name(transition.status))
        .collect();
    format!(
        "{} (history {}; key {}; userOpHash {}; failure {:?}; refusal {:?}; result {:?})",
        name(intent.status),
        history.join(" > "),
        intent.idempotency_key,
        intent.user_op_hash,
        intent.failure_reason,
        intent.refusal,
        intent.result
    )
}

/// How many call intents the killed daemon's store holds in each status, most first.
async fn stored_statuses(data_dir: &Path) -> Vec<(IntentStatus, usize)> {
    let store = SledStore::open(data_dir).expect("open the killed daemon's store");
    let mut counts: HashMap<IntentStatus, usize> = HashMap::new();
    let mut token = None;
    loop {
        let page = store
            .list_intents(
                &IntentFilter {
                    kind: Some(IntentKind::Call),
                    ..IntentFilter::default()
                },
                &PageRequest { size: 1_000, token },
            )
            .await
            .expect("list the stored intents");
        for intent in &page.items {
            *counts.entry(intent.status).or_default() += 1;
        }
        match page.next_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by_key(|&(_, count)| std::cmp::Reverse(count));
    counts
}
