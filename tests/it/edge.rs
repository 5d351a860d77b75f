//! The edge every call passes before its message is read: a flood of bad keys is refused
//! cheaply and logged once, a body sent without a good key is never decoded, and one
//! tenant at its watch quota leaves room for the others and for the operator.

use std::{net::IpAddr, time::Duration};

use alloy::signers::local::PrivateKeySigner;
use latchkey::{api::proto, store::RelayPause};
use prost::Message;
use serde_json::Value;
use tonic::{Code, Status, metadata::MetadataValue, transport::Channel};
use tonic_types::StatusExt;

use crate::{
    daemon::{Clients, DaemonProcess, TestDaemon, admin_client, create_api_key, free_port},
    harness::TestChain,
    malformed::RawCodec,
};

/// A key of the right shape whose secret no key has.
fn forged_key(good: &str) -> String {
    let mut forged = good.to_owned();
    let last = forged.pop().expect("a key");
    forged.push(if last == '0' { '1' } else { '0' });
    forged
}

/// A channel to `addr` whose connections leave from `source`, another loopback address.
async fn channel_from(addr: std::net::SocketAddr, source: IpAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .local_address(Some(source))
        .connect()
        .await
        .expect("connect")
}

#[tokio::test]
async fn a_flood_of_bad_keys_is_refused_before_any_lookup_and_logged_once() {
    let chain = TestChain::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log_file = dir.path().join("latchkey.log");
    let port = free_port();
    let daemon =
        DaemonProcess::spawn_logging(&chain, &dir.path().join("store"), port, "", Some(&log_file))
            .await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let flooder = Clients::new(
        channel_from(addr, "127.0.0.1".parse().expect("ip")).await,
        &forged_key(&daemon.api_key),
    );

    // 1,000 bad keys from one address, as fast as it can send them.
    let started = std::time::Instant::now();
    let mut unauthenticated = 0;
    let mut limited = Vec::new();
    for _ in 0..1000 {
        let status = flooder
            .sessions
            .clone()
            .list_sessions(proto::ListSessionsRequest::default())
            .await
            .expect_err("a forged key gets nothing");
        match status.code() {
            Code::Unauthenticated => unauthenticated += 1,
            Code::ResourceExhausted => limited.push(status),
            other => panic!("{other:?}: {status:?}"),
        }
    }
    let flood = started.elapsed();
    // The burst (api.auth_failure_burst, 30 by default) is looked up; one more a second
    // while the flood lasts may be.
    let allowed = 30 + flood.as_secs() as usize + 1;
    assert!(
        (30..=allowed).contains(&unauthenticated),
        "{unauthenticated} looked up in {flood:?}"
    );
    assert_eq!(unauthenticated + limited.len(), 1000);
    let info = limited[0].get_details_error_info().expect("an ErrorInfo");
    assert_eq!(info.reason, "AUTHENTICATION_FAILURES_LIMITED");
    assert_eq!(info.metadata["limit"], "api.auth_failures_per_second");
    assert!(
        limited[0].get_details_retry_info().is_some(),
        "says when to retry"
    );

    // The limit is the address's: a good key from another address goes through at once,
    // and from the flooding address only once its budget refills.
    let neighbour = Clients::new(
        channel_from(addr, "127.0.0.2".parse().expect("ip")).await,
        &daemon.api_key,
    );
    neighbour
        .sessions
        .clone()
        .list_sessions(proto::ListSessionsRequest::default())
        .await
        .expect("another address is not limited");
    let same_address = daemon
        .sessions
        .clone()
        .list_sessions(proto::ListSessionsRequest::default())
        .await
        .expect_err("the flooding address waits, whatever key it shows");
    assert_eq!(same_address.code(), Code::ResourceExhausted);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    daemon
        .sessions
        .clone()
        .list_sessions(proto::ListSessionsRequest::default())
        .await
        .expect("a refilled budget lets a good key in");

    let (_, exit) = daemon.terminate(Duration::from_secs(30)).await;
    assert!(exit.success());
    let log = std::fs::read_to_string(&log_file).expect("the log");
    let refusals: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON record"))
        .filter(|record| {
            record["target"] == "audit" && record["fields"]["message"] == "call refused"
        })
        .collect();
    // One record per peer per 10 s: the flood, its neighbour's nothing, and the refused
    // good key, within the same interval or the next ones.
    let intervals = (started.elapsed().as_secs() / 10) as usize + 1;
    assert!(
        !refusals.is_empty() && refusals.len() <= intervals,
        "{} records for {intervals} intervals: {refusals:#?}",
        refusals.len()
    );
    assert_eq!(refusals[0]["fields"]["peer"], "127.0.0.1");
    let told: u64 = refusals
        .iter()
        .map(|record| {
            record["fields"]["refused_since_last_record"]
                .as_u64()
                .expect("a count")
                + 1
        })
        .sum();
    assert!(told <= 1001, "{told}");
}

/// Calls CreateSession with `body` as the message's bytes and `credential`, if any.
async fn create_session_raw(
    daemon: &TestDaemon,
    credential: Option<&str>,
    body: Vec<u8>,
) -> Status {
    let mut grpc =
        tonic::client::Grpc::new(daemon.channel.clone()).max_encoding_message_size(usize::MAX);
    grpc.ready().await.expect("ready");
    let mut request = tonic::Request::new(body);
    if let Some(credential) = credential {
        request.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(format!("Bearer {credential}")).expect("header"),
        );
    }
    grpc.unary(
        request,
        "/latchkey.v1.SessionService/CreateSession"
            .parse()
            .expect("path"),
        RawCodec,
    )
    .await
    .expect_err("refused")
}

#[tokio::test]
async fn a_body_sent_without_a_good_key_is_refused_before_it_is_read() {
    let chain = TestChain::start().await;
    let daemon = TestDaemon::start(&chain).await;
    let before = daemon.store.content_digest().await.expect("digest");
    let forged = forged_key(&daemon.api_key);

    // What would be OUT_OF_RANGE (over api.max_request_bytes) or INVALID_ARGUMENT (no
    // message) with a good key is UNAUTHENTICATED without one: the edge answers from the
    // headers, and the body is never read, let alone decoded.
    let oversized = vec![0x0a; 2 * 1024 * 1024];
    let garbage = vec![0xff; 5];
    let valid = proto::CreateSessionRequest::default().encode_to_vec();
    for (credential, body, what) in [
        (None, oversized.clone(), "2 MiB, no key"),
        (
            Some(forged.as_str()),
            oversized.clone(),
            "2 MiB, a forged key",
        ),
        (
            Some("not-a-key"),
            garbage.clone(),
            "garbage, a malformed key",
        ),
        (None, valid, "a valid message, no key"),
    ] {
        let status = create_session_raw(&daemon, credential, body).await;
        assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    }
    // With the good key, the same bytes reach the decoder.
    let oversize = create_session_raw(&daemon, Some(&daemon.api_key), oversized).await;
    assert_eq!(oversize.code(), Code::OutOfRange, "{oversize:?}");
    let malformed = create_session_raw(&daemon, Some(&daemon.api_key), garbage).await;
    assert_eq!(malformed.code(), Code::InvalidArgument, "{malformed:?}");

    let metrics = daemon.scrape().await;
    let count = |code: &str| {
        metrics
            .get(&format!(
                "latchkey_grpc_requests_total{{method=\"SessionService/CreateSession\",code=\"{code}\"}}"
            ))
            .copied()
            .unwrap_or_default()
    };
    assert_eq!(count("UNAUTHENTICATED"), 4.0, "{metrics:?}");
    assert_eq!(count("OUT_OF_RANGE"), 1.0, "{metrics:?}");
    assert_eq!(count("INVALID_ARGUMENT"), 1.0, "{metrics:?}");
    assert_eq!(daemon.store.content_digest().await.expect("digest"), before);
}

#[tokio::test]
async fn one_tenant_at_its_watch_quota_leaves_room_for_another_and_for_the_operator() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start_with(&chain, |config| {
        config.api.max_watch_streams = 3;
        config.api.max_watch_streams_per_tenant = 2;
        config.api.max_admin_watch_streams = 1;
    })
    .await;
    let admin_addr = daemon.admin_addr.expect("admin");
    let other_key = create_api_key(
        admin_addr,
        "other-studio",
        &[proto::ApiKeyScope::Read, proto::ApiKeyScope::Write],
    )
    .await;
    let mut other = daemon.clients_with(&other_key);
    let mine = daemon
        .active_held_session(&chain, &PrivateKeySigner::random(), 10)
        .await;
    let theirs = other
        .active_held_session(&chain, &PrivateKeySigner::random(), 10)
        .await;
    // Paused, the intents wait QUEUED, so their streams stay open.
    daemon
        .store
        .set_relay_pause(Some(&RelayPause {
            reason: "hold the intents".to_owned(),
            since_ms: 0,
        }))
        .await
        .expect("pause");
    let mut my_intents = Vec::new();
    for id in 0..3 {
        my_intents.push(daemon.create_mint(&chain, &mine, id).await);
    }
    let their_intents = [
        other.create_mint(&chain, &theirs, 10).await,
        other.create_mint(&chain, &theirs, 11).await,
    ];
    let watch = |clients: &Clients, name: &str| {
        let mut client = clients.intents.clone();
        let request = proto::WatchTransactionIntentRequest {
            name: name.to_owned(),
        };
        async move { client.watch_transaction_intent(request).await }
    };

    let _mine = [
        watch(&daemon, &my_intents[0].name).await.expect("first"),
        watch(&daemon, &my_intents[1].name).await.expect("second"),
    ];
    let digest = daemon.store.content_digest().await.expect("digest");
    let quota = watch(&daemon, &my_intents[2].name)
        .await
        .expect_err("a third is over this tenant's quota");
    assert_eq!(quota.code(), Code::ResourceExhausted, "{quota:?}");
    let info = quota.get_details_error_info().expect("an ErrorInfo");
    assert_eq!(info.reason, "TENANT_QUOTA_REACHED");
    assert_eq!(info.metadata["limit"], "api.max_watch_streams_per_tenant");

    // The other tenant still opens one: the quota is per tenant.
    let _theirs = watch(&other, &their_intents[0].name)
        .await
        .expect("another tenant has room");
    // Now the daemon's total is reached, for everyone on the application API ...
    let total = watch(&other, &their_intents[1].name)
        .await
        .expect_err("the total is reached");
    let info = total.get_details_error_info().expect("an ErrorInfo");
    assert_eq!(info.reason, "SERVER_LIMIT_REACHED");
    assert_eq!(info.metadata["limit"], "api.max_watch_streams");
    // ... but the operator has slots of its own.
    let mut admin = admin_client(admin_addr).await;
    let mut operator = admin
        .watch_transaction_intent(proto::WatchTransactionIntentRequest {
            name: my_intents[2].name.clone(),
        })
        .await
        .expect("the admin service has its own slots")
        .into_inner();
    let now = operator
        .message()
        .await
        .expect("stream")
        .expect("the intent");
    assert_eq!(now.name, my_intents[2].name);
    let full = admin
        .watch_transaction_intent(proto::WatchTransactionIntentRequest {
            name: my_intents[2].name.clone(),
        })
        .await
        .expect_err("its pool is full too");
    assert_eq!(
        full.get_details_error_info().expect("info").metadata["limit"],
        "api.max_admin_watch_streams"
    );
    assert_eq!(daemon.store.content_digest().await.expect("digest"), digest);
}
