//! The other stories: an EXTERNAL session key whose holder signs each intent (followed by a
//! watch stream), revoking a session, and listing with filters and pages.

use std::collections::HashSet;

use alloy::{
    primitives::U256,
    signers::{Signer, local::PrivateKeySigner},
    sol_types::SolCall,
};
use latchkey::{
    api::proto::{self, TransactionIntentStatus as S},
    chain::{
        contracts::SessionKeyAccount,
        signature::{session_operation_hash, sign_hash, sign_personal},
    },
};
use tokio_stream::StreamExt;

use crate::{
    daemon::{
        TestDaemon, account_address, mint_interaction, mint_session_request, next_action_hash,
        registration,
    },
    harness::TestChain,
};

#[tokio::test]
async fn external_key_holder_signs_each_intent_and_the_watch_stream_shows_every_step() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let owner = PrivateKeySigner::random();
    let key = PrivateKeySigner::random();

    let session = daemon
        .active_external_session(&chain, &owner, key.address(), 5)
        .await;
    let account = account_address(&session.account);

    let intent = daemon
        .intents
        .create_transaction_intent(proto::CreateTransactionIntentRequest {
            session: session.name.clone(),
            interactions: vec![mint_interaction(&chain, &account.to_string(), 9, 2)],
            idempotency_key: String::new(),
            policy: String::new(),
        })
        .await
        .expect("create intent")
        .into_inner();
    assert_eq!(intent.status, S::PendingSignature as i32);
    // The key signs the session operation hash, which binds the userOpHash to the
    // session's registration and to the intent's deadline.
    let hash = next_action_hash(intent.next_action.as_ref());
    assert!(
        intent.valid_until > 0,
        "a session key's operation carries a deadline"
    );
    let session_proto = daemon
        .sessions
        .get_session(proto::GetSessionRequest {
            name: session.name.clone(),
        })
        .await
        .expect("get session")
        .into_inner();
    assert!(intent.valid_until <= session_proto.valid_until);
    assert_eq!(
        hash,
        session_operation_hash(
            intent.user_op_hash.parse().expect("user op hash"),
            registration(&session_proto),
            u64::try_from(intent.valid_until).expect("positive"),
        )
    );

    let mut watch = daemon
        .intents
        .watch_transaction_intent(proto::WatchTransactionIntentRequest {
            name: intent.name.clone(),
        })
        .await
        .expect("watch")
        .into_inner();
    let first = watch.next().await.expect("current state").expect("ok");
    assert_eq!(first.status, S::PendingSignature as i32);

    // Only the session key's signature is accepted.
    let wrong = sign_personal(&owner, hash).expect("sign");
    let refused = daemon
        .intents
        .submit_intent_signature(proto::SubmitIntentSignatureRequest {
            name: intent.name.clone(),
            signature: wrong.to_string(),
            ..Default::default()
        })
        .await
        .expect_err("the owner is not the session key");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    // A key signs the hash as it is: its EIP-191 signature is refused too.
    let prefixed = sign_personal(&key, hash).expect("sign");
    let refused = daemon
        .intents
        .submit_intent_signature(proto::SubmitIntentSignatureRequest {
            name: intent.name.clone(),
            signature: prefixed.to_string(),
            ..Default::default()
        })
        .await
        .expect_err("a session key signs without the prefix");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    let signature = sign_hash(&key, hash).expect("sign");
    daemon
        .intents
        .submit_intent_signature(proto::SubmitIntentSignatureRequest {
            name: intent.name.clone(),
            signature: signature.to_string(),
            ..Default::default()
        })
        .await
        .expect("submit signature");

    let mut seen = vec![first.status];
    while let Some(update) = watch.next().await {
        seen.push(update.expect("update").status);
    }
    assert_eq!(
        seen,
        vec![
            S::PendingSignature as i32,
            S::Queued as i32,
            S::Submitted as i32,
            S::Included as i32,
            S::Confirmed as i32
        ],
        "every transition, in order, then the stream ends"
    );
    let done = daemon.wait_final(&intent.name).await;
    let history: Vec<i32> = done.history.iter().map(|step| step.status).collect();
    assert_eq!(history, seen, "the record's history matches the stream");
    let times: Vec<(i64, i32)> = done
        .history
        .iter()
        .map(|step| {
            step.time
                .map(|t| (t.seconds, t.nanos))
                .expect("a time per step")
        })
        .collect();
    assert!(
        times.windows(2).all(|pair| pair[0] <= pair[1]),
        "times in order"
    );
}

#[tokio::test]
async fn revoking_a_session_needs_the_owner_and_stops_its_key_on_chain() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let owner = PrivateKeySigner::random();
    let session = daemon.active_held_session(&chain, &owner, 5).await;
    let account = account_address(&session.account);
    let key = registration(&session);
    let contract = SessionKeyAccount::new(account, &chain.relayer);
    assert!(
        contract
            .getSessionKey(key)
            .call()
            .await
            .expect("view")
            .registered
    );

    let (revoking, revoked) = daemon.revoke(&owner, &session).await;
    assert_eq!(revoking.status, proto::SessionStatus::Revoking as i32);
    assert!(!revoking.revocation_user_op_hash.is_empty());
    let hash = next_action_hash(revoking.next_action.as_ref());
    assert_eq!(format!("{hash}"), revoking.revocation_user_op_hash);
    assert!(!revoked.revocation_transaction_hash.is_empty());
    assert!(
        !contract
            .getSessionKey(key)
            .call()
            .await
            .expect("view")
            .registered,
        "revoked on chain"
    );

    let refused = daemon
        .intents
        .create_transaction_intent(proto::CreateTransactionIntentRequest {
            session: session.name.clone(),
            interactions: vec![mint_interaction(&chain, &account.to_string(), 1, 1)],
            idempotency_key: String::new(),
            policy: String::new(),
        })
        .await
        .expect_err("a revoked session signs nothing");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains("SESSION_STATUS_REVOKED"),
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn lists_filter_by_account_session_and_status_and_page_without_gaps() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let (alice, bob) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let alice_session = daemon.active_held_session(&chain, &alice, 20).await;
    let bob_session = daemon.active_held_session(&chain, &bob, 20).await;
    let pending = daemon
        .sessions
        .create_session(mint_session_request(&chain, alice.address(), 1).await)
        .await
        .expect("a second, unsigned session")
        .into_inner();

    let by_account = daemon
        .sessions
        .list_sessions(proto::ListSessionsRequest {
            account: alice_session.account.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    let names: Vec<_> = by_account.sessions.iter().map(|s| s.name.clone()).collect();
    assert_eq!(
        names,
        vec![pending.name.clone(), alice_session.name.clone()],
        "newest first"
    );
    let active = daemon
        .sessions
        .list_sessions(proto::ListSessionsRequest {
            status: proto::SessionStatus::Active as i32,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(active.sessions.len(), 2);
    assert!(active.sessions.iter().any(|s| s.name == bob_session.name));

    // Seven intents for Alice, two for Bob.
    let mut alice_intents = Vec::new();
    for (session, count) in [(&alice_session, 7), (&bob_session, 2)] {
        for id in 0..count {
            let intent = daemon.create_mint(&chain, session, id).await;
            if session.name == alice_session.name {
                alice_intents.push(intent.name);
            }
        }
    }
    for name in &alice_intents {
        daemon.wait_final(name).await;
    }

    // Pages of 3 over Alice's session: 3, 3, 1, newest first, no duplicates, no gaps.
    let mut token = String::new();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = daemon
            .intents
            .list_transaction_intents(proto::ListTransactionIntentsRequest {
                session: alice_session.name.clone(),
                page_size: 3,
                page_token: token.clone(),
                kind: proto::TransactionIntentKind::Call as i32,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        pages += 1;
        seen.extend(
            page.transaction_intents
                .into_iter()
                .map(|intent| intent.name),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert!(pages >= 3, "{pages} pages");
    let mut expected = alice_intents.clone();
    expected.reverse();
    assert_eq!(seen, expected, "newest first, each once");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);

    let confirmed_for_bob = daemon
        .intents
        .list_transaction_intents(proto::ListTransactionIntentsRequest {
            account: bob_session.account.clone(),
            status: S::Confirmed as i32,
            kind: proto::TransactionIntentKind::Call as i32,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(confirmed_for_bob.transaction_intents.len() <= 2);
    assert!(
        confirmed_for_bob
            .transaction_intents
            .iter()
            .all(
                |intent| intent.session == bob_session.name && intent.status == S::Confirmed as i32
            )
    );

    let bad_page = daemon
        .intents
        .list_transaction_intents(proto::ListTransactionIntentsRequest {
            page_size: 1_000,
            kind: proto::TransactionIntentKind::Call as i32,
            ..Default::default()
        })
        .await
        .expect_err("page size over 100");
    assert_eq!(bad_page.code(), tonic::Code::InvalidArgument);
    assert!(bad_page.message().contains("page_size"));

    // Each registration minted nothing; Alice's seven intents minted seven items.
    let items = latchkey::chain::contracts::GameItems::new(
        chain.chain.deployment.game_items,
        &chain.relayer,
    );
    let alice_account = account_address(&alice_session.account);
    let mut total = U256::ZERO;
    for id in 0..7u64 {
        total += items
            .balanceOf(alice_account, U256::from(id))
            .call()
            .await
            .expect("balance");
    }
    assert_eq!(total, U256::from(7));
}

#[tokio::test]
async fn accounts_are_counterfactual_until_their_first_operation() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let owner = PrivateKeySigner::random();

    let computed = daemon
        .accounts
        .compute_account_address(proto::ComputeAccountAddressRequest {
            owner: owner.address().to_string(),
            salt: "0".into(),
            ..Default::default()
        })
        .await
        .expect("compute")
        .into_inner();
    let before = daemon
        .accounts
        .get_account(proto::GetAccountRequest {
            name: computed.account.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert!(!before.deployed);
    assert!(
        before.owner.is_empty(),
        "nobody has introduced this account yet"
    );

    let session = daemon.active_held_session(&chain, &owner, 1).await;
    assert_eq!(
        session.account, computed.account,
        "the session's account is the computed one"
    );
    let after = daemon
        .accounts
        .get_account(proto::GetAccountRequest {
            name: computed.account.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert!(after.deployed);
    assert_eq!(after.owner, owner.address().to_string());
    assert_eq!(after.chain_id, chain.chain_id());

    let bad = daemon
        .accounts
        .compute_account_address(proto::ComputeAccountAddressRequest {
            owner: "0x12".into(),
            salt: "-1".into(),
            ..Default::default()
        })
        .await
        .expect_err("malformed owner");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().starts_with("owner:"), "{}", bad.message());
}

#[tokio::test]
async fn health_is_served_and_a_graceful_restart_keeps_every_record() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", daemon.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in [
        "latchkey.v1.SessionService",
        "latchkey.v1.TransactionIntentService",
    ] {
        let answer = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check")
            .into_inner();
        assert_eq!(
            answer.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    }

    let owner = PrivateKeySigner::random();
    let session = daemon.active_held_session(&chain, &owner, 3).await;
    let data_dir = daemon.data_dir.clone();
    let digest = daemon.store.content_digest().await.expect("digest");
    let dir = daemon.keep_dir();
    let api_key = daemon.api_key.clone();
    daemon.stop().await;

    let mut again = TestDaemon::start_on(&chain, data_dir, &api_key).await;
    assert_eq!(
        again.store.content_digest().await.expect("digest"),
        digest,
        "nothing lost or changed"
    );
    let reread = again
        .sessions
        .get_session(proto::GetSessionRequest {
            name: session.name.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(reread, session);
    drop(dir);
}

#[tokio::test]
async fn an_owner_signs_the_registrations_typed_data_as_a_wallet_does() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let owner = PrivateKeySigner::random();
    let session = daemon
        .sessions
        .create_session(mint_session_request(&chain, owner.address(), 3).await)
        .await
        .expect("create session")
        .into_inner();
    chain.fund(account_address(&session.account)).await;
    let action = session.next_action.clone().expect("a next action");

    // What `eth_signTypedData_v4` takes: the wallet shows the account and the call, and its
    // signature is a raw signature of the signable hash.
    let typed: alloy::dyn_abi::TypedData =
        serde_json::from_str(&action.typed_data).expect("typed data JSON");
    assert_eq!(typed.primary_type, "PackedUserOperation");
    assert_eq!(
        typed.eip712_signing_hash().expect("hash"),
        next_action_hash(Some(&action))
    );
    let message = &typed.message;
    assert_eq!(
        message["sender"]
            .as_str()
            .expect("sender")
            .parse::<alloy::primitives::Address>()
            .expect("address"),
        account_address(&session.account)
    );
    let call_data: alloy::primitives::Bytes = message["callData"]
        .as_str()
        .expect("callData")
        .parse()
        .expect("hex");
    assert_eq!(
        &call_data[..4],
        SessionKeyAccount::executeCall::SELECTOR.as_slice()
    );

    let signature = owner
        .sign_dynamic_typed_data(&typed)
        .await
        .expect("wallet signs");
    daemon
        .sessions
        .submit_session_signature(proto::SubmitSessionSignatureRequest {
            name: session.name.clone(),
            signature: alloy::primitives::Bytes::from(signature.as_bytes().to_vec()).to_string(),
            ..Default::default()
        })
        .await
        .expect("a typed-data signature is the owner's");
    daemon
        .wait_session(&session.name, proto::SessionStatus::Active)
        .await;
}
