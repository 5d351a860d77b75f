//! How intents end when things go wrong, and what latchkey says about it: an execution
//! revert decoded to its custom error, an operation the EntryPoint refuses with its AA code,
//! cause and remedy, an unsigned intent that expires, and an idempotency key that returns
//! the first intent without writing anything.

use alloy::{primitives::U256, providers::ext::AnvilApi, signers::local::PrivateKeySigner};
use latchkey::{
    api::proto::{self, TransactionIntentStatus as S},
    chain::contracts::GameItems,
};
use tonic::Code;

use crate::{
    daemon::{TestDaemon, account_address, mint_interaction, mint_session_request, refused},
    harness::TestChain,
};

fn burn(chain: &TestChain, id: u64) -> proto::Interaction {
    proto::Interaction {
        to: chain.chain.deployment.game_items.to_string(),
        value: String::new(),
        call: Some(proto::interaction::Call::FunctionCall(
            proto::FunctionCall {
                signature: "burn(uint256,uint256)".into(),
                args: vec![id.to_string(), "1".into()],
            },
        )),
    }
}

async fn create(
    daemon: &mut TestDaemon,
    session: &str,
    interaction: proto::Interaction,
) -> proto::TransactionIntent {
    daemon
        .intents
        .create_transaction_intent(proto::CreateTransactionIntentRequest {
            session: session.to_owned(),
            interactions: vec![interaction],
            idempotency_key: String::new(),
            policy: String::new(),
        })
        .await
        .expect("create intent")
        .into_inner()
}

#[tokio::test]
async fn an_execution_revert_is_reported_with_its_decoded_custom_error() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let owner = PrivateKeySigner::random();
    let mut request = mint_session_request(&chain, owner.address(), 10).await;
    if let Some(permissions) = request.permissions.as_mut() {
        permissions.calls.push(proto::CallPermission {
            target: chain.chain.deployment.game_items.to_string(),
            function: "burn(uint256,uint256)".into(),
            selector: String::new(),
            ..Default::default()
        });
    }
    let session = daemon
        .sessions
        .create_session(request)
        .await
        .expect("create")
        .into_inner();
    chain.fund(account_address(&session.account)).await;
    let session = daemon.sign_and_activate(&owner, session).await;
    let account = account_address(&session.account);
    let minted = create(
        &mut daemon,
        &session.name,
        mint_interaction(&chain, &account.to_string(), 5, 1),
    )
    .await;
    daemon.wait_final(&minted.name).await;

    // Two burns of the one item: both simulate well while blocks are paused, so both are
    // accepted; once mined, the second finds nothing left to burn.
    chain
        .relayer
        .anvil_set_auto_mine(false)
        .await
        .expect("automine off");
    let first = create(&mut daemon, &session.name, burn(&chain, 5)).await;
    let second = create(&mut daemon, &session.name, burn(&chain, 5)).await;
    chain
        .relayer
        .anvil_set_auto_mine(true)
        .await
        .expect("automine on");
    chain.relayer.anvil_mine(Some(1), None).await.expect("mine");

    let first = daemon.wait_final(&first.name).await;
    let second = daemon.wait_final(&second.name).await;
    assert_eq!(first.status, S::Confirmed as i32, "{first:?}");
    assert_eq!(second.status, S::Reverted as i32, "{second:?}");
    let result = second.result.expect("an included intent has a result");
    assert!(!result.success);
    assert_ne!(
        result.gas_used, "0",
        "a reverted operation still paid for its gas"
    );
    let revert = result.revert.expect("the reason");
    assert!(
        revert.aa_code.is_empty(),
        "the EntryPoint accepted it; execution reverted"
    );
    assert!(
        revert.reason.contains("ERC1155InsufficientBalance"),
        "{}",
        revert.reason
    );
    assert!(!revert.cause.is_empty() && !revert.remedy.is_empty());
    let items = GameItems::new(chain.chain.deployment.game_items, &chain.relayer);
    assert_eq!(
        items
            .balanceOf(account, U256::from(5))
            .call()
            .await
            .expect("balance"),
        U256::ZERO
    );

    // Now that the chain shows nothing to burn, a third burn is refused before any gas is
    // spent, with the decoded reason.
    let mut intents = daemon.intents.clone();
    refused(
        &daemon,
        "a call that would revert",
        intents.create_transaction_intent(proto::CreateTransactionIntentRequest {
            session: session.name.clone(),
            interactions: vec![burn(&chain, 5)],
            idempotency_key: String::new(),
            policy: String::new(),
        }),
        Code::FailedPrecondition,
        "interactions[0] would revert: ERC1155InsufficientBalance",
    )
    .await;
}

#[tokio::test]
async fn an_operation_the_entry_point_refuses_is_dropped_with_its_aa_code_cause_and_remedy() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let owner = PrivateKeySigner::random();
    // The account is never funded and no paymaster pays: the EntryPoint refuses (AA21).
    let session = daemon
        .sessions
        .create_session(mint_session_request(&chain, owner.address(), 3).await)
        .await
        .expect("create")
        .into_inner();
    daemon.submit_owner_signature(&owner, &session).await;
    let failed = daemon
        .wait_session(&session.name, proto::SessionStatus::Failed)
        .await;
    assert!(
        failed.failure_reason.contains("prefund"),
        "{}",
        failed.failure_reason
    );

    // The registration intent carries the decoded refusal.
    let registration = daemon
        .store
        .list_intents(
            &latchkey::store::IntentFilter {
                kind: Some(latchkey::intent::IntentKind::Registration),
                ..Default::default()
            },
            &latchkey::store::PageRequest {
                size: 10,
                token: None,
            },
        )
        .await
        .expect("list")
        .items
        .into_iter()
        .next()
        .expect("the registration intent");
    let intent = daemon
        .intents
        .get_transaction_intent(proto::GetTransactionIntentRequest {
            name: format!("transactionIntents/{}", registration.id),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(intent.status, S::Dropped as i32);
    let refusal = intent.refusal.expect("a decoded refusal");
    assert_eq!(refusal.aa_code, "AA21");
    assert!(refusal.cause.contains("prefund"), "{}", refusal.cause);
    assert!(!refusal.remedy.is_empty());
    assert!(intent.result.is_none(), "it never executed");
}

#[tokio::test]
async fn an_intent_nobody_signs_expires_and_gives_its_limits_back() {
    let chain = TestChain::start().await;
    let mut daemon =
        TestDaemon::start_with(&chain, |config| config.intents.signature_timeout_secs = 1).await;
    let owner = PrivateKeySigner::random();
    let key = PrivateKeySigner::random();
    let session = daemon
        .active_external_session(&chain, &owner, key.address(), 1)
        .await;
    let account = account_address(&session.account).to_string();

    let unsigned = create(
        &mut daemon,
        &session.name,
        mint_interaction(&chain, &account, 1, 1),
    )
    .await;
    assert_eq!(unsigned.status, S::PendingSignature as i32);
    assert!(unsigned.signature_deadline.is_some());
    let expired = daemon.wait_final(&unsigned.name).await;
    assert_eq!(expired.status, S::Expired as i32);
    assert!(
        expired.failure_reason.contains("deadline"),
        "{}",
        expired.failure_reason
    );

    // Its one reserved call is free again: another intent is accepted.
    let again = create(
        &mut daemon,
        &session.name,
        mint_interaction(&chain, &account, 1, 1),
    )
    .await;
    assert_eq!(again.status, S::PendingSignature as i32);
}

#[tokio::test]
async fn a_registration_nobody_signs_expires_the_session_at_its_deadline() {
    let chain = TestChain::start().await;
    let mut daemon =
        TestDaemon::start_with(&chain, |config| config.intents.signature_timeout_secs = 1).await;
    let owner = PrivateKeySigner::random();
    let session = daemon
        .sessions
        .create_session(mint_session_request(&chain, owner.address(), 1).await)
        .await
        .expect("create")
        .into_inner();
    // The session shows its deadline, as an intent does.
    let deadline = session.signature_deadline.expect("a signature deadline");
    let created = session.create_time.expect("a create time");
    assert!(deadline.seconds >= created.seconds && deadline.seconds <= created.seconds + 2);

    let expired = daemon
        .wait_session(&session.name, proto::SessionStatus::Expired)
        .await;
    assert!(
        expired.failure_reason.contains("signature_deadline"),
        "{}",
        expired.failure_reason
    );
    assert!(expired.next_action.is_none() && expired.signature_deadline.is_none());
    let registration = daemon.wait_final(&expired.registration_intent).await;
    assert_eq!(registration.status, S::Expired as i32);
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_intent_and_writes_nothing() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let owner = PrivateKeySigner::random();
    let session = daemon.active_held_session(&chain, &owner, 5).await;
    let account = account_address(&session.account).to_string();
    let request = proto::CreateTransactionIntentRequest {
        session: session.name.clone(),
        interactions: vec![mint_interaction(&chain, &account, 3, 1)],
        idempotency_key: "order-42".into(),
        policy: String::new(),
    };
    let first = daemon
        .intents
        .create_transaction_intent(request.clone())
        .await
        .expect("first")
        .into_inner();
    daemon.wait_final(&first.name).await;

    let before = daemon.store.content_digest().await.expect("digest");
    let second = daemon
        .intents
        .create_transaction_intent(request)
        .await
        .expect("repeat")
        .into_inner();
    assert_eq!(second.name, first.name, "the same intent");
    assert_eq!(
        daemon.store.content_digest().await.expect("digest"),
        before,
        "nothing written"
    );

    // The same key for different calls is refused, not answered with the first intent.
    let mut intents = daemon.intents.clone();
    refused(
        &daemon,
        "idempotency key reused for other calls",
        intents.create_transaction_intent(proto::CreateTransactionIntentRequest {
            session: session.name.clone(),
            interactions: vec![mint_interaction(&chain, &account, 99, 1)],
            idempotency_key: "order-42".into(),
            policy: String::new(),
        }),
        Code::FailedPrecondition,
        "idempotency_key",
    )
    .await;

    // And a revoked session refuses new intents without writing anything either.
    daemon.revoke(&owner, &session).await;
    let mut intents = daemon.intents.clone();
    refused(
        &daemon,
        "revoked session",
        intents.create_transaction_intent(proto::CreateTransactionIntentRequest {
            session: session.name.clone(),
            interactions: vec![mint_interaction(&chain, &account, 4, 1)],
            idempotency_key: String::new(),
            policy: String::new(),
        }),
        Code::FailedPrecondition,
        "SESSION_STATUS_REVOKED",
    )
    .await;
}

#[tokio::test]
async fn a_watch_stream_ends_when_the_daemon_stops() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let owner = PrivateKeySigner::random();
    let key = PrivateKeySigner::random();
    let session = daemon
        .active_external_session(&chain, &owner, key.address(), 1)
        .await;
    let account = account_address(&session.account).to_string();
    let unsigned = create(
        &mut daemon,
        &session.name,
        mint_interaction(&chain, &account, 1, 1),
    )
    .await;

    let mut watch = daemon
        .intents
        .watch_transaction_intent(proto::WatchTransactionIntentRequest {
            name: unsigned.name,
        })
        .await
        .expect("watch")
        .into_inner();
    assert!(
        watch.message().await.expect("first").is_some(),
        "the current state"
    );

    // The intent will wait for its signature for ten minutes; stopping must not.
    tokio::time::timeout(std::time::Duration::from_secs(20), daemon.stop())
        .await
        .expect("the daemon stops with a watch open");
    let end = watch.message().await;
    assert!(
        matches!(&end, Err(status) if status.code() == Code::Unavailable)
            || matches!(end, Ok(None)),
        "the stream ends: {end:?}"
    );
}
