//! Bundling: queued operations share `handleOps` transactions, and an operation the
//! EntryPoint refuses is taken out of its bundle with its reason while the others confirm.

use std::collections::{HashMap, HashSet};

use alloy::{
    network::EthereumWallet,
    primitives::utils::parse_ether,
    providers::{Provider, ProviderBuilder, ext::AnvilApi},
    signers::local::PrivateKeySigner,
};
use latchkey::{
    api::proto::{self, TransactionIntentStatus as S},
    chain::contracts::SessionKeyAccount,
};

use crate::{
    daemon::{TestDaemon, account_address, mint_interaction, registration},
    harness::TestChain,
};

const PLAYERS: usize = 4;
const INTENTS_PER_PLAYER: usize = 50;

#[tokio::test]
async fn two_hundred_intents_share_far_fewer_bundles_and_all_confirm() {
    let chain = TestChain::with_block_time(1).await;
    let mut daemon = TestDaemon::start(&chain).await;
    let mut sessions = Vec::new();
    for _ in 0..PLAYERS {
        let owner = PrivateKeySigner::random();
        let session = daemon.active_held_session(&chain, &owner, 100).await;
        let account = account_address(&session.account).to_string();
        sessions.push((session.name, account));
    }

    let mut names = Vec::new();
    for id in 0..INTENTS_PER_PLAYER as u64 {
        for (session, account) in &sessions {
            let interaction = mint_interaction(&chain, account, id, 1);
            let name = daemon
                .intents
                .create_transaction_intent(proto::CreateTransactionIntentRequest {
                    session: session.clone(),
                    interactions: vec![interaction],
                    idempotency_key: String::new(),
                    policy: String::new(),
                })
                .await
                .expect("create intent")
                .into_inner()
                .name;
            names.push(name);
        }
    }

    let mut bundles: HashMap<String, usize> = HashMap::new();
    for name in &names {
        let intent = daemon.wait_final(name).await;
        assert_eq!(intent.status, S::Confirmed as i32, "{intent:?}");
        let tx = intent.result.expect("result").transaction_hash;
        *bundles.entry(tx).or_default() += 1;
    }
    let mean = names.len() as f64 / bundles.len() as f64;
    println!(
        "{} intents in {} bundles: {mean:.1} ops per bundle (largest {})",
        names.len(),
        bundles.len(),
        bundles.values().max().copied().unwrap_or(0)
    );
    assert!(
        mean >= 8.0,
        "{} bundles for {} intents",
        bundles.len(),
        names.len()
    );
}

#[tokio::test]
async fn a_refused_operation_leaves_its_bundle_and_the_others_confirm() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let (alice, bob) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let alice_session = daemon.active_held_session(&chain, &alice, 10).await;
    let bob_session = daemon.active_held_session(&chain, &bob, 10).await;
    let alice_account = account_address(&alice_session.account);
    let bob_account = account_address(&bob_session.account);

    // Blocks stop. Bob's first intent goes out alone and waits for a block; everything
    // created after it queues behind it.
    chain
        .relayer
        .anvil_set_auto_mine(false)
        .await
        .expect("automine off");
    let first = create_mint(
        &mut daemon,
        &chain,
        &bob_session.name,
        &bob_account.to_string(),
        0,
    )
    .await;
    daemon.wait_status(&first, S::Submitted).await;
    let mut alice_intents = Vec::new();
    let mut bob_intents = vec![first];
    for id in 1..=3 {
        alice_intents.push(
            create_mint(
                &mut daemon,
                &chain,
                &alice_session.name,
                &alice_account.to_string(),
                id,
            )
            .await,
        );
        bob_intents.push(
            create_mint(
                &mut daemon,
                &chain,
                &bob_session.name,
                &bob_account.to_string(),
                id,
            )
            .await,
        );
    }

    // Meanwhile Alice's wallet revokes her session key directly on chain.
    chain
        .relayer
        .anvil_set_balance(alice.address(), parse_ether("1").expect("constant"))
        .await
        .expect("fund");
    let wallet = ProviderBuilder::new()
        .wallet(EthereumWallet::from(alice.clone()))
        .connect_http(chain.chain.rpc_url());
    let _pending = SessionKeyAccount::new(alice_account, &wallet)
        .revokeSessionKey(registration(&alice_session))
        .send()
        .await
        .expect("revoke on chain");
    chain
        .relayer
        .anvil_set_auto_mine(true)
        .await
        .expect("automine on");
    chain.relayer.anvil_mine(Some(1), None).await.expect("mine");

    let mut bob_txs = HashSet::new();
    for name in &bob_intents {
        let intent = daemon.wait_final(name).await;
        assert_eq!(intent.status, S::Confirmed as i32, "{intent:?}");
        bob_txs.insert(intent.result.expect("result").transaction_hash);
    }
    for name in &alice_intents {
        let intent = daemon.wait_final(name).await;
        assert_eq!(intent.status, S::Dropped as i32, "{intent:?}");
        let refusal = intent.refusal.expect("the reason");
        assert_eq!(refusal.aa_code, "AA24", "{refusal:?}");
        assert!(!refusal.remedy.is_empty());
    }
    assert!(
        bob_txs.len() <= 2,
        "Bob's queued intents shared a bundle: {bob_txs:?}"
    );
}

async fn create_mint(
    daemon: &mut TestDaemon,
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
            idempotency_key: String::new(),
            policy: String::new(),
        })
        .await
        .expect("create intent")
        .into_inner()
        .name
}

#[tokio::test]
async fn with_four_relayers_bundles_from_different_relayers_share_a_block() {
    let chain = TestChain::with_block_time(1).await;
    let extra: Vec<PrivateKeySigner> = (0..3).map(|_| PrivateKeySigner::random()).collect();
    for signer in &extra {
        chain
            .relayer
            .anvil_set_balance(signer.address(), parse_ether("100").expect("constant"))
            .await
            .expect("fund");
    }
    let keys: Vec<String> = extra
        .iter()
        .map(|signer| format!("0x{}", alloy::hex::encode(signer.to_bytes())))
        .collect();
    let mut daemon = TestDaemon::start_with(&chain, |config| {
        config.relayer.private_keys = keys;
        // Small bundles, so the queue outgrows one bundle per block.
        config.relayer.max_ops_per_bundle = 4;
    })
    .await;
    let owner = PrivateKeySigner::random();
    let session = daemon.active_held_session(&chain, &owner, 100).await;
    let account = account_address(&session.account).to_string();

    let mut names = Vec::new();
    for id in 0..40 {
        names.push(create_mint(&mut daemon, &chain, &session.name, &account, id).await);
    }
    let mut senders_by_block: HashMap<u64, HashSet<alloy::primitives::Address>> = HashMap::new();
    for name in &names {
        let intent = daemon.wait_final(name).await;
        assert_eq!(intent.status, S::Confirmed as i32, "{intent:?}");
        let result = intent.result.expect("result");
        let tx = chain
            .relayer
            .get_transaction_by_hash(result.transaction_hash.parse().expect("hash"))
            .await
            .expect("transaction")
            .expect("known");
        senders_by_block
            .entry(result.block_number)
            .or_default()
            .insert(tx.inner.signer());
    }
    let most = senders_by_block
        .values()
        .map(HashSet::len)
        .max()
        .unwrap_or(0);
    let all: HashSet<_> = senders_by_block.values().flatten().collect();
    println!(
        "{} blocks; relayers used: {}; most relayers in one block: {most}",
        senders_by_block.len(),
        all.len()
    );
    assert!(
        most >= 2,
        "no block held bundles from two relayers: {senders_by_block:?}"
    );
}
