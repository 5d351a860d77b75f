//! Every operation latchkey relays is an intent a client can see: a session's registration
//! and revocation are listed, got and counted like the calls, each with its kind, so the
//! lists and GetStatus's counts agree. A page token continues only the list it came from.

use std::collections::HashMap;

use alloy::signers::local::PrivateKeySigner;
use latchkey::api::proto::{
    self, TransactionIntentKind as Kind, TransactionIntentStatus as Status,
};
use tonic::Code;
use tonic_types::StatusExt;

use crate::{
    daemon::{TestDaemon, admin_client},
    harness::TestChain,
};

fn list_request(
    session: &str,
    kind: Kind,
    page_size: i32,
    token: &str,
) -> proto::ListTransactionIntentsRequest {
    proto::ListTransactionIntentsRequest {
        session: session.to_owned(),
        account: String::new(),
        status: 0,
        page_size,
        page_token: token.to_owned(),
        kind: kind as i32,
    }
}

#[tokio::test]
async fn registrations_and_revocations_are_intents_that_lists_show_and_counts_agree_with() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let owner = PrivateKeySigner::random();
    let session = daemon.active_held_session(&chain, &owner, 5).await;
    let mint = daemon.create_mint(&chain, &session, 1).await;
    daemon.wait_final(&mint.name).await;
    let (revoking, _) = daemon.revoke(&owner, &session).await;

    // The session names its registration and revocation, and Get shows each.
    for (name, kind) in [
        (&session.registration_intent, Kind::Registration),
        (&revoking.revocation_intent, Kind::Revocation),
    ] {
        let intent = daemon
            .intents
            .get_transaction_intent(proto::GetTransactionIntentRequest { name: name.clone() })
            .await
            .expect("get")
            .into_inner();
        assert_eq!(intent.kind, kind as i32, "{intent:?}");
        assert_eq!(intent.status, Status::Confirmed as i32, "{intent:?}");
        assert_eq!(intent.session, session.name);
    }

    // The session's list holds all three, newest first, each with its kind.
    let all = daemon
        .intents
        .list_transaction_intents(list_request(&session.name, Kind::Unspecified, 0, ""))
        .await
        .expect("list")
        .into_inner()
        .transaction_intents;
    let kinds: Vec<i32> = all.iter().map(|intent| intent.kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::Revocation as i32,
            Kind::Call as i32,
            Kind::Registration as i32
        ]
    );
    // A kind filter keeps only that kind.
    let calls = daemon
        .intents
        .list_transaction_intents(list_request(&session.name, Kind::Call, 0, ""))
        .await
        .expect("list calls")
        .into_inner()
        .transaction_intents;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].name, mint.name);

    // GetStatus counts exactly what the admin service's list shows, status by status.
    let mut admin = admin_client(daemon.admin_addr.expect("admin")).await;
    let listed = admin
        .list_transaction_intents(list_request("", Kind::Unspecified, 100, ""))
        .await
        .expect("admin list")
        .into_inner()
        .transaction_intents;
    let mut by_status: HashMap<i32, u64> = HashMap::new();
    for intent in &listed {
        *by_status.entry(intent.status).or_default() += 1;
    }
    let status = admin
        .get_status(proto::GetStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    for count in &status.intents {
        assert_eq!(
            by_status.get(&count.status).copied().unwrap_or_default(),
            count.count,
            "status {:?}",
            Status::try_from(count.status)
        );
    }
    assert_eq!(listed.len(), 3);

    // A token continues its own list; under another filter it is refused.
    let first = daemon
        .intents
        .list_transaction_intents(list_request(&session.name, Kind::Unspecified, 1, ""))
        .await
        .expect("first page")
        .into_inner();
    let token = first.next_page_token;
    assert!(!token.is_empty());
    let second = daemon
        .intents
        .list_transaction_intents(list_request(&session.name, Kind::Unspecified, 1, &token))
        .await
        .expect("second page")
        .into_inner();
    assert_eq!(second.transaction_intents[0].name, all[1].name);
    let before = daemon.store.content_digest().await.expect("digest");
    let refused = daemon
        .intents
        .list_transaction_intents(list_request(&session.name, Kind::Call, 1, &token))
        .await
        .expect_err("a token of another filter");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().starts_with("page_token: "), "{refused:?}");
    let info = refused.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "INVALID_FIELD");
    assert_eq!(info.metadata["field"], "page_token");
    assert_eq!(daemon.store.content_digest().await.expect("digest"), before);
}
