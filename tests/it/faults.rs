//! Chain faults the relay must ride out: a fee spike that strands a bundle, a reorg that
//! removes one, an RPC endpoint that goes away and comes back, a relayer that runs dry, and
//! operations that can find no way onto the chain before their deadline.

use std::time::Duration;

use alloy::{
    network::TransactionBuilder,
    node_bindings::Anvil,
    primitives::{Address, TxHash, utils::parse_ether},
    providers::{Provider, ext::AnvilApi},
    rpc::types::{TransactionRequest, anvil::ReorgOptions},
    signers::local::PrivateKeySigner,
};
use futures::StreamExt;
use latchkey::{
    api::proto::{self, TransactionIntentStatus as S},
    chain::{
        contracts::EntryPoint,
        devnet::{DevChainOptions, anvil_path},
    },
    config::Config,
    intent::IntentStatus,
    relay::HEALTH_SERVICE,
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{
    daemon::{TestDaemon, free_port, is_final, stored_intent},
    harness::{TestChain, executions},
};

#[tokio::test]
async fn a_bundle_stuck_under_a_fee_spike_is_replaced_and_confirms_without_a_nonce_gap() {
    let (chain, mut daemon, session) = stage(|config| config.relayer.bump_after_blocks = 2).await;
    let relayer = chain.chain.relayer.address();
    let nonce_before = nonce(&chain, relayer).await;

    // Blocks stop, and the bundle waits in the pool at the fees of the moment.
    pause_mining(&chain).await;
    let names = create_mints(&mut daemon, &chain, &session, 0..5).await;
    // One bundle in flight per relayer: the first is sent, the rest wait behind it.
    daemon.wait_status(&names[0], S::Submitted).await;
    let first = stored_intent(&daemon, &names[0])
        .submission
        .expect("submitted");
    let stuck: Vec<&String> = names
        .iter()
        .filter(|name| {
            stored_intent(&daemon, name)
                .submission
                .is_some_and(|submission| submission.tx_hash == first.tx_hash)
        })
        .collect();

    // The base fee jumps far above the bundle's fee cap: the bundle cannot be included
    // until the base fee decays below it, dozens of blocks away.
    let spike = first.max_fee_per_gas * 20;
    chain
        .relayer
        .anvil_set_next_block_base_fee_per_gas(spike)
        .await
        .expect("anvil");
    chain
        .relayer
        .anvil_mine(Some(1), None)
        .await
        .expect("anvil");
    assert!(
        stuck
            .iter()
            .all(|name| stored_intent(&daemon, name).status == IntentStatus::Submitted),
        "nothing can be included above its fee cap"
    );

    mine_until_final(&mut daemon, &chain, &names).await;
    let bundles = confirmed_bundles(&daemon, &names);
    // anvil evicts a transaction whose fee cap the base fee passed, so the relay finds the
    // original gone with its nonce unused, and sends the operations again at that same
    // nonce, priced for the new base fee. (A node that keeps it in the pool gets a
    // replacement with bumped fees instead; the congestion test shows that path.)
    for name in &stuck {
        let intent = stored_intent(&daemon, name);
        let submission = intent.submission.expect("submission kept");
        let result = intent.result.expect("result");
        assert_eq!(
            submission.relayer_nonce, first.relayer_nonce,
            "the replacement takes the stuck bundle's nonce"
        );
        assert_ne!(
            result.tx_hash, first.tx_hash,
            "the original, priced under the spike, never landed"
        );
        assert!(submission.max_fee_per_gas > first.max_fee_per_gas);
    }
    assert_no_nonce_gap(&chain, relayer, nonce_before + bundles.len() as u64).await;
    let replacement = stored_intent(&daemon, stuck[0])
        .submission
        .expect("submission");
    println!(
        "fee spike: {} at nonce {} (max fee {}) replaced by {} (max fee {}); {} bundles mined",
        first.tx_hash,
        first.relayer_nonce,
        first.max_fee_per_gas,
        replacement.tx_hash,
        replacement.max_fee_per_gas,
        bundles.len()
    );
}

#[tokio::test]
async fn a_bundle_outbid_for_block_space_is_replaced_with_bumped_fees_at_the_same_nonce() {
    let (chain, mut daemon, session) = stage(|config| config.relayer.bump_after_blocks = 2).await;
    let relayer = chain.chain.relayer.address();
    let nonce_before = nonce(&chain, relayer).await;

    // Small blocks, and blocks only when the test mines them.
    const BLOCK_GAS: u64 = 1_000_000;
    chain
        .relayer
        .anvil_set_block_gas_limit(BLOCK_GAS)
        .await
        .expect("anvil");
    pause_mining(&chain).await;
    let names = create_mints(&mut daemon, &chain, &session, 0..1).await;
    let mut watch = daemon
        .intents
        .watch_transaction_intent(proto::WatchTransactionIntentRequest {
            name: names[0].clone(),
        })
        .await
        .expect("watch")
        .into_inner();
    daemon.wait_status(&names[0], S::Submitted).await;
    let first = stored_intent(&daemon, &names[0])
        .submission
        .expect("submitted");

    // Every block, a transaction with a far higher tip burns almost all of the block's gas
    // (a creation whose code is INVALID, which consumes every unit it was given), so the
    // bundle stays valid and pending, but never fits.
    let competitor = chain.chain.dev_accounts()[0];
    let mut blocks = 0;
    loop {
        let bid = TransactionRequest::default()
            .with_from(competitor)
            .with_deploy_code(vec![0xfe])
            .with_gas_limit(BLOCK_GAS - 50_000)
            .with_max_fee_per_gas(first.max_fee_per_gas * 100)
            .with_max_priority_fee_per_gas(first.max_fee_per_gas * 50);
        let _pending = chain
            .chain
            .provider
            .send_transaction(bid)
            .await
            .expect("competing transaction");
        chain
            .relayer
            .anvil_mine(Some(1), None)
            .await
            .expect("anvil");
        blocks += 1;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let submission = stored_intent(&daemon, &names[0])
            .submission
            .expect("submitted");
        if submission.attempts.len() >= 2 {
            break;
        }
        assert!(blocks < 20, "no replacement after {blocks} blocks");
        assert_eq!(
            stored_intent(&daemon, &names[0]).status,
            IntentStatus::Submitted
        );
    }

    // The competition stops; the replacement lands.
    mine_until_final(&mut daemon, &chain, &names).await;
    let intent = stored_intent(&daemon, &names[0]);
    assert_eq!(intent.status, IntentStatus::Confirmed);
    let submission = intent.submission.expect("submission");
    let result = intent.result.expect("result");
    assert_eq!(submission.relayer_nonce, first.relayer_nonce);
    assert_eq!(submission.attempts[0], first.tx_hash);
    assert_ne!(result.tx_hash, first.tx_hash, "a replacement landed");
    assert!(
        submission.attempts.contains(&result.tx_hash),
        "the landed transaction is one the store knew before it was sent"
    );
    assert!(
        submission.max_priority_fee_per_gas * 10 >= first.max_priority_fee_per_gas * 12,
        "each replacement raised the fees by the configured 20%"
    );
    // One nonce for the bundle, however many transactions were sent at it.
    assert_no_nonce_gap(&chain, relayer, nonce_before + 1).await;
    // The metrics counted the replacements the node took (at most every one sent).
    let metrics = daemon.scrape().await;
    let bumps = metrics
        .get("latchkey_fee_bumps_total")
        .copied()
        .unwrap_or_default();
    assert!(
        (1.0..=(submission.attempts.len() - 1) as f64).contains(&bumps),
        "{bumps} bumps for {} transactions",
        submission.attempts.len()
    );
    // The watch stream showed each transaction the operation was sent in.
    let mut sent_in = Vec::new();
    while let Some(update) = watch.next().await {
        let update = update.expect("update");
        if update.status == S::Submitted as i32 {
            let shown = update.submission.as_ref().expect("submission");
            sent_in.push(shown.transaction_hash.clone());
        }
        if update.status == S::Confirmed as i32 {
            let shown = update.submission.expect("submission");
            assert_eq!(
                shown.replaced_transaction_hashes.first(),
                Some(&first.tx_hash.to_string()),
                "the API names the transactions a replacement replaced"
            );
        }
    }
    assert!(
        sent_in.len() >= 2,
        "a SUBMITTED update per transaction: {sent_in:?}"
    );
    assert_eq!(sent_in[0], first.tx_hash.to_string());
    println!(
        "congestion: {} replaced {} times over {blocks} blocks; landed {}",
        first.tx_hash,
        submission.attempts.len() - 1,
        result.tx_hash
    );
}

#[tokio::test]
async fn a_relayer_nonce_held_by_an_unknown_transaction_is_skipped_without_a_gap() {
    let (chain, mut daemon, session) = stage(|_| {}).await;
    let relayer = chain.chain.relayer.address();
    pause_mining(&chain).await;
    // Someone else with the relayer's key takes its next nonce in the pool, paying more
    // than latchkey would: latchkey's bundle at that nonce is refused as underpriced.
    let taken = nonce(&chain, relayer).await;
    let fees = chain.relayer.estimate_eip1559_fees().await.expect("fees");
    let _pending = chain
        .relayer
        .send_transaction(
            TransactionRequest::default()
                .with_from(relayer)
                .with_to(relayer)
                .with_nonce(taken)
                .with_gas_limit(21_000)
                .with_max_fee_per_gas(fees.max_fee_per_gas * 10)
                .with_max_priority_fee_per_gas(fees.max_fee_per_gas * 5),
        )
        .await
        .expect("the other sender's transaction");

    let names = create_mints(&mut daemon, &chain, &session, 0..3).await;
    // The first bundle is refused at the taken nonce and sent again at the next one.
    for _ in 0..100 {
        let first = stored_intent(&daemon, &names[0]);
        let moved_on = first
            .submission
            .is_some_and(|submission| submission.relayer_nonce != taken);
        if moved_on && first.status == IntentStatus::Submitted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let submission = stored_intent(&daemon, &names[0])
        .submission
        .expect("submitted");
    assert_eq!(
        submission.relayer_nonce,
        taken + 1,
        "the bundle took the next nonce instead of fighting over the taken one"
    );
    mine_until_final(&mut daemon, &chain, &names).await;
    let bundles = confirmed_bundles(&daemon, &names);
    // The other sender's transaction and every bundle mined, nothing skipped.
    assert_no_nonce_gap(&chain, relayer, taken + 1 + bundles.len() as u64).await;
}

#[tokio::test]
async fn a_bundle_lost_below_another_in_flight_is_sent_again_from_the_lowest_free_nonce() {
    let (chain, mut daemon, session) = stage(|config| config.relayer.max_in_flight = 2).await;
    let relayer = chain.chain.relayer.address();
    let nonce_before = nonce(&chain, relayer).await;
    pause_mining(&chain).await;
    // Two bundles in flight, at consecutive nonces.
    let lost = create_mints(&mut daemon, &chain, &session, 0..1).await;
    daemon.wait_status(&lost[0], S::Submitted).await;
    let behind = create_mints(&mut daemon, &chain, &session, 1..2).await;
    daemon.wait_status(&behind[0], S::Submitted).await;
    let first = stored_intent(&daemon, &lost[0])
        .submission
        .expect("submitted");
    let second = stored_intent(&daemon, &behind[0])
        .submission
        .expect("submitted");
    assert_eq!(second.relayer_nonce, first.relayer_nonce + 1);

    // The node forgets the lower one: the upper one cannot be mined until the hole is
    // filled. (anvil forgets the upper one too, as it depended on the lower; a node that
    // keeps it gets the hole filled under it.)
    chain
        .relayer
        .anvil_drop_transaction(first.tx_hash)
        .await
        .expect("drop the transaction");
    for _ in 0..100 {
        let resent = stored_intent(&daemon, &lost[0])
            .submission
            .expect("submission");
        if resent.tx_hash != first.tx_hash {
            assert_eq!(
                resent.relayer_nonce, first.relayer_nonce,
                "resent at its own nonce, not after the bundle above it"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let names = [lost[0].clone(), behind[0].clone()];
    mine_until_final(&mut daemon, &chain, &names).await;
    let bundles = confirmed_bundles(&daemon, &names);
    assert!(
        !bundles.contains(&first.tx_hash),
        "the dropped transaction never landed"
    );
    assert_no_nonce_gap(&chain, relayer, nonce_before + bundles.len() as u64).await;
    assert_each_executed_once(&chain, &daemon, &names).await;
}

#[tokio::test]
async fn a_reorged_bundle_is_included_again_and_each_operation_confirms_exactly_once() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start_with(&chain, |config| {
        config.relayer.confirmations = 3;
    })
    .await;
    // Blocks keep coming while the session registers, so its registration gets deep enough.
    let miner = mine_every(&chain, Duration::from_millis(200));
    let session = daemon
        .active_held_session(&chain, &PrivateKeySigner::random(), 20)
        .await;
    miner.abort();

    pause_mining(&chain).await;
    let names = create_mints(&mut daemon, &chain, &session, 0..4).await;
    let mut watch = daemon
        .intents
        .watch_transaction_intent(proto::WatchTransactionIntentRequest {
            name: names[0].clone(),
        })
        .await
        .unwrap()
        .into_inner();
    daemon.wait_status(&names[0], S::Submitted).await;
    chain.relayer.anvil_mine(Some(1), None).await.expect("mine");
    daemon.wait_status(&names[0], S::Included).await;
    let lost_block = stored_intent(&daemon, &names[0])
        .result
        .expect("included")
        .block_hash;

    // The block with the bundle is replaced by an empty one.
    chain
        .relayer
        .anvil_reorg(ReorgOptions {
            depth: 1,
            tx_block_pairs: Vec::new(),
        })
        .await
        .expect("anvil");
    mine_until_final(&mut daemon, &chain, &names).await;

    let mut seen = Vec::new();
    while let Some(update) = watch.next().await {
        seen.push(update.expect("update").status);
    }
    let included_then_back = seen
        .windows(2)
        .any(|pair| pair == [S::Included as i32, S::Submitted as i32]);
    assert!(included_then_back, "the stream shows the reorg: {seen:?}");
    assert_eq!(seen.last(), Some(&(S::Confirmed as i32)));

    for name in &names {
        let intent = stored_intent(&daemon, name);
        assert_eq!(intent.status, IntentStatus::Confirmed);
        let result = intent.result.expect("result");
        assert_ne!(result.block_hash, lost_block, "confirmed in the new chain");
    }
    assert_each_executed_once(&chain, &daemon, &names).await;
    // Every INCLUDED -> SUBMITTED step in the intents' histories is one reorg counted.
    let reorged: usize = names
        .iter()
        .map(|name| {
            stored_intent(&daemon, name)
                .history
                .windows(2)
                .filter(|steps| {
                    steps[0].0 == IntentStatus::Included && steps[1].0 == IntentStatus::Submitted
                })
                .count()
        })
        .sum();
    assert!(reorged >= 1);
    let metrics = daemon.scrape().await;
    assert_eq!(
        metrics.get("latchkey_reorgs_total").copied(),
        Some(reorged as f64),
        "{metrics:?}"
    );
}

#[tokio::test]
async fn the_relay_rides_out_an_rpc_outage_and_recovers_without_a_restart() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("anvil-state.json");
    let state_arg = state.display().to_string();
    let mut chain = TestChain::start_with(DevChainOptions {
        block_time: None,
        port: Some(port),
        args: vec!["--state".into(), state_arg.clone()],
    })
    .await;
    let mut daemon = TestDaemon::start_with(&chain, |config| {
        config.relayer.max_backoff_ms = 1_000;
    })
    .await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", daemon.addr))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut health = HealthClient::new(channel);
    assert_eq!(relay_health(&mut health).await, ServingStatus::Serving);
    let session = daemon
        .active_held_session(&chain, &PrivateKeySigner::random(), 20)
        .await;

    // Bundles wait in the pool when the node goes down.
    pause_mining(&chain).await;
    let names = create_mints(&mut daemon, &chain, &session, 0..3).await;
    daemon.wait_status(&names[0], S::Submitted).await;
    // A graceful stop, so anvil writes its state for the restart.
    let node = chain.chain.node_mut();
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    node.wait().unwrap();

    wait_health(&mut health, ServingStatus::NotServing).await;
    // The daemon is up and answers from its store.
    for name in &names {
        let intent = daemon
            .intents
            .get_transaction_intent(proto::GetTransactionIntentRequest { name: name.clone() })
            .await
            .expect("the API answers during the outage")
            .into_inner();
        assert!(!is_final(intent.status));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let _restarted = Anvil::at(anvil_path())
        .port(port)
        .args(["--state", &state_arg])
        .try_spawn()
        .expect("anvil restarts on its state");
    wait_health(&mut health, ServingStatus::Serving).await;
    for name in &names {
        let intent = daemon.wait_final(name).await;
        assert_eq!(intent.status, S::Confirmed as i32, "{intent:?}");
    }
    assert_each_executed_once(&chain, &daemon, &names).await;
}

#[tokio::test]
async fn a_relayer_without_funds_leaves_the_rotation_and_rejoins_once_funded() {
    let chain = TestChain::start().await;
    let dry = PrivateKeySigner::random();
    let dry_key = format!("0x{}", alloy::hex::encode(dry.to_bytes()));
    let mut daemon = TestDaemon::start_with(&chain, |config| {
        config.relayer.private_keys = vec![dry_key];
    })
    .await;
    let session = daemon
        .active_held_session(&chain, &PrivateKeySigner::random(), 40)
        .await;
    let names = create_mints(&mut daemon, &chain, &session, 0..8).await;
    for name in &names {
        let intent = daemon.wait_final(name).await;
        assert_eq!(intent.status, S::Confirmed as i32, "{intent:?}");
    }
    assert_eq!(
        nonce(&chain, dry.address()).await,
        0,
        "the dry relayer sent nothing; the funded one carried its share"
    );

    chain
        .relayer
        .anvil_set_balance(dry.address(), parse_ether("10").unwrap())
        .await
        .expect("anvil");
    for round in 0..20u64 {
        let more = create_mints(&mut daemon, &chain, &session, 100 + round..101 + round).await;
        let intent = daemon.wait_final(&more[0]).await;
        assert_eq!(intent.status, S::Confirmed as i32, "{intent:?}");
        if nonce(&chain, dry.address()).await > 0 {
            return;
        }
    }
    panic!("the funded relayer never rejoined the rotation");
}

#[tokio::test]
async fn operations_that_wait_past_their_deadline_are_dropped_with_the_reason() {
    const MARGIN_SECS: u64 = 2;
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start_with(&chain, |config| {
        config.relayer.queue_timeout_secs = 2;
        config.intents.window_margin_secs = MARGIN_SECS;
        config.relayer.window_margin_secs = 1;
    })
    .await;
    let session = daemon
        .active_held_session(&chain, &PrivateKeySigner::random(), 3)
        .await;
    // The only relayer runs dry: nothing can be sent.
    chain
        .relayer
        .anvil_set_balance(chain.chain.relayer.address(), Default::default())
        .await
        .expect("anvil");
    let names = create_mints(&mut daemon, &chain, &session, 0..3).await;
    for name in &names {
        let intent = daemon.wait_final(name).await;
        assert_eq!(intent.status, S::Dropped as i32, "{intent:?}");
        // The deadline the key signed is the queue timeout and the window margin from its
        // creation, and DROPPED comes only once it has passed.
        let deadline = u64::try_from(intent.valid_until).expect("a deadline");
        let created = intent.create_time.expect("created").seconds;
        assert!(
            deadline >= u64::try_from(created).expect("time") + 2 + MARGIN_SECS,
            "{intent:?}"
        );
        assert!(
            intent
                .failure_reason
                .contains(&format!("not included by its deadline, {deadline}")),
            "{}",
            intent.failure_reason
        );
        let dropped_at = intent.update_time.expect("updated").seconds;
        assert!(
            u64::try_from(dropped_at).expect("time") >= deadline,
            "dropped only after the deadline: {intent:?}"
        );
    }
    // The limits they reserved are given back: three more fit in a limit of three.
    chain
        .relayer
        .anvil_set_balance(chain.chain.relayer.address(), parse_ether("10").unwrap())
        .await
        .expect("anvil");
    let names = create_mints(&mut daemon, &chain, &session, 10..13).await;
    for name in &names {
        let intent = daemon.wait_final(name).await;
        assert_eq!(intent.status, S::Confirmed as i32, "{intent:?}");
    }
}

#[tokio::test]
async fn a_dropped_operation_sent_again_after_its_deadline_is_refused_on_chain() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start_with(&chain, |config| {
        config.relayer.queue_timeout_secs = 1;
        config.intents.window_margin_secs = 2;
        config.relayer.window_margin_secs = 1;
    })
    .await;
    let session = daemon
        .active_held_session(&chain, &PrivateKeySigner::random(), 3)
        .await;
    // The only relayer runs dry, so the operation waits out its deadline and is DROPPED.
    let relayer = chain.chain.relayer.address();
    chain
        .relayer
        .anvil_set_balance(relayer, Default::default())
        .await
        .expect("anvil");
    let name = daemon.create_mint(&chain, &session, 1).await.name;
    let dropped = daemon.wait_final(&name).await;
    assert_eq!(dropped.status, S::Dropped as i32, "{dropped:?}");

    // Whoever kept its signed copy sends it by hand: the account put the deadline in
    // validationData, so the EntryPoint refuses it.
    let signed = stored_intent(&daemon, &name);
    assert!(!signed.user_op.signature.is_empty(), "it was signed");
    chain
        .relayer
        .anvil_set_balance(relayer, parse_ether("10").expect("constant"))
        .await
        .expect("anvil");
    let error = chain
        .handle_op(&signed.user_op)
        .await
        .expect_err("a dropped operation can never execute");
    match error.as_decoded_interface_error::<EntryPoint::EntryPointErrors>() {
        Some(EntryPoint::EntryPointErrors::FailedOp(failed)) => {
            assert_eq!(failed.reason, "AA22 expired or not due");
        }
        other => panic!("expected FailedOp AA22, got {other:?} from {error}"),
    }
    assert_eq!(
        executions(&chain).await.get(&signed.user_op_hash),
        None,
        "it never executed"
    );
}

/// Mines a block every `interval` until the returned task is aborted.
fn mine_every(chain: &TestChain, interval: Duration) -> tokio::task::JoinHandle<()> {
    let provider = chain.relayer.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            provider.anvil_mine(Some(1), None).await.expect("mine");
        }
    })
}

/// A chain, a daemon with its configuration adjusted by `adjust`, and an ACTIVE HELD session
/// allowed 20 mints.
async fn stage(adjust: impl FnOnce(&mut Config)) -> (TestChain, TestDaemon, proto::Session) {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start_with(&chain, adjust).await;
    let session = daemon
        .active_held_session(&chain, &PrivateKeySigner::random(), 20)
        .await;
    (chain, daemon, session)
}

/// From now on blocks come only when the test mines them.
async fn pause_mining(chain: &TestChain) {
    chain
        .relayer
        .anvil_set_auto_mine(false)
        .await
        .expect("automine off");
}

/// Checks every intent is CONFIRMED, and returns the transactions that included them.
fn confirmed_bundles(daemon: &TestDaemon, names: &[String]) -> Vec<TxHash> {
    let mut bundles = Vec::new();
    for name in names {
        let intent = stored_intent(daemon, name);
        assert_eq!(intent.status, IntentStatus::Confirmed, "{name}");
        let tx = intent.result.expect("result").tx_hash;
        if !bundles.contains(&tx) {
            bundles.push(tx);
        }
    }
    bundles
}

/// No nonce gap: the relayer's nonce at the latest block is `expected`, and the pool holds
/// nothing of it beyond (a transaction behind a gap would wait there forever).
async fn assert_no_nonce_gap(chain: &TestChain, relayer: Address, expected: u64) {
    let mined = nonce(chain, relayer).await;
    let pending = chain
        .relayer
        .get_transaction_count(relayer)
        .pending()
        .await
        .expect("pending nonce");
    assert_eq!(
        mined, expected,
        "every nonce used carries a mined transaction"
    );
    assert_eq!(pending, mined, "no transaction left behind a gap");
}

/// Creates one mint intent per id on `session`'s account and returns their names.
async fn create_mints(
    daemon: &mut TestDaemon,
    chain: &TestChain,
    session: &proto::Session,
    ids: std::ops::Range<u64>,
) -> Vec<String> {
    let mut names = Vec::new();
    for id in ids {
        names.push(daemon.create_mint(chain, session, id).await.name);
    }
    names
}

/// Mines a block every 200 ms until every intent is final (or fails after 30 s).
async fn mine_until_final(daemon: &mut TestDaemon, chain: &TestChain, names: &[String]) {
    for _ in 0..150 {
        chain
            .relayer
            .anvil_mine(Some(1), None)
            .await
            .expect("anvil");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let done = names
            .iter()
            .all(|name| stored_intent(daemon, name).status.is_final());
        if done {
            return;
        }
    }
    let statuses: Vec<_> = names
        .iter()
        .map(|name| stored_intent(daemon, name).status)
        .collect();
    panic!("not final after 150 blocks: {statuses:?}");
}

/// Each intent's operation has exactly one `UserOperationEvent` on the canonical chain.
async fn assert_each_executed_once(chain: &TestChain, daemon: &TestDaemon, names: &[String]) {
    let executed = executions(chain).await;
    for name in names {
        let hash = stored_intent(daemon, name).user_op_hash;
        assert_eq!(
            executed.get(&hash),
            Some(&1),
            "{name} executed exactly once"
        );
    }
}

async fn nonce(chain: &TestChain, address: Address) -> u64 {
    chain
        .relayer
        .get_transaction_count(address)
        .latest()
        .await
        .expect("nonce")
}

async fn relay_health(health: &mut HealthClient<tonic::transport::Channel>) -> ServingStatus {
    let response = health
        .check(HealthCheckRequest {
            service: HEALTH_SERVICE.to_owned(),
        })
        .await
        .expect("health check")
        .into_inner();
    ServingStatus::try_from(response.status).expect("a known status")
}

async fn wait_health(health: &mut HealthClient<tonic::transport::Channel>, want: ServingStatus) {
    for _ in 0..150 {
        if relay_health(health).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the relay's health never became {want:?}");
}
