//! Graceful shutdown of the real `latchkey serve` process under load: on SIGTERM it stops
//! taking requests and sending bundles, follows the bundles already sent until they are
//! included or its grace period is over, and exits with the store consistent. A restart on
//! the same store resumes, and every intent executes exactly once.

use std::time::Duration;

use alloy::{providers::ext::AnvilApi, signers::local::PrivateKeySigner};
use latchkey::{
    api::proto::{self, TransactionIntentStatus as S},
    intent::IntentStatus,
    store::{SledStore, Store},
};

use crate::{
    daemon::{Clients, DaemonProcess, free_port, mint_interaction},
    harness::{TestChain, executions},
};

const INTENTS: usize = 120;
const SESSIONS: usize = 4;

/// Creates `INTENTS` mint intents over `sessions` at once and returns their names.
async fn load(api: &Clients, chain: &TestChain, sessions: &[proto::Session]) -> Vec<String> {
    let tasks: Vec<_> = (0..INTENTS)
        .map(|index| {
            let session = &sessions[index % sessions.len()];
            let request = proto::CreateTransactionIntentRequest {
                session: session.name.clone(),
                interactions: vec![mint_interaction(
                    chain,
                    &crate::daemon::account_address(&session.account).to_string(),
                    index as u64,
                    1,
                )],
                idempotency_key: String::new(),
                policy: String::new(),
            };
            let mut intents = api.intents.clone();
            tokio::spawn(async move { intents.create_transaction_intent(request).await })
        })
        .collect();
    let mut names = Vec::new();
    for task in tasks {
        names.push(task.await.expect("task").expect("create").into_inner().name);
    }
    names
}

/// Waits until the daemon reports at least one intent SUBMITTED.
async fn until_submitted(api: &mut Clients) {
    for _ in 0..200 {
        let submitted = api
            .intents
            .list_transaction_intents(proto::ListTransactionIntentsRequest {
                status: S::Submitted as i32,
                page_size: 1,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        if !submitted.transaction_intents.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing was ever SUBMITTED");
}

/// How many of the store's intents are in `status`.
async fn count(data_dir: &std::path::Path, status: IntentStatus) -> usize {
    SledStore::open(data_dir)
        .expect("the store opens after the daemon exited")
        .intents_in_status(status)
        .await
        .expect("read")
        .len()
}

/// A chain with 1 s blocks, a daemon process with `grace` seconds of shutdown grace, and
/// `SESSIONS` active sessions.
async fn stage(
    grace: u64,
) -> (
    TestChain,
    tempfile::TempDir,
    u16,
    DaemonProcess,
    Vec<proto::Session>,
) {
    let chain = TestChain::with_block_time(1).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut daemon = DaemonProcess::spawn_on(
        &chain,
        &dir.path().join("store"),
        port,
        &format!("shutdown_grace_secs = {grace}\n"),
    )
    .await;
    let mut sessions = Vec::new();
    for _ in 0..SESSIONS {
        sessions.push(
            daemon
                .active_held_session(&chain, &PrivateKeySigner::random(), 100)
                .await,
        );
    }
    (chain, dir, port, daemon, sessions)
}

/// Restarts the daemon on the store and waits until every intent is CONFIRMED, each
/// executed exactly once on chain.
async fn resume_and_check(chain: &TestChain, dir: &tempfile::TempDir, port: u16, names: &[String]) {
    let mut daemon = DaemonProcess::spawn_on(chain, &dir.path().join("store"), port, "").await;
    let mut hashes: Vec<alloy::primitives::B256> = Vec::new();
    for name in names {
        let done = daemon.wait_final(name).await;
        assert_eq!(done.status, S::Confirmed as i32, "{name}: {done:?}");
        hashes.push(done.user_op_hash.parse().expect("hash"));
    }
    let executed = executions(chain).await;
    for hash in hashes {
        assert_eq!(
            executed.get(&hash),
            Some(&1),
            "{hash} executed exactly once"
        );
    }
    daemon.kill();
}

#[tokio::test]
async fn sigterm_under_load_drains_the_bundles_in_flight_and_a_restart_loses_nothing() {
    let (chain, dir, port, mut daemon, sessions) = stage(20).await;
    let names = load(&daemon.api, &chain, &sessions).await;
    until_submitted(&mut daemon.api).await;

    let (took, status) = daemon.terminate(Duration::from_secs(25)).await;
    assert!(status.success(), "a clean exit: {status:?}");
    assert!(
        took < Duration::from_secs(20),
        "exited within the grace period: {took:?}"
    );
    // Drained: no bundle was left in the pool with its fate unknown.
    let data_dir = dir.path().join("store");
    assert_eq!(count(&data_dir, IntentStatus::Submitted).await, 0);
    resume_and_check(&chain, &dir, port, &names).await;
}

#[tokio::test]
async fn a_drain_that_outlasts_the_grace_period_stops_on_time_and_resumes_at_restart() {
    let (chain, dir, port, mut daemon, sessions) = stage(2).await;
    let names = load(&daemon.api, &chain, &sessions).await;
    until_submitted(&mut daemon.api).await;
    // No more blocks: the bundles in flight cannot be included before the grace is over.
    chain
        .relayer
        .anvil_set_interval_mining(0)
        .await
        .expect("stop mining");

    let (took, status) = daemon.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "a clean exit: {status:?}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "waited out the 2 s grace period, and no longer: {took:?}"
    );
    let data_dir = dir.path().join("store");
    assert!(
        count(&data_dir, IntentStatus::Submitted).await > 0,
        "bundles were left in flight"
    );
    chain
        .relayer
        .anvil_set_interval_mining(1)
        .await
        .expect("mine again");
    resume_and_check(&chain, &dir, port, &names).await;
}
