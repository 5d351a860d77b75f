//! The daemon's structured log follows each intent from its request to its confirmation:
//! with `--log-format json`, every change of an intent is one record carrying its id and
//! its userOpHash, whichever task made it, so one filter on the hash tells its whole story.

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
        let story: Vec<&Value> = records
            .iter()
            .filter(|record| record["target"] == "intent")
            .filter(|record| record["fields"]["user_op_hash"] == intent.user_op_hash.as_str())
            .collect();
        for record in &story {
            assert_eq!(record["fields"]["intent"], intent.id.as_str(), "{record}");
        }
        let statuses: Vec<&str> = story
            .iter()
            .map(|record| record["fields"]["status"].as_str().expect("a status"))
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
}
