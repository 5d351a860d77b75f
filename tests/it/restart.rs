//! Crash and restart: the real daemon process is killed with SIGKILL while intents are
//! QUEUED and SUBMITTED, then started again on the same sled directory. Every intent reaches
//! a final state, and every operation executed exactly once on chain.

use std::collections::HashMap;

use alloy::{
    primitives::B256,
    providers::{Provider, ext::AnvilApi},
    rpc::types::Filter,
    signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
use latchkey::{
    api::proto,
    chain::contracts::EntryPoint,
    intent::IntentStatus,
    store::{IntentFilter, PageRequest, SledStore, Store},
};

use crate::{
    daemon::{DaemonProcess, account_address, mint_interaction, mint_session_request},
    harness::TestChain,
};

const FIRST_BATCH: u64 = 6;
const SECOND_BATCH: u64 = 6;
/// One bundle in flight: with mining stopped, the relay sends its first bundle and every
/// other intent waits QUEUED.
const MAX_IN_FLIGHT: usize = 1;

#[tokio::test]
async fn a_killed_daemon_resumes_and_executes_every_intent_exactly_once() {
    let chain = TestChain::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("store");
    let mut daemon = DaemonProcess::spawn(&chain, &data_dir, MAX_IN_FLIGHT).await;

    // An active HELD session.
    let owner = PrivateKeySigner::random();
    let session = daemon
        .sessions
        .create_session(mint_session_request(&chain, owner.address(), 50).await)
        .await
        .expect("create session")
        .into_inner();
    let account = account_address(&session.account);
    chain.fund(account).await;
    let session = daemon.sign_and_activate(&owner, session).await;

    // Blocks stop: submitted transactions wait in anvil's pool.
    chain
        .relayer
        .anvil_set_auto_mine(false)
        .await
        .expect("automine off");
    let mut names = Vec::new();
    for id in 0..FIRST_BATCH {
        names.push(create(&mut daemon, &chain, &session.name, &account.to_string(), id).await);
    }
    wait_until_some_submitted(&mut daemon, &names).await;
    // A second batch, and the process dies while the relay works through it.
    for id in FIRST_BATCH..FIRST_BATCH + SECOND_BATCH {
        names.push(create(&mut daemon, &chain, &session.name, &account.to_string(), id).await);
    }
    daemon.kill();

    let at_crash = statuses(&data_dir).await;
    println!("statuses at the crash: {at_crash:?}");
    assert_eq!(
        at_crash.values().sum::<usize>(),
        names.len(),
        "every acknowledged intent was stored"
    );
    assert!(
        at_crash.keys().all(|status| !status.is_final()),
        "nothing could be final with mining stopped: {at_crash:?}"
    );
    // The first bundle is in flight; the whole second batch, at least, waits behind it.
    let submitted = at_crash.get(&IntentStatus::Submitted).copied().unwrap_or(0);
    let queued = at_crash.get(&IntentStatus::Queued).copied().unwrap_or(0);
    assert!(submitted >= 1, "{at_crash:?}");
    assert!(queued >= SECOND_BATCH as usize, "{at_crash:?}");

    // Mining resumes and the daemon starts again on the same directory.
    chain
        .relayer
        .anvil_set_auto_mine(true)
        .await
        .expect("automine on");
    chain
        .relayer
        .anvil_mine(Some(1), None)
        .await
        .expect("mine the pool");
    let mut daemon = DaemonProcess::spawn(&chain, &data_dir, MAX_IN_FLIGHT).await;
    let mut hashes = Vec::new();
    for name in &names {
        let intent = daemon.wait_final(name).await;
        assert_eq!(
            intent.status,
            proto::TransactionIntentStatus::Confirmed as i32,
            "{intent:?}"
        );
        hashes.push(intent.user_op_hash.parse::<B256>().expect("hash"));
    }

    // On chain: one UserOperationEvent per operation, registration included.
    let filter = Filter::new()
        .address(chain.chain.deployment.entry_point)
        .event_signature(EntryPoint::UserOperationEvent::SIGNATURE_HASH)
        .topic2(account.into_word())
        .from_block(0);
    let logs = chain.relayer.get_logs(&filter).await.expect("logs");
    let mut executed: HashMap<B256, usize> = HashMap::new();
    for log in &logs {
        *executed.entry(log.topics()[1]).or_default() += 1;
    }
    assert_eq!(
        logs.len(),
        names.len() + 1,
        "intents plus the registration, nothing twice"
    );
    for hash in hashes {
        assert_eq!(
            executed.get(&hash),
            Some(&1),
            "{hash} executed exactly once"
        );
    }
}

async fn create(
    daemon: &mut DaemonProcess,
    chain: &TestChain,
    session: &str,
    account: &str,
    id: u64,
) -> String {
    daemon
        .intents
        .create_transaction_intent(proto::CreateTransactionIntentRequest {
            session: session.to_owned(),
            interactions: vec![mint_interaction(chain, account, id, 1)],
            idempotency_key: format!("restart-{id}"),
            policy: String::new(),
        })
        .await
        .expect("create intent")
        .into_inner()
        .name
}

async fn wait_until_some_submitted(daemon: &mut DaemonProcess, names: &[String]) {
    for _ in 0..300 {
        let mut submitted = 0;
        for name in names {
            let intent = daemon
                .intents
                .get_transaction_intent(proto::GetTransactionIntentRequest { name: name.clone() })
                .await
                .expect("get")
                .into_inner();
            if intent.status == proto::TransactionIntentStatus::Submitted as i32 {
                submitted += 1;
            }
        }
        if submitted > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no intent of the first batch was ever SUBMITTED");
}

/// How many call intents the dead daemon's store holds in each status.
async fn statuses(data_dir: &std::path::Path) -> HashMap<IntentStatus, usize> {
    let store = SledStore::open(data_dir).expect("open the dead daemon's store");
    let page = store
        .list_intents(
            &IntentFilter::default(),
            &PageRequest {
                size: 1_000,
                token: None,
            },
        )
        .await
        .expect("list");
    let mut counts = HashMap::new();
    for intent in page
        .items
        .iter()
        .filter(|intent| intent.kind == latchkey::intent::IntentKind::Call)
    {
        *counts.entry(intent.status).or_default() += 1;
    }
    counts
}
