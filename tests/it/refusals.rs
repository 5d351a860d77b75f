//! Refusals: every bad request gets a precise status code and a message naming the field or
//! the rule, and leaves the store exactly as it was (its content digest is unchanged).

use alloy::{
    primitives::{Address, B256},
    signers::local::PrivateKeySigner,
};
use latchkey::{api::proto, chain::signature::sign_personal};
use tonic::Code;

use crate::{
    daemon::{TestDaemon, account_address, mint_interaction, mint_session_request, refused},
    harness::TestChain,
};

fn intent_request(
    session: &str,
    interaction: proto::Interaction,
) -> proto::CreateTransactionIntentRequest {
    proto::CreateTransactionIntentRequest {
        session: session.to_owned(),
        interactions: vec![interaction],
        idempotency_key: String::new(),
        policy: String::new(),
    }
}

#[tokio::test]
async fn bad_requests_are_refused_precisely_and_write_nothing() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let owner = PrivateKeySigner::random();
    let session = daemon.active_held_session(&chain, &owner, 1).await;
    let account = account_address(&session.account).to_string();
    let mint = mint_interaction(&chain, &account, 1, 1);

    // The one call the session allows is spent (reserved) by a first intent.
    let first = daemon
        .intents
        .create_transaction_intent(intent_request(&session.name, mint.clone()))
        .await
        .expect("first intent")
        .into_inner();
    daemon.wait_final(&first.name).await;

    let mut intents = daemon.intents.clone();
    let mut sessions = daemon.sessions.clone();

    // Over the call limit.
    refused(
        &daemon,
        "call limit",
        intents.create_transaction_intent(intent_request(&session.name, mint.clone())),
        Code::FailedPrecondition,
        "call_limit",
    )
    .await;

    // A selector and a target the session does not allow.
    let mut burn = mint.clone();
    burn.call = Some(proto::interaction::Call::FunctionCall(
        proto::FunctionCall {
            signature: "burn(uint256,uint256)".into(),
            args: vec!["1".into(), "1".into()],
        },
    ));
    refused(
        &daemon,
        "selector",
        intents.create_transaction_intent(intent_request(&session.name, burn)),
        Code::FailedPrecondition,
        "allowlist",
    )
    .await;
    let mut elsewhere = mint.clone();
    elsewhere.to = Address::repeat_byte(0x42).to_string();
    refused(
        &daemon,
        "target",
        intents.create_transaction_intent(intent_request(&session.name, elsewhere)),
        Code::FailedPrecondition,
        "allowlist",
    )
    .await;

    // Over the per-call value cap (0 wei).
    let mut paying = mint.clone();
    paying.value = "1".into();
    refused(
        &daemon,
        "value cap",
        intents.create_transaction_intent(intent_request(&session.name, paying)),
        Code::FailedPrecondition,
        "value_per_call_limit",
    )
    .await;

    // Malformed fields.
    let mut bad_hex = mint.clone();
    bad_hex.to = "0xnot-hex".into();
    refused(
        &daemon,
        "bad hex",
        intents.create_transaction_intent(intent_request(&session.name, bad_hex)),
        Code::InvalidArgument,
        "interactions[0].to",
    )
    .await;
    let mut short = mint.clone();
    short.to = "0x1234".into();
    refused(
        &daemon,
        "wrong length",
        intents.create_transaction_intent(intent_request(&session.name, short)),
        Code::InvalidArgument,
        "interactions[0].to",
    )
    .await;
    let mut unknown_signature = mint.clone();
    unknown_signature.call = Some(proto::interaction::Call::FunctionCall(
        proto::FunctionCall {
            signature: "mint(address,uint256".into(),
            args: vec![],
        },
    ));
    refused(
        &daemon,
        "malformed signature",
        intents.create_transaction_intent(intent_request(&session.name, unknown_signature)),
        Code::InvalidArgument,
        "interactions[0].function_call",
    )
    .await;
    let mut wrong_args = mint.clone();
    wrong_args.call = Some(proto::interaction::Call::FunctionCall(
        proto::FunctionCall {
            signature: "mint(address,uint256,uint256)".into(),
            args: vec!["not-an-address".into(), "1".into(), "1".into()],
        },
    ));
    refused(
        &daemon,
        "argument type",
        intents.create_transaction_intent(intent_request(&session.name, wrong_args)),
        Code::InvalidArgument,
        "interactions[0].function_call",
    )
    .await;
    let mut wrong_count = mint.clone();
    wrong_count.call = Some(proto::interaction::Call::FunctionCall(
        proto::FunctionCall {
            signature: "mint(address,uint256,uint256)".into(),
            args: vec![account.clone()],
        },
    ));
    refused(
        &daemon,
        "argument count",
        intents.create_transaction_intent(intent_request(&session.name, wrong_count)),
        Code::InvalidArgument,
        "interactions[0].function_call",
    )
    .await;
    refused(
        &daemon,
        "no interactions",
        intents.create_transaction_intent(proto::CreateTransactionIntentRequest {
            session: session.name.clone(),
            interactions: vec![],
            idempotency_key: String::new(),
            policy: String::new(),
        }),
        Code::InvalidArgument,
        "interactions",
    )
    .await;

    // Unknown ids and malformed names.
    let unknown_session = "sessions/ses_01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned();
    refused(
        &daemon,
        "unknown session",
        sessions.get_session(proto::GetSessionRequest {
            name: unknown_session.clone(),
        }),
        Code::NotFound,
        "not found",
    )
    .await;
    refused(
        &daemon,
        "unknown session for an intent",
        intents.create_transaction_intent(intent_request(&unknown_session, mint.clone())),
        Code::NotFound,
        "not found",
    )
    .await;
    refused(
        &daemon,
        "unknown intent",
        intents.get_transaction_intent(proto::GetTransactionIntentRequest {
            name: "transactionIntents/int_01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
        }),
        Code::NotFound,
        "not found",
    )
    .await;
    refused(
        &daemon,
        "malformed name",
        sessions.get_session(proto::GetSessionRequest {
            name: "sessions/../../etc".into(),
        }),
        Code::InvalidArgument,
        "name",
    )
    .await;
}

#[tokio::test]
async fn signatures_from_anyone_but_the_owner_are_refused_before_any_gas_is_spent() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let owner = PrivateKeySigner::random();
    let mut sessions = daemon.sessions.clone();
    let session = sessions
        .create_session(mint_session_request(&chain, owner.address(), 3).await)
        .await
        .expect("create session")
        .into_inner();
    let hash: B256 = session
        .next_action
        .as_ref()
        .expect("next action")
        .signable_hash
        .parse()
        .expect("hash");

    let stranger = PrivateKeySigner::random();
    let wrong = sign_personal(&stranger, hash).expect("sign");
    refused(
        &daemon,
        "wrong signer",
        sessions.submit_session_signature(proto::SubmitSessionSignatureRequest {
            name: session.name.clone(),
            signature: wrong.to_string(),
            ..Default::default()
        }),
        Code::InvalidArgument,
        "not a signature",
    )
    .await;
    let other_hash = sign_personal(&owner, B256::repeat_byte(7)).expect("sign");
    refused(
        &daemon,
        "signature of another hash",
        sessions.submit_session_signature(proto::SubmitSessionSignatureRequest {
            name: session.name.clone(),
            signature: other_hash.to_string(),
            ..Default::default()
        }),
        Code::InvalidArgument,
        "signature",
    )
    .await;
    refused(
        &daemon,
        "malformed signature",
        sessions.submit_session_signature(proto::SubmitSessionSignatureRequest {
            name: session.name.clone(),
            signature: "0x1234".into(),
            ..Default::default()
        }),
        Code::InvalidArgument,
        "signature",
    )
    .await;
    refused(
        &daemon,
        "missing gas budget",
        sessions.create_session({
            let mut request = mint_session_request(&chain, owner.address(), 3).await;
            if let Some(permissions) = request.permissions.as_mut() {
                permissions.gas_budget.clear();
            }
            request
        }),
        Code::InvalidArgument,
        "permissions.gas_budget",
    )
    .await;
    refused(
        &daemon,
        "unspecified custody",
        sessions.create_session(proto::CreateSessionRequest {
            custody: proto::KeyCustody::Unspecified as i32,
            ..mint_session_request(&chain, owner.address(), 3).await
        }),
        Code::InvalidArgument,
        "custody",
    )
    .await;

    // The genuine owner's signature is accepted, even with v as 0/1 (as some wallets and
    // KMS signers write it): latchkey stores the canonical form the account accepts, and
    // the session becomes ACTIVE on chain.
    chain.fund(account_address(&session.account)).await;
    let mut zero_one = sign_personal(&owner, hash).expect("sign").to_vec();
    zero_one[64] -= 27;
    daemon
        .sessions
        .submit_session_signature(proto::SubmitSessionSignatureRequest {
            name: session.name.clone(),
            signature: format!("0x{}", alloy::hex::encode(&zero_one)),
            ..Default::default()
        })
        .await
        .expect("a v=0/1 signature is accepted");
    let active = daemon
        .wait_session(&session.name, proto::SessionStatus::Active)
        .await;
    assert_eq!(active.status, proto::SessionStatus::Active as i32);

    // Nothing is pending any more.
    let late = sign_personal(&owner, hash).expect("sign");
    refused(
        &daemon,
        "nothing pending",
        sessions.submit_session_signature(proto::SubmitSessionSignatureRequest {
            name: active.name.clone(),
            signature: late.to_string(),
            ..Default::default()
        }),
        Code::FailedPrecondition,
        "no signature is pending",
    )
    .await;
}

#[tokio::test]
async fn intents_outside_the_window_are_refused() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let owner = PrivateKeySigner::random();
    let now = chain.latest_timestamp().await;

    // A window that opens in an hour: registration works, intents wait.
    let mut request = mint_session_request(&chain, owner.address(), 3).await;
    request.valid_after = i64::try_from(now + 3_600).expect("fits");
    request.valid_until = i64::try_from(now + 7_200).expect("fits");
    let session = daemon
        .sessions
        .create_session(request)
        .await
        .expect("create")
        .into_inner();
    chain.fund(account_address(&session.account)).await;
    let session = daemon.sign_and_activate(&owner, session).await;
    let account = account_address(&session.account).to_string();
    let mut intents = daemon.intents.clone();
    refused(
        &daemon,
        "window not open",
        intents.create_transaction_intent(intent_request(
            &session.name,
            mint_interaction(&chain, &account, 1, 1),
        )),
        Code::FailedPrecondition,
        "window opens after",
    )
    .await;

    // Past valid_until the relay marks the session EXPIRED, and intents are refused.
    chain.mine_at(now + 7_201).await;
    let expired = daemon
        .wait_session(&session.name, proto::SessionStatus::Expired)
        .await;
    refused(
        &daemon,
        "window closed",
        intents.create_transaction_intent(intent_request(
            &expired.name,
            mint_interaction(&chain, &account, 1, 1),
        )),
        Code::FailedPrecondition,
        "SESSION_STATUS_EXPIRED",
    )
    .await;
}
