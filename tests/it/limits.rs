//! Limits on what one client can make the daemon hold: open watch streams and request size.

use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use latchkey::{api::proto, store::RelayPause};
use tonic::Code;

use crate::{daemon::TestDaemon, harness::TestChain};

#[tokio::test]
async fn watch_streams_and_request_size_are_capped_and_a_closed_stream_frees_its_slot() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start_with(&chain, |config| {
        config.api.max_watch_streams = 2;
        config.api.max_request_bytes = 64 * 1024;
    })
    .await;
    let session = daemon
        .active_held_session(&chain, &PrivateKeySigner::random(), 10)
        .await;
    // Paused, the intents wait QUEUED, so their watch streams stay open.
    daemon
        .store
        .set_relay_pause(Some(&RelayPause {
            reason: "hold the intents".to_owned(),
            since_ms: 0,
        }))
        .await
        .expect("pause");
    let mut intents = Vec::new();
    for id in 0..3 {
        intents.push(daemon.create_mint(&chain, &session, id).await);
    }
    let watch = |name: &str| {
        let mut client = daemon.intents.clone();
        let request = proto::WatchTransactionIntentRequest {
            name: name.to_owned(),
        };
        async move { client.watch_transaction_intent(request).await }
    };

    let first = watch(&intents[0].name).await.expect("first watch");
    let _second = watch(&intents[1].name).await.expect("second watch");
    let digest = daemon.store.content_digest().await.expect("digest");
    let refused = watch(&intents[2].name)
        .await
        .expect_err("a third is one too many");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("api.max_watch_streams"),
        "{refused:?}"
    );
    assert_eq!(daemon.store.content_digest().await.expect("digest"), digest);

    // Closing a stream frees its slot.
    drop(first);
    let mut third = None;
    for _ in 0..50 {
        match watch(&intents[2].name).await {
            Ok(stream) => {
                third = Some(stream);
                break;
            }
            Err(status) if status.code() == Code::ResourceExhausted => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("{status:?}"),
        }
    }
    let mut third = third.expect("a closed stream frees its slot").into_inner();
    let now = third
        .message()
        .await
        .expect("stream")
        .expect("the intent now");
    assert_eq!(now.name, intents[2].name);

    // A request over max_request_bytes is refused before it is decoded, and writes nothing.
    let oversized = daemon
        .intents
        .create_transaction_intent(proto::CreateTransactionIntentRequest {
            session: session.name.clone(),
            interactions: Vec::new(),
            idempotency_key: "k".repeat(100 * 1024),
            policy: String::new(),
        })
        .await
        .expect_err("too large");
    assert_eq!(oversized.code(), Code::OutOfRange, "{oversized:?}");
    assert_eq!(daemon.store.content_digest().await.expect("digest"), digest);

    // Resumed, everything goes through, and the open stream follows its intent to the end.
    daemon.store.set_relay_pause(None).await.expect("resume");
    for intent in &intents {
        daemon.wait_final(&intent.name).await;
    }
    let mut last = now;
    while let Some(update) = third.message().await.expect("stream") {
        last = update;
    }
    assert_eq!(
        last.status,
        proto::TransactionIntentStatus::Confirmed as i32
    );
}
