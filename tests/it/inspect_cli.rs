//! The operator's inspection commands, run as the real `latchkey` binary against a live
//! daemon's admin service: `session list|show|revoke` and `intent list|show|watch`, each
//! with its `--json` output parsed and held against what the gRPC API says, and their
//! errors. The admin token never shows in any output.

use std::{process::Stdio, time::Duration};

use alloy::signers::local::PrivateKeySigner;
use latchkey::{
    api::proto,
    cli::{ClientArgs, admin::AdminClient},
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tonic::Code;

use crate::{
    daemon::{ADMIN_TOKEN, TestDaemon, account_address, mint_interaction},
    harness::TestChain,
};

/// The token a test passes to the binary.
enum Token<'a> {
    Right,
    Wrong(&'a str),
    Missing,
}

/// What one run of the binary did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `latchkey <args>` with the daemon's admin endpoint and `token` in its environment.
fn command(daemon: &TestDaemon, args: &[&str], token: &Token<'_>) -> tokio::process::Command {
    let endpoint = format!("http://{}", daemon.admin_addr.expect("the admin service"));
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command
        .args(args)
        .env("LATCHKEY_ADMIN_ENDPOINT", endpoint)
        .env_remove("LATCHKEY_ADMIN_TOKEN");
    match token {
        Token::Right => command.env("LATCHKEY_ADMIN_TOKEN", ADMIN_TOKEN),
        Token::Wrong(token) => command.env("LATCHKEY_ADMIN_TOKEN", token),
        Token::Missing => &mut command,
    };
    command
}

/// Runs `latchkey <args>` to its end; whatever it prints never holds the admin token.
async fn latchkey(daemon: &TestDaemon, args: &[&str], token: Token<'_>) -> Run {
    let output = command(daemon, args, &token)
        .output()
        .await
        .expect("run latchkey");
    let run = Run {
        code: output.status.code().expect("an exit code"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert_token_hidden(&run.stdout, &token);
    assert_token_hidden(&run.stderr, &token);
    run
}

fn assert_token_hidden(output: &str, token: &Token<'_>) {
    assert!(!output.contains(ADMIN_TOKEN), "the token leaked: {output}");
    if let Token::Wrong(token) = token {
        assert!(!output.contains(token), "the token leaked: {output}");
    }
}

/// Runs a command that must succeed with `--json`, and parses what it prints.
async fn json(daemon: &TestDaemon, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let run = latchkey(daemon, &all, Token::Right).await;
    assert_eq!(run.code, 0, "latchkey {args:?} failed: {}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap_or_else(|error| panic!("{error}: {}", run.stdout))
}

/// Runs a command that must succeed, and returns what it prints for people.
async fn human(daemon: &TestDaemon, args: &[&str]) -> String {
    let run = latchkey(daemon, args, Token::Right).await;
    assert_eq!(run.code, 0, "latchkey {args:?} failed: {}", run.stderr);
    run.stdout
}

/// Runs a command that must fail with exit code `code` and `needle` on stderr.
async fn fails(daemon: &TestDaemon, args: &[&str], token: Token<'_>, code: i32, needle: &str) {
    let run = latchkey(daemon, args, token).await;
    assert_eq!(run.code, code, "latchkey {args:?}: {}", run.stderr);
    assert!(
        run.stderr.contains(needle),
        "latchkey {args:?} should say {needle:?}: {}",
        run.stderr
    );
}

/// The `name` field of each element of a JSON array.
fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|item| item["name"].as_str().expect("a name"))
        .collect()
}

fn time(time: Option<prost_types::Timestamp>) -> Value {
    time.map_or(Value::Null, |time| Value::from(time.to_string()))
}

async fn admin_client(daemon: &TestDaemon) -> AdminClient {
    ClientArgs {
        endpoint: format!("http://{}", daemon.addr),
        api_key: None,
        admin_endpoint: format!("http://{}", daemon.admin_addr.expect("the admin service")),
        admin_token: Some(ADMIN_TOKEN.parse().expect("infallible")),
        ca_cert: None,
        json: false,
    }
    .connect_admin()
    .await
    .expect("connect to the admin service")
}

#[tokio::test]
async fn operators_inspect_sessions_and_intents_and_revoke_a_session() {
    let chain = TestChain::start().await;
    let daemon = TestDaemon::start(&chain).await;
    let mut api = daemon.api.clone();
    let (alice, bob) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let first = api.active_held_session(&chain, &alice, 10).await;
    let second = api.active_held_session(&chain, &bob, 10).await;
    let minted = api.create_mint(&chain, &first, 1).await;
    let minted = api.wait_final(&minted.name).await;
    assert_eq!(
        minted.status,
        proto::TransactionIntentStatus::Confirmed as i32
    );
    let other = api.create_mint(&chain, &second, 2).await;
    let other = api.wait_final(&other.name).await;

    // Sessions: all of them newest first, by account, by status, and a page of one.
    let all = json(&daemon, &["session", "list"]).await;
    assert_eq!(names(&all), [second.name.as_str(), first.name.as_str()]);
    let alice_account = account_address(&first.account).to_string();
    let by_account = json(&daemon, &["session", "list", "--account", &alice_account]).await;
    assert_eq!(names(&by_account), [first.name.as_str()]);
    let active = json(&daemon, &["session", "list", "--status", "active"]).await;
    assert_eq!(names(&active), [second.name.as_str(), first.name.as_str()]);
    let revoked = json(&daemon, &["session", "list", "--status", "revoked"]).await;
    assert_eq!(names(&revoked), Vec::<&str>::new());
    let one = json(&daemon, &["session", "list", "--limit", "1"]).await;
    assert_eq!(names(&one), [second.name.as_str()]);
    let table = human(&daemon, &["session", "list"]).await;
    assert!(
        table.contains(&first.id) && table.contains(&second.id),
        "{table}"
    );

    // One session, by its bare id: the JSON holds what the gRPC API returns.
    let session = api
        .sessions
        .get_session(proto::GetSessionRequest {
            name: first.name.clone(),
        })
        .await
        .expect("get session")
        .into_inner();
    let shown = json(&daemon, &["session", "show", &first.id]).await;
    assert_eq!(shown["name"], session.name.as_str());
    assert_eq!(shown["id"], session.id.as_str());
    assert_eq!(shown["account"], session.account.as_str());
    assert_eq!(shown["owner"], session.owner.as_str());
    assert_eq!(shown["owner"], alice.address().to_string());
    assert_eq!(shown["salt"], session.salt.as_str());
    assert_eq!(shown["chain_id"], session.chain_id);
    assert_eq!(shown["key_address"], session.key_address.as_str());
    assert_eq!(shown["custody"], "held");
    assert_eq!(shown["status"], "active");
    assert_eq!(
        shown["valid_after"],
        time(Some(prost_types::Timestamp {
            seconds: session.valid_after,
            nanos: 0
        }))
    );
    assert_eq!(
        shown["valid_until"],
        time(Some(prost_types::Timestamp {
            seconds: session.valid_until,
            nanos: 0
        }))
    );
    let permissions = session.permissions.clone().expect("permissions");
    assert_eq!(shown["permissions"]["call_limit"], permissions.call_limit);
    assert_eq!(
        shown["permissions"]["gas_budget_wei"],
        permissions.gas_budget.as_str()
    );
    assert_eq!(
        shown["permissions"]["calls"][0]["target"],
        permissions.calls[0].target.as_str()
    );
    assert_eq!(
        shown["permissions"]["calls"][0]["function"],
        permissions.calls[0].function.as_str()
    );
    assert_eq!(
        shown["registration_user_op_hash"],
        session.registration_user_op_hash.as_str()
    );
    assert_eq!(
        shown["registration_transaction_hash"],
        session.registration_transaction_hash.as_str()
    );
    assert_eq!(shown["next_action_hash"], Value::Null);
    assert_eq!(shown["revocation_user_op_hash"], Value::Null);
    assert_eq!(shown["failure_reason"], Value::Null);
    assert_eq!(shown["policy"], Value::Null);
    assert_eq!(shown["create_time"], time(session.create_time));
    assert_eq!(shown["update_time"], time(session.update_time));
    let text = human(&daemon, &["session", "show", &first.name]).await;
    assert!(text.starts_with(&first.name), "{text}");
    assert!(text.contains(&session.key_address), "{text}");

    // Intents: by session, by account, by status, and one in full.
    let by_session = json(
        &daemon,
        &["intent", "list", "--session", &first.id, "--kind", "call"],
    )
    .await;
    assert_eq!(names(&by_session), [minted.name.as_str()]);
    // Without --kind, the session's registration is listed too.
    let every_kind = json(&daemon, &["intent", "list", "--session", &first.id]).await;
    assert_eq!(
        names(&every_kind),
        [minted.name.as_str(), session.registration_intent.as_str()]
    );
    let bob_account = account_address(&second.account).to_string();
    let by_account = json(
        &daemon,
        &[
            "intent",
            "list",
            "--account",
            &bob_account,
            "--kind",
            "call",
        ],
    )
    .await;
    assert_eq!(names(&by_account), [other.name.as_str()]);
    let confirmed = json(
        &daemon,
        &["intent", "list", "--status", "confirmed", "--kind", "call"],
    )
    .await;
    assert_eq!(
        names(&confirmed),
        [other.name.as_str(), minted.name.as_str()]
    );
    assert_eq!(confirmed[1]["user_op_hash"], minted.user_op_hash.as_str());
    let table = human(&daemon, &["intent", "list"]).await;
    assert!(
        table.contains(&minted.id) && table.contains(&other.id),
        "{table}"
    );

    let shown = json(&daemon, &["intent", "show", &minted.id]).await;
    let result = minted.result.clone().expect("a result");
    let submission = minted.submission.clone().expect("a submission");
    assert_eq!(shown["name"], minted.name.as_str());
    assert_eq!(shown["session"], first.name.as_str());
    assert_eq!(shown["account"], first.account.as_str());
    assert_eq!(shown["status"], "confirmed");
    assert_eq!(shown["user_op_hash"], minted.user_op_hash.as_str());
    assert_eq!(
        shown["interactions"][0]["function"],
        "mint(address,uint256,uint256)"
    );
    assert_eq!(shown["result"]["block_number"], result.block_number);
    assert_eq!(
        shown["result"]["transaction_hash"],
        result.transaction_hash.as_str()
    );
    assert_eq!(shown["result"]["gas_used"], result.gas_used.as_str());
    assert_eq!(
        shown["result"]["actual_cost_wei"],
        result.actual_cost.as_str()
    );
    assert_eq!(shown["result"]["success"], true);
    assert_eq!(
        shown["submission"]["relayer"],
        chain.chain.relayer.address().to_string()
    );
    assert_eq!(
        shown["submission"]["relayer_nonce"],
        submission.relayer_nonce
    );
    assert_eq!(
        shown["submission"]["max_fee_per_gas"],
        submission.max_fee_per_gas.as_str()
    );
    let history: Vec<&str> = shown["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|transition| transition["status"].as_str().expect("status"))
        .collect();
    assert_eq!(history.first(), Some(&"queued"), "{history:?}");
    assert_eq!(history.last(), Some(&"confirmed"), "{history:?}");
    assert_eq!(history.len(), minted.history.len());
    let text = human(&daemon, &["intent", "show", &minted.name]).await;
    assert!(text.starts_with(&minted.name), "{text}");
    assert!(text.contains(&result.transaction_hash), "{text}");

    // Watching an intent from the queue to its end. The relay is paused while it is
    // created, so the watch starts from QUEUED; resuming lets it through.
    let mut admin = admin_client(&daemon).await;
    admin
        .pause_relay(proto::PauseRelayRequest {
            reason: "watch test".to_owned(),
        })
        .await
        .expect("pause");
    let watched = api.create_mint(&chain, &first, 3).await;
    assert_eq!(
        watched.status,
        proto::TransactionIntentStatus::Queued as i32
    );
    let mut child = command(
        &daemon,
        &["intent", "watch", &watched.id, "--json"],
        &Token::Right,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn the watch");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut statuses = Vec::new();
    let first_line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the watch prints the intent at once")
        .expect("read")
        .expect("a line");
    let update: Value = serde_json::from_str(&first_line).expect("one JSON object per line");
    assert_eq!(update["name"], watched.name.as_str());
    statuses.push(update["status"].as_str().expect("status").to_owned());
    admin
        .resume_relay(proto::ResumeRelayRequest {})
        .await
        .expect("resume");
    let rest = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            let update: Value =
                serde_json::from_str(&line).unwrap_or_else(|error| panic!("{error}: {line}"));
            assert_eq!(update["name"], watched.name.as_str());
            statuses.push(update["status"].as_str().expect("status").to_owned());
        }
        child.wait_with_output().await.expect("the watch ends")
    })
    .await
    .expect("the watch ends with the intent");
    assert_eq!(rest.status.code(), Some(0), "{statuses:?}");
    assert_token_hidden(&String::from_utf8_lossy(&rest.stderr), &Token::Right);
    assert_eq!(statuses.first().map(String::as_str), Some("queued"));
    assert_eq!(statuses.last().map(String::as_str), Some("confirmed"));
    let order = ["queued", "submitted", "included", "confirmed"];
    let ranks: Vec<usize> = statuses
        .iter()
        .map(|status| {
            order
                .iter()
                .position(|known| known == status)
                .unwrap_or_else(|| panic!("unexpected status {status} in {statuses:?}"))
        })
        .collect();
    assert!(
        ranks.windows(2).all(|pair| pair[0] <= pair[1]),
        "statuses in order: {statuses:?}"
    );
    assert!(
        statuses.iter().any(|status| status == "submitted"),
        "the watch saw the intent sent: {statuses:?}"
    );

    // Watching an intent already final prints it once and ends at once.
    let run = latchkey(
        &daemon,
        &["intent", "watch", &minted.name, "--json"],
        Token::Right,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    let update: Value = serde_json::from_str(lines[0]).expect("JSON");
    assert_eq!(update["status"], "confirmed");
    let text = human(&daemon, &["intent", "watch", &minted.id]).await;
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("confirmed") && text.contains(&result.transaction_hash),
        "{text}"
    );

    // Revoking: the session is REVOKING, the owner's hash is the revocation's, and the key
    // signs nothing more.
    let revoking = json(&daemon, &["session", "revoke", &first.id]).await;
    assert_eq!(revoking["status"], "revoking");
    let hash = revoking["next_action_hash"]
        .as_str()
        .expect("a hash to sign");
    assert_eq!(revoking["revocation_user_op_hash"], hash);
    let session = api
        .sessions
        .get_session(proto::GetSessionRequest {
            name: first.name.clone(),
        })
        .await
        .expect("get session")
        .into_inner();
    assert_eq!(session.status, proto::SessionStatus::Revoking as i32);
    assert_eq!(
        session.next_action.expect("a next action").signable_hash,
        hash
    );
    let refused = api
        .intents
        .create_transaction_intent(proto::CreateTransactionIntentRequest {
            session: first.name.clone(),
            interactions: vec![mint_interaction(&chain, &alice_account, 4, 1)],
            idempotency_key: String::new(),
            policy: String::new(),
        })
        .await
        .expect_err("a revoking session signs no intent");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    fails(
        &daemon,
        &["session", "revoke", &first.name],
        Token::Right,
        1,
        "FAILED_PRECONDITION",
    )
    .await;
    let text = human(&daemon, &["session", "revoke", &second.name]).await;
    let second_hash = api
        .sessions
        .get_session(proto::GetSessionRequest {
            name: second.name.clone(),
        })
        .await
        .expect("get session")
        .into_inner()
        .revocation_user_op_hash;
    assert!(
        text.starts_with(&format!("{} is now revoking.", second.name)),
        "{text}"
    );
    assert!(text.contains(&format!("\n    {second_hash}\n")), "{text}");
    assert!(text.contains(&bob.address().to_string()), "{text}");
    let revoking = json(&daemon, &["session", "list", "--status", "revoking"]).await;
    assert_eq!(
        names(&revoking),
        [second.name.as_str(), first.name.as_str()]
    );

    // Errors: unknown and malformed ids, the token, and the command line.
    let unknown_session = "ses_01JAAAAAAAAAAAAAAAAAAAAAAA";
    let unknown_intent = "transactionIntents/int_01JAAAAAAAAAAAAAAAAAAAAAAA";
    for args in [
        &["session", "show", unknown_session] as &[&str],
        &["session", "revoke", unknown_session],
        &["intent", "show", unknown_intent],
        &["intent", "watch", unknown_intent],
    ] {
        fails(&daemon, args, Token::Right, 1, "NOT_FOUND").await;
    }
    for args in [
        &["session", "show", "ses_bogus"] as &[&str],
        &["intent", "show", "int_bogus"],
        &["intent", "watch", "int_bogus"],
        &["intent", "list", "--session", "ses_bogus"],
    ] {
        fails(&daemon, args, Token::Right, 1, "INVALID_ARGUMENT").await;
    }
    let wrong = "not-the-admin-token-0123456789";
    for args in [
        &["session", "list"] as &[&str],
        &["intent", "show", &minted.id],
        &["intent", "watch", &minted.id],
    ] {
        fails(&daemon, args, Token::Wrong(wrong), 1, "UNAUTHENTICATED").await;
        fails(&daemon, args, Token::Missing, 1, "LATCHKEY_ADMIN_TOKEN").await;
    }
    fails(
        &daemon,
        &["session", "list", "--status", "alive"],
        Token::Right,
        2,
        "alive",
    )
    .await;
    fails(
        &daemon,
        &["intent", "list", "--status", "done"],
        Token::Right,
        2,
        "done",
    )
    .await;
    fails(
        &daemon,
        &["session", "list", "--account", "0x1234"],
        Token::Right,
        2,
        "0x1234",
    )
    .await;
}
