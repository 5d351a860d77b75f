//! What an unsigned request holds is bounded and given back: a session has at most
//! MAX_UNSIGNED_INTENTS_PER_SESSION intents waiting for their signature, and the ones still
//! waiting when the session ends are DROPPED at once, with the reason, returning what they
//! reserved of the session's limits.

use alloy::signers::local::PrivateKeySigner;
use latchkey::{
    api::proto::{self, TransactionIntentStatus as Status},
    app::MAX_UNSIGNED_INTENTS_PER_SESSION,
    session::SessionId,
};
use tonic::Code;
use tonic_types::StatusExt;

use crate::{daemon::TestDaemon, harness::TestChain};

#[tokio::test]
async fn unsigned_intents_are_bounded_per_session_and_end_with_their_session() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let owner = PrivateKeySigner::random();
    let key = PrivateKeySigner::random();
    let session = daemon
        .active_external_session(&chain, &owner, key.address(), 100)
        .await;

    let mut waiting = Vec::new();
    for id in 0..MAX_UNSIGNED_INTENTS_PER_SESSION {
        let intent = daemon.create_mint(&chain, &session, id as u64).await;
        assert_eq!(intent.status, Status::PendingSignature as i32);
        waiting.push(intent);
    }
    let session_id = SessionId::parse(session.id.as_str()).expect("a session id");
    let reserved = daemon
        .store
        .session(&session_id)
        .await
        .expect("read")
        .expect("stored")
        .usage;
    assert_eq!(reserved.calls as usize, MAX_UNSIGNED_INTENTS_PER_SESSION);

    // One more is refused, and writes nothing.
    let before = daemon.store.content_digest().await.expect("digest");
    let account = crate::daemon::account_address(&session.account).to_string();
    let refused = daemon
        .intents
        .create_transaction_intent(proto::CreateTransactionIntentRequest {
            session: session.name.clone(),
            interactions: vec![crate::daemon::mint_interaction(&chain, &account, 99, 1)],
            idempotency_key: String::new(),
            policy: String::new(),
        })
        .await
        .expect_err("past the bound");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(
        refused.get_details_error_info().expect("ErrorInfo").reason,
        "UNSIGNED_LIMIT_REACHED"
    );
    assert_eq!(daemon.store.content_digest().await.expect("digest"), before);

    // Revoked: every intent still waiting ends with the reason, and gives back what it held.
    daemon.revoke(&owner, &session).await;
    for intent in &waiting {
        let ended = daemon.wait_final(&intent.name).await;
        assert_eq!(ended.status, Status::Dropped as i32, "{ended:?}");
        assert!(
            ended.failure_reason.contains("SESSION_STATUS_REVOKED"),
            "{}",
            ended.failure_reason
        );
        assert!(ended.next_action.is_none(), "nothing is left to sign");
    }
    let released = daemon
        .store
        .session(&session_id)
        .await
        .expect("read")
        .expect("stored")
        .usage;
    assert_eq!(released.calls, 0, "{released:?}");
    assert_eq!(released.gas, 0, "{released:?}");
}
