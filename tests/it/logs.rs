//! The daemon's structured log follows each intent from its request to its confirmation:
//! with `--log-format json`, every change of an intent is one record inside the intent's
//! span, which carries its id and userOpHash whichever task made the change, and the span
//! closes at the end with how long it was open. One filter on the hash tells the story.

use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use latchkey::api::proto::TransactionIntentStatus as S;
use serde_json::Value;

use crate::{
    daemon::{DaemonProcess, free_port},
    harness::TestChain,
};

#[tokio::test]
async fn json_logs_follow_each_intent_by_its_user_op_hash_from_request_to_confirmation() {
    let chain = TestChain::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log_file = dir.path().join("latchkey.log");
    let mut daemon = DaemonProcess::spawn_logging(
        &chain,
        &dir.path().join("store"),
        free_port(),
        "",
        Some(&log_file),
    )
    .await;
    let session = daemon
        .active_held_session(&chain, &PrivateKeySigner::random(), 10)
        .await;
    let mut intents = Vec::new();
    for id in 0..3 {
        intents.push(daemon.create_mint(&chain, &session, id).await);
    }
    for intent in &intents {
        let done = daemon.wait_final(&intent.name).await;
        assert_eq!(done.status, S::Confirmed as i32);
    }
    let (_, status) = daemon.terminate(Duration::from_secs(30)).await;
    assert!(status.success());

    let log = std::fs::read_to_string(&log_file).expect("the log");
    let records: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect();
    for intent in &intents {
        // Records inside this intent's span: its changes, then the span's close.
        let in_span: Vec<&Value> = records
            .iter()
            .filter(|record| record["span"]["name"] == "intent")
            .filter(|record| record["span"]["user_op_hash"] == intent.user_op_hash.as_str())
            .collect();
        for record in &in_span {
            assert_eq!(record["span"]["intent"], intent.id.as_str(), "{record}");
            assert_eq!(record["span"]["kind"], "Call", "{record}");
        }
        let (close, story) = in_span.split_last().expect("records in the intent's span");
        assert_eq!(
            close["fields"]["message"], "close",
            "the span ends last: {close}"
        );
        assert!(close["fields"]["time.busy"].is_string(), "{close}");
        let statuses: Vec<&str> = story
            .iter()
            .map(|record| {
                assert_eq!(record["target"], "intent", "{record}");
                assert_eq!(record["fields"]["message"], "intent changed", "{record}");
                record["fields"]["status"].as_str().expect("a status")
            })
            .collect();
        assert_eq!(
            statuses,
            ["Queued", "Submitted", "Included", "Confirmed"],
            "{}: {story:?}",
            intent.name
        );
        let submitted = story[1]["fields"]["transaction"]
            .as_str()
            .expect("the bundle's transaction");
        assert_eq!(story[3]["fields"]["transaction"], submitted);
        assert!(story[3]["fields"]["block"].as_u64().is_some());
    }
    let closes = records
        .iter()
        .filter(|record| {
            record["span"]["name"] == "intent" && record["fields"]["message"] == "close"
        })
        .count();
    assert_eq!(
        closes,
        intents.len() + 1,
        "one close per intent and one for the session's registration"
    );
}
