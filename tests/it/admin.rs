//! The admin service and the operator commands on it, run as the real `latchkey` binary
//! against a live daemon: `status`, `relayer list|fund|pause|resume`, with their `--json`
//! parsed; the pause holding across a restart; and the admin token's guard.

use alloy::{
    primitives::{U256, utils::parse_ether},
    providers::{Provider, ext::AnvilApi},
    signers::local::PrivateKeySigner,
};
use latchkey::{
    api::proto::{self, TransactionIntentStatus as S, admin_service_client::AdminServiceClient},
    intent::IntentStatus,
};
use serde_json::Value;
use tonic::{Code, transport::Channel};

use crate::{
    daemon::{ADMIN_TOKEN, TestDaemon},
    harness::TestChain,
};

/// Runs `latchkey <args>` against `daemon`'s admin service with `env` (the admin token
/// unless `env` sets another); returns (exit code, stdout, stderr).
async fn latchkey(
    daemon: &TestDaemon,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let endpoint = format!("http://{}", daemon.admin_addr.expect("admin served"));
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command
        .args(args)
        .env("LATCHKEY_ADMIN_ENDPOINT", endpoint)
        .env("LATCHKEY_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("LATCHKEY_FUNDER_PRIVATE_KEY")
        .env_remove("LATCHKEY_RPC_URL");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().await.expect("run latchkey");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(
        !stdout.contains(ADMIN_TOKEN) && !stderr.contains(ADMIN_TOKEN),
        "the admin token never shows"
    );
    (output.status.code().unwrap_or(-1), stdout, stderr)
}

/// Runs a command that must succeed and print JSON.
async fn json(daemon: &TestDaemon, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, stdout, stderr) = latchkey(daemon, &all, env).await;
    assert_eq!(code, 0, "latchkey {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

fn wei(value: &Value) -> U256 {
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("a wei amount: {value}"))
}

fn stored_status(daemon: &TestDaemon, name: &str) -> IntentStatus {
    crate::daemon::stored_intent(daemon, name).status
}

#[tokio::test]
async fn operators_read_the_status_pause_and_resume_relaying_and_fund_relayers() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let owner = PrivateKeySigner::random();
    let session = daemon.active_held_session(&chain, &owner, 10).await;
    let first = daemon.create_mint(&chain, &session, 1).await;
    daemon.wait_final(&first.name).await;
    let relayer = chain.chain.relayer.address();

    // The status agrees with the chain and the store.
    let status = json(&daemon, &["status"], &[]).await;
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["chain_id"], chain.chain_id());
    assert_eq!(status["relay"]["paused"], false);
    assert_eq!(status["queue_depth"], 0);
    let confirmed = daemon
        .store
        .count_intents_in_status(IntentStatus::Confirmed)
        .await
        .expect("count");
    assert_eq!(confirmed, 2, "the registration and the mint");
    assert_eq!(status["intents"]["confirmed"], confirmed);
    assert_eq!(status["intents"]["dropped"], 0);
    let head = chain.relayer.get_block_number().await.expect("head");
    let block = status["chain"]["block"].as_u64().expect("head block");
    assert!(block <= head && block + 2 >= head, "{block} vs {head}");
    assert!(status["chain"]["relay_lag_blocks"].as_u64().is_some());
    let listed = &status["relayers"][0];
    assert_eq!(listed["address"], relayer.to_string());
    assert_eq!(
        wei(&listed["balance_wei"]),
        chain.relayer.get_balance(relayer).await.expect("balance")
    );
    assert_eq!(
        listed["nonce"],
        chain
            .relayer
            .get_transaction_count(relayer)
            .await
            .expect("nonce")
    );
    assert_eq!(listed["in_flight_bundles"], 0);
    let (code, text, _) = latchkey(&daemon, &["status"], &[]).await;
    assert_eq!(code, 0);
    for expected in ["relay     running", &relayer.to_string(), "confirmed"] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }

    // A bundle waiting for its block shows in flight, under its relayer.
    chain
        .relayer
        .anvil_set_auto_mine(false)
        .await
        .expect("automine off");
    let waiting = daemon.create_mint(&chain, &session, 2).await;
    daemon.wait_status(&waiting.name, S::Submitted).await;
    let relayers = json(&daemon, &["relayer", "list"], &[]).await;
    assert_eq!(relayers[0]["address"], relayer.to_string());
    assert_eq!(relayers[0]["in_flight_bundles"], 1);
    assert_eq!(relayers[0]["in_flight_operations"], 1);
    chain
        .relayer
        .anvil_set_auto_mine(true)
        .await
        .expect("automine on");
    chain.relayer.anvil_mine(Some(1), None).await.expect("mine");
    daemon.wait_final(&waiting.name).await;

    // Paused, the relay sends nothing new: an intent waits QUEUED, and stays so across a
    // restart, until relaying resumes.
    let (code, _, stderr) = latchkey(&daemon, &["relayer", "pause", "--reason", " "], &[]).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("INVALID_ARGUMENT") && stderr.contains("reason"),
        "{stderr}"
    );
    let paused = json(
        &daemon,
        &["relayer", "pause", "--reason", "topping up the relayers"],
        &[],
    )
    .await;
    assert_eq!(paused["paused"], true);
    assert_eq!(paused["pause_reason"], "topping up the relayers");
    let held = daemon.create_mint(&chain, &session, 3).await;
    daemon.relay_passes().await;
    assert_eq!(stored_status(&daemon, &held.name), IntentStatus::Queued);
    let status = json(&daemon, &["status"], &[]).await;
    assert_eq!(status["relay"]["paused"], true);
    assert_eq!(status["queue_depth"], 1);
    let (_, text, _) = latchkey(&daemon, &["status"], &[]).await;
    assert!(text.contains("PAUSED since"), "{text}");
    assert!(text.contains("topping up the relayers"), "{text}");

    let dir = daemon.keep_dir();
    let data_dir = daemon.data_dir.clone();
    let api_key = daemon.api_key.clone();
    daemon.stop().await;
    let mut daemon = TestDaemon::start_on(&chain, data_dir, &api_key).await;
    daemon.relay_passes().await;
    assert_eq!(stored_status(&daemon, &held.name), IntentStatus::Queued);
    let status = json(&daemon, &["status"], &[]).await;
    assert_eq!(
        status["relay"]["paused"], true,
        "the pause outlasts a restart"
    );
    assert_eq!(status["relay"]["paused_at"], paused["paused_at"]);

    let resumed = json(&daemon, &["relayer", "resume"], &[]).await;
    assert_eq!(resumed["paused"], false);
    let done = daemon.wait_final(&held.name).await;
    assert_eq!(done.status, S::Confirmed as i32);

    // Funding: each relayer is topped up to the amount from a funder key in the
    // environment, and one that holds enough gets nothing.
    let funder = PrivateKeySigner::random();
    chain
        .relayer
        .anvil_set_balance(funder.address(), parse_ether("5000").expect("constant"))
        .await
        .expect("fund the funder");
    let key = format!("0x{}", alloy::hex::encode(funder.to_bytes()));
    let rpc = chain.chain.rpc_url().to_string();
    let env = [
        ("LATCHKEY_FUNDER_PRIVATE_KEY", key.as_str()),
        ("LATCHKEY_RPC_URL", rpc.as_str()),
    ];
    let before = chain.relayer.get_balance(relayer).await.expect("balance");
    let target = parse_ether("2000").expect("constant");
    let funded = json(&daemon, &["relayer", "fund", "--up-to", "2000ether"], &env).await;
    assert_eq!(funded[0]["address"], relayer.to_string());
    assert_eq!(wei(&funded[0]["before_wei"]), before);
    assert_eq!(wei(&funded[0]["sent_wei"]), target - before);
    assert_eq!(wei(&funded[0]["after_wei"]), target);
    assert_eq!(
        chain.relayer.get_balance(relayer).await.expect("balance"),
        target
    );
    // An RPC on another chain is refused before anything is sent.
    let other_chain = crate::harness::bare_anvil(&["--chain-id", "99"]);
    let other_rpc = other_chain.endpoint();
    let (code, _, stderr) = latchkey(
        &daemon,
        &["relayer", "fund", "--up-to", "3000ether"],
        &[
            ("LATCHKEY_FUNDER_PRIVATE_KEY", key.as_str()),
            ("LATCHKEY_RPC_URL", other_rpc.as_str()),
        ],
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("is chain 99") && stderr.contains("Nothing was sent"),
        "{stderr}"
    );
    assert_eq!(
        chain.relayer.get_balance(relayer).await.expect("balance"),
        target
    );
    let again = json(&daemon, &["relayer", "fund", "--up-to", "1ether"], &env).await;
    assert_eq!(again[0]["sent_wei"], "0");
    assert_eq!(again[0]["transaction_hash"], Value::Null);
    let (code, stdout, stderr) = latchkey(
        &daemon,
        &["relayer", "fund", "--up-to", "3000ether"],
        &[("LATCHKEY_RPC_URL", rpc.as_str())],
    )
    .await;
    assert_eq!(code, 1, "no funder key: {stdout}");
    assert!(stderr.contains("LATCHKEY_FUNDER_PRIVATE_KEY"), "{stderr}");
    let (code, _, stderr) = latchkey(&daemon, &["relayer", "fund", "--up-to", "1.5"], &env).await;
    assert_eq!(code, 2, "a fraction of a wei is a usage error: {stderr}");
    assert!(!stderr.contains(&key[2..]), "the funder key never shows");
    drop(dir);
}

#[tokio::test]
async fn the_admin_service_lets_in_only_its_token_and_only_on_its_own_address() {
    let chain = TestChain::start().await;
    let daemon = TestDaemon::start(&chain).await;
    let admin_addr = daemon.admin_addr.expect("admin served");
    assert_ne!(admin_addr, daemon.addr);
    let channel = Channel::from_shared(format!("http://{admin_addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");

    let mut anonymous = AdminServiceClient::new(channel.clone());
    let refused = anonymous
        .get_status(proto::GetStatusRequest {})
        .await
        .expect_err("no token");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    for header in [
        "Bearer not-the-token-0123456789abcdef0123456789".to_owned(),
        ADMIN_TOKEN.to_owned(),
        format!("Basic {ADMIN_TOKEN}"),
    ] {
        let mut request = tonic::Request::new(proto::PauseRelayRequest {
            reason: "should not pause".to_owned(),
        });
        request
            .metadata_mut()
            .insert("authorization", header.parse().expect("ascii"));
        let refused = anonymous
            .pause_relay(request)
            .await
            .expect_err("wrong token");
        assert_eq!(
            refused.code(),
            Code::Unauthenticated,
            "{header}: {refused:?}"
        );
        assert!(!refused.message().contains(ADMIN_TOKEN));
    }
    assert!(
        daemon.store.relay_pause().await.expect("read").is_none(),
        "a refused call changes nothing"
    );

    // The CLI says what is wrong with its credentials.
    let (code, _, stderr) = latchkey(
        &daemon,
        &["status"],
        &[(
            "LATCHKEY_ADMIN_TOKEN",
            "not-the-token-0123456789abcdef0123456789",
        )],
    )
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("UNAUTHENTICATED"), "{stderr}");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    let output = command
        .args(["status"])
        .env("LATCHKEY_ADMIN_ENDPOINT", format!("http://{admin_addr}"))
        .env_remove("LATCHKEY_ADMIN_TOKEN")
        .output()
        .await
        .expect("run latchkey");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("LATCHKEY_ADMIN_TOKEN"));

    // The application port does not serve the admin service, and the admin port serves
    // nothing else.
    let app_channel = Channel::from_shared(format!("http://{}", daemon.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut request = tonic::Request::new(proto::GetStatusRequest {});
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {ADMIN_TOKEN}").parse().expect("ascii"),
    );
    let missing = AdminServiceClient::new(app_channel)
        .get_status(request)
        .await
        .expect_err("not on the application port");
    assert_eq!(missing.code(), Code::Unimplemented, "{missing:?}");
    let elsewhere =
        latchkey::api::proto::session_service_client::SessionServiceClient::new(channel)
            .get_session(proto::GetSessionRequest {
                name: "sessions/x".to_owned(),
            })
            .await
            .expect_err("not on the admin port");
    assert!(
        matches!(
            elsewhere.code(),
            Code::Unimplemented | Code::Unauthenticated
        ),
        "{elsewhere:?}"
    );
}
