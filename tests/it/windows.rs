//! Windows are judged by when an operation will be included: the later of the latest
//! block's time and the wall clock. On a chain that mines only when a transaction comes (as
//! `make dev`'s anvil does), the latest block can be long past; its next block takes the
//! wall clock's time. A window that opened by the wall clock is open, one that closed is
//! closed, and a closed window never costs the relayer gas.

use std::time::Duration;

use alloy::{providers::Provider, signers::local::PrivateKeySigner};
use latchkey::{
    api::proto::{self, TransactionIntentStatus as Status},
    clock::wall_clock_secs,
    config::Config,
};
use tonic::Code;
use tonic_types::StatusExt;

use crate::{
    daemon::{Clients, TestDaemon, account_address, admin_client, mint_session_request},
    harness::TestChain,
};

/// Margins small enough for windows of a few seconds.
fn short_margins(config: &mut Config) {
    config.intents.window_margin_secs = 2;
    config.relayer.window_margin_secs = 1;
}

/// An active HELD mint session for a fresh owner, open from `valid_after` to `valid_until`.
async fn session_in(
    chain: &TestChain,
    api: &mut Clients,
    valid_after: u64,
    valid_until: u64,
) -> proto::Session {
    let owner = PrivateKeySigner::random();
    let mut request = mint_session_request(chain, owner.address(), 10).await;
    request.valid_after = i64::try_from(valid_after).expect("fits");
    request.valid_until = i64::try_from(valid_until).expect("fits");
    api.activate(chain, &owner, request).await
}

/// Sleeps until the wall clock has passed `unix_secs`.
async fn until_after(unix_secs: u64) {
    while wall_clock_secs() <= unix_secs {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn mint(chain: &TestChain, session: &proto::Session) -> proto::CreateTransactionIntentRequest {
    let account = account_address(&session.account).to_string();
    proto::CreateTransactionIntentRequest {
        session: session.name.clone(),
        interactions: vec![crate::daemon::mint_interaction(chain, &account, 1, 1)],
        idempotency_key: String::new(),
        policy: String::new(),
    }
}

#[tokio::test]
async fn a_window_that_opened_by_the_wall_clock_takes_intents_on_an_idle_chain() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start_with(&chain, short_margins).await;
    let opens = wall_clock_secs() + 3;
    let session = session_in(&chain, &mut daemon.api, opens, opens + 3_600).await;
    until_after(opens + 1).await;
    let latest = chain.latest_timestamp().await;
    assert!(
        latest <= opens,
        "the chain stayed idle: its latest block ({latest}) is from before the window opened"
    );

    let created = daemon
        .intents
        .create_transaction_intent(mint(&chain, &session))
        .await
        .expect("the window is open by the wall clock")
        .into_inner();
    let done = daemon.wait_final(&created.name).await;
    assert_eq!(done.status, Status::Confirmed as i32, "{done:?}");
}

#[tokio::test]
async fn a_window_that_closed_by_the_wall_clock_refuses_intents_and_costs_no_gas() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start_with(&chain, short_margins).await;
    let relayer = chain.chain.relayer.address();
    let closes = wall_clock_secs() + 6;
    let session = session_in(&chain, &mut daemon.api, 0, closes).await;

    // An intent accepted while the window is open, held back by a paused relay until its
    // window has closed.
    let mut admin = admin_client(daemon.admin_addr.expect("admin")).await;
    admin
        .pause_relay(proto::PauseRelayRequest {
            reason: "holding an operation past its window".into(),
        })
        .await
        .expect("pause");
    let held = daemon
        .intents
        .create_transaction_intent(mint(&chain, &session))
        .await
        .expect("the window is open")
        .into_inner();
    until_after(closes + 1).await;
    assert!(
        chain.latest_timestamp().await < closes,
        "the chain stayed idle: by its latest block the window is still open"
    );
    let nonce = chain
        .relayer
        .get_transaction_count(relayer)
        .await
        .expect("nonce");
    let balance = chain.relayer.get_balance(relayer).await.expect("balance");

    // A new intent is refused before anything is built.
    let refused = daemon
        .intents
        .create_transaction_intent(mint(&chain, &session))
        .await
        .expect_err("the window closed by the wall clock");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let reason = refused.get_details_error_info().expect("ErrorInfo").reason;
    assert!(
        ["SESSION_WINDOW_CLOSED", "SESSION_NOT_ACTIVE"].contains(&reason.as_str()),
        "{reason}: {refused:?}"
    );
    // The relay's clock agrees: the session has lapsed.
    daemon
        .wait_session(&session.name, proto::SessionStatus::Expired)
        .await;

    // The held operation is dropped unsent once the relay resumes.
    admin
        .resume_relay(proto::ResumeRelayRequest {})
        .await
        .expect("resume");
    let dropped = daemon.wait_final(&held.name).await;
    assert_eq!(dropped.status, Status::Dropped as i32, "{dropped:?}");
    // Its deadline is the session's window, and it passed: the account would refuse it.
    assert_eq!(
        u64::try_from(dropped.valid_until).expect("deadline"),
        closes
    );
    assert!(
        dropped
            .failure_reason
            .contains(&format!("not included by its deadline, {closes}")),
        "{}",
        dropped.failure_reason
    );
    assert_eq!(
        chain
            .relayer
            .get_transaction_count(relayer)
            .await
            .expect("nonce"),
        nonce,
        "nothing was sent"
    );
    assert_eq!(
        chain.relayer.get_balance(relayer).await.expect("balance"),
        balance,
        "the relayer paid nothing"
    );
}
