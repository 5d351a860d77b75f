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
    // At the default level nothing is logged per request to the node: only latchkey's own
    // records, of state changes, warnings and errors.
    let per_request: Vec<&Value> = records
        .iter()
        .filter(|record| {
            record["target"]
                .as_str()
                .is_some_and(|target| target.starts_with("alloy"))
        })
        .collect();
    assert!(
        per_request.is_empty(),
        "{} records of the node client, the first {}",
        per_request.len(),
        per_request[0]
    );
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

#[tokio::test]
async fn the_audit_log_names_every_write_and_admin_call_by_key_id_and_never_a_key() {
    use latchkey::api::proto;
    use tonic::Code;

    use crate::daemon::{ADMIN_TOKEN, TEST_TENANT, admin_client, create_api_key};

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
    let key_id = |key: &str| {
        key.strip_prefix("lk_")
            .and_then(|rest| rest.split_once('_'))
            .map(|(ulid, _)| format!("key_{ulid}"))
            .expect("a key")
    };
    // A write (CreateSession, SubmitSessionSignature), a read (GetSession, not audited), an
    // admin call with the token, one with an ADMIN key, and refused calls.
    let session = daemon
        .active_held_session(&chain, &PrivateKeySigner::random(), 1)
        .await;
    let mut admin = admin_client(daemon.admin_addr).await;
    admin
        .pause_relay(proto::PauseRelayRequest {
            reason: "audit test".into(),
        })
        .await
        .expect("pause");
    let operator_key = create_api_key(daemon.admin_addr, "ops", &[proto::ApiKeyScope::Admin]).await;
    let operator_channel =
        tonic::transport::Channel::from_shared(format!("http://{}", daemon.admin_addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
    proto::admin_service_client::AdminServiceClient::new(crate::daemon::authed(
        operator_channel,
        &operator_key,
    ))
    .resume_relay(proto::ResumeRelayRequest {})
    .await
    .expect("an ADMIN key resumes");
    let reader_key =
        create_api_key(daemon.admin_addr, TEST_TENANT, &[proto::ApiKeyScope::Read]).await;
    let refused = daemon
        .clients_with(&reader_key)
        .sessions
        .revoke_session(proto::RevokeSessionRequest {
            name: session.name.clone(),
        })
        .await
        .expect_err("READ cannot revoke");
    assert_eq!(refused.code(), Code::PermissionDenied);
    // The reader's key with its last secret digit changed.
    let mut forged = reader_key.clone();
    let last = forged.pop().expect("a key");
    forged.push(if last == '0' { '1' } else { '0' });
    let unknown = daemon
        .clients_with(&forged)
        .sessions
        .list_sessions(proto::ListSessionsRequest::default())
        .await
        .expect_err("a forged key");
    assert_eq!(unknown.code(), Code::Unauthenticated);
    let test_key = daemon.api_key.clone();
    let (_, status) = daemon.terminate(Duration::from_secs(30)).await;
    assert!(status.success());

    let log = std::fs::read_to_string(&log_file).expect("the log");
    for secret in [
        test_key,
        operator_key.clone(),
        reader_key.clone(),
        ADMIN_TOKEN.to_owned(),
    ] {
        let tail = &secret[secret.len() - 40..];
        assert!(!log.contains(tail), "the log holds a credential");
    }
    let audit: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON record"))
        .filter(|record| record["target"] == "audit")
        .collect();
    let find = |method: &str| -> Vec<&Value> {
        audit
            .iter()
            .filter(|record| record["fields"]["method"] == method)
            .collect()
    };
    let created = find("SessionService/CreateSession");
    assert_eq!(created.len(), 1, "{audit:#?}");
    assert!(
        created[0]["fields"]["api_key"]
            .as_str()
            .is_some_and(|id| id.starts_with("key_")),
        "{}",
        created[0]
    );
    assert_eq!(created[0]["fields"]["tenant"], TEST_TENANT);
    assert_eq!(created[0]["fields"]["code"], "OK");
    assert_eq!(find("SessionService/SubmitSessionSignature").len(), 1);
    assert!(
        find("SessionService/GetSession").is_empty(),
        "reads are not audited"
    );
    let paused = find("AdminService/PauseRelay");
    assert_eq!(paused[0]["fields"]["api_key"], "admin-token");
    let resumed = find("AdminService/ResumeRelay");
    assert_eq!(resumed[0]["fields"]["api_key"], key_id(&operator_key));
    let revoke = find("SessionService/RevokeSession");
    assert_eq!(revoke[0]["fields"]["api_key"], key_id(&reader_key));
    assert_eq!(revoke[0]["fields"]["code"], "PERMISSION_DENIED");
    let listed = find("SessionService/ListSessions");
    assert_eq!(
        listed.len(),
        1,
        "the refused read is audited, the good ones are not"
    );
    assert_eq!(listed[0]["fields"]["code"], "UNAUTHENTICATED");
    assert!(
        listed[0]["fields"]["api_key"].is_null(),
        "an unknown key has no id to log"
    );
    let keys_created = audit
        .iter()
        .filter(|record| record["fields"]["message"] == "API key created")
        .count();
    assert_eq!(
        keys_created, 3,
        "the test's key, the operator's and the reader's"
    );
}
