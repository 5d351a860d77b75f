//! Who gets in, and what they see: API keys on every call, their scopes, their tenant's
//! walls, their request rate, and the keys' own life (created, listed, revoked), all over
//! the real socket against a real daemon. Every refusal leaves the store as it was.

use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use latchkey::api::proto::{
    self, admin_service_client::AdminServiceClient, policy_rule::Rule as ProtoRule,
    session_service_client::SessionServiceClient,
};
use proto::ApiKeyScope::{Admin as ADMIN, Read as READ, Write as WRITE};
use tonic::{Code, Request};

use crate::{
    daemon::{
        ADMIN_TOKEN, Clients, TEST_TENANT, TestDaemon, account_address, authed, create_api_key,
        mint_interaction, mint_session_request, refused,
    },
    harness::TestChain,
};

/// A policy that sponsors every account function and call, for `clients`' tenant.
async fn open_policy(clients: &mut Clients, name: &str) -> proto::Policy {
    clients
        .policies
        .create_policy(proto::CreatePolicyRequest {
            display_name: name.to_owned(),
            chain_id: 0,
            strategy: proto::SponsorStrategy::PayForUser as i32,
            rules: vec![
                proto::PolicyRule {
                    rule: Some(ProtoRule::AccountFunctions(proto::AccountFunctionsRule {
                        register_session: true,
                        revoke_session: true,
                        deploy_account: true,
                    })),
                },
                proto::PolicyRule {
                    rule: Some(ProtoRule::ContractFunctions(proto::ContractFunctionsRule {
                        functions: vec![proto::ContractFunction {
                            contract: "*".into(),
                            function: "*".into(),
                        }],
                    })),
                },
            ],
        })
        .await
        .expect("create policy")
        .into_inner()
}

/// The message of a NOT_FOUND with the id it names taken out, to compare the refusal of
/// another tenant's record with that of one that never existed.
fn shape(message: &str, id: &str) -> String {
    message.replace(id, "<id>")
}

#[tokio::test]
async fn every_call_needs_a_live_key_with_the_right_scope() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let admin_addr = daemon.admin_addr.expect("admin served");
    let owner = PrivateKeySigner::random();
    let session = daemon.active_held_session(&chain, &owner, 5).await;
    let get = || proto::GetSessionRequest {
        name: session.name.clone(),
    };

    // Credentials that are missing, malformed, unknown or not for this API.
    let raw = SessionServiceClient::new(daemon.channel.clone());
    let issued = create_api_key(admin_addr, TEST_TENANT, &[READ]).await;
    let (prefix, secret) = issued.rsplit_once('_').expect("lk_<ulid>_<secret>");
    let wrong_secret = format!("{prefix}_{}", "0".repeat(secret.len()));
    let unknown_id = format!("lk_01ARZ3NDEKTSV4RRFFQ69G5FAV_{secret}");
    for (what, header, says) in [
        ("no authorization header", None, "missing"),
        (
            "a bare key without Bearer",
            Some(issued.clone()),
            "expected `Bearer",
        ),
        (
            "Basic credentials",
            Some("Basic dXNlcjpwYXNz".to_owned()),
            "expected `Bearer",
        ),
        (
            "Bearer and nothing",
            Some("Bearer ".to_owned()),
            "not an API key",
        ),
        (
            "the admin token",
            Some(format!("Bearer {ADMIN_TOKEN}")),
            "not an API key",
        ),
        (
            "a key with a wrong secret",
            Some(format!("Bearer {wrong_secret}")),
            "unknown API key",
        ),
        (
            "a key id that was never issued",
            Some(format!("Bearer {unknown_id}")),
            "unknown API key",
        ),
    ] {
        let mut request = Request::new(get());
        if let Some(header) = header {
            request
                .metadata_mut()
                .insert("authorization", header.parse().expect("ascii"));
        }
        let mut client = raw.clone();
        refused(
            &daemon,
            what,
            client.get_session(request),
            Code::Unauthenticated,
            says,
        )
        .await;
    }
    let mut reader = daemon.clients_with(&issued);
    let seen = reader
        .sessions
        .get_session(get())
        .await
        .expect("a READ key reads")
        .into_inner();
    assert_eq!(seen.name, session.name);

    // Scopes: READ cannot write, WRITE cannot read, neither reaches the admin service, and
    // ADMIN alone does not open the application API.
    refused(
        &daemon,
        "READ creates a session",
        reader
            .sessions
            .create_session(mint_session_request(&chain, owner.address(), 1).await),
        Code::PermissionDenied,
        "needs the WRITE scope",
    )
    .await;
    refused(
        &daemon,
        "READ creates an intent",
        reader
            .intents
            .create_transaction_intent(proto::CreateTransactionIntentRequest {
                session: session.name.clone(),
                interactions: vec![mint_interaction(
                    &chain,
                    &account_address(&session.account).to_string(),
                    1,
                    1,
                )],
                idempotency_key: String::new(),
                policy: String::new(),
            }),
        Code::PermissionDenied,
        "needs the WRITE scope",
    )
    .await;
    refused(
        &daemon,
        "READ revokes a session",
        reader.sessions.revoke_session(proto::RevokeSessionRequest {
            name: session.name.clone(),
        }),
        Code::PermissionDenied,
        "needs the WRITE scope",
    )
    .await;
    let writer_key = create_api_key(admin_addr, TEST_TENANT, &[WRITE]).await;
    let mut writer = daemon.clients_with(&writer_key);
    refused(
        &daemon,
        "WRITE lists sessions",
        writer
            .sessions
            .list_sessions(proto::ListSessionsRequest::default()),
        Code::PermissionDenied,
        "needs the READ scope",
    )
    .await;
    let admin_channel = tonic::transport::Channel::from_shared(format!("http://{admin_addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    for (what, key) in [("READ", &issued), ("WRITE", &writer_key)] {
        let mut admin = AdminServiceClient::new(authed(admin_channel.clone(), key));
        refused(
            &daemon,
            &format!("{what} on the admin service"),
            admin.pause_relay(proto::PauseRelayRequest {
                reason: "not yours".into(),
            }),
            Code::PermissionDenied,
            "needs the ADMIN scope",
        )
        .await;
    }
    let operator_key = create_api_key(admin_addr, "ops", &[ADMIN]).await;
    let mut operator = AdminServiceClient::new(authed(admin_channel.clone(), &operator_key));
    let status = operator
        .get_status(proto::GetStatusRequest {})
        .await
        .expect("an ADMIN key reads the status")
        .into_inner();
    assert_eq!(status.chain_id, chain.chain.chain_id());
    let mut operator_on_api = daemon.clients_with(&operator_key);
    refused(
        &daemon,
        "ADMIN alone on the application API",
        operator_on_api.sessions.get_session(get()),
        Code::PermissionDenied,
        "needs the READ scope",
    )
    .await;

    // An ADMIN key manages keys: it revokes the reader, which is shut out at once, while
    // the writer's key still works.
    let listed = operator
        .list_api_keys(proto::ListApiKeysRequest {
            tenant: TEST_TENANT.into(),
        })
        .await
        .expect("list")
        .into_inner()
        .api_keys;
    assert!(listed.iter().all(|key| key.tenant == TEST_TENANT));
    let reader_id = issued
        .strip_prefix("lk_")
        .and_then(|rest| rest.split_once('_'))
        .map(|(ulid, _)| format!("key_{ulid}"))
        .expect("an id");
    assert!(listed.iter().any(|key| key.id == reader_id));
    let revoked = operator
        .revoke_api_key(proto::RevokeApiKeyRequest {
            name: format!("apiKeys/{reader_id}"),
        })
        .await
        .expect("revoke")
        .into_inner();
    assert!(revoked.revoke_time.is_some());
    refused(
        &daemon,
        "a revoked key",
        reader.sessions.get_session(get()),
        Code::Unauthenticated,
        "was revoked",
    )
    .await;
    refused(
        &daemon,
        "revoking a key that does not exist",
        operator.revoke_api_key(proto::RevokeApiKeyRequest {
            name: "apiKeys/key_01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
        }),
        Code::NotFound,
        "apiKeys/key_01ARZ3NDEKTSV4RRFFQ69G5FAV",
    )
    .await;
    for (what, request, says) in [
        (
            "a key with no scope",
            proto::CreateApiKeyRequest {
                tenant: "a".into(),
                scopes: vec![],
                display_name: String::new(),
                client_access: 0,
            },
            "scopes",
        ),
        (
            "a key of tenant `Studio A`",
            proto::CreateApiKeyRequest {
                tenant: "Studio A".into(),
                scopes: vec![READ.into()],
                display_name: String::new(),
                client_access: 0,
            },
            "tenant",
        ),
        (
            "a key with scope 7",
            proto::CreateApiKeyRequest {
                tenant: "a".into(),
                scopes: vec![7],
                display_name: String::new(),
                client_access: 0,
            },
            "scopes[0]",
        ),
    ] {
        refused(
            &daemon,
            what,
            operator.create_api_key(request),
            Code::InvalidArgument,
            says,
        )
        .await;
    }
    writer
        .intents
        .create_transaction_intent(proto::CreateTransactionIntentRequest {
            session: session.name.clone(),
            interactions: vec![mint_interaction(
                &chain,
                &account_address(&session.account).to_string(),
                2,
                1,
            )],
            idempotency_key: String::new(),
            policy: String::new(),
        })
        .await
        .expect("the WRITE key still works");

    // The store holds a hash of each secret, never the key: not in any file of the sled
    // directory, as text or as bytes.
    daemon.store.flush().await.expect("flush");
    let needles: Vec<Vec<u8>> = [&issued, &writer_key, &operator_key]
        .iter()
        .flat_map(|key| {
            let secret = key.rsplit_once('_').expect("secret").1;
            [
                key.as_bytes().to_vec(),
                secret.as_bytes().to_vec(),
                alloy::hex::decode(secret).expect("hex"),
            ]
        })
        .collect();
    let mut files = 0;
    for entry in walk(&daemon.data_dir) {
        let bytes = std::fs::read(&entry).expect("read a store file");
        files += 1;
        for needle in &needles {
            assert!(
                !bytes
                    .windows(needle.len())
                    .any(|window| window == needle.as_slice()),
                "{} holds an API key secret",
                entry.display()
            );
        }
    }
    assert!(files > 0, "the store has files");
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn a_tenant_never_sees_nor_touches_another_tenants_records() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let admin_addr = daemon.admin_addr.expect("admin served");

    // Studio A (the test tenant): a policy, an active session under it, an intent made with
    // an idempotency key, and a session still waiting for its owner.
    let policy = open_policy(&mut daemon.api, "studio a").await;
    let owner = PrivateKeySigner::random();
    let mut request = mint_session_request(&chain, owner.address(), 5).await;
    request.policy = policy.name.clone();
    let session = daemon
        .sessions
        .create_session(request)
        .await
        .expect("create")
        .into_inner();
    let session = daemon.sign_and_activate(&owner, session).await;
    assert_eq!(session.tenant, TEST_TENANT);
    let account = account_address(&session.account).to_string();
    let mint = |id: u64, key: &str| proto::CreateTransactionIntentRequest {
        session: session.name.clone(),
        interactions: vec![mint_interaction(&chain, &account, id, 1)],
        idempotency_key: key.to_owned(),
        policy: String::new(),
    };
    let intent = daemon
        .intents
        .create_transaction_intent(mint(1, "first"))
        .await
        .expect("create intent")
        .into_inner();
    let intent = daemon.wait_final(&intent.name).await;
    assert_eq!(intent.tenant, TEST_TENANT);
    let pending_owner = PrivateKeySigner::random();
    let pending = daemon
        .sessions
        .create_session(mint_session_request(&chain, pending_owner.address(), 1).await)
        .await
        .expect("create pending")
        .into_inner();

    // Studio B, with every scope the application API has.
    let b_key = create_api_key(admin_addr, "studio-b", &[READ, WRITE]).await;
    let mut b = daemon.clients_with(&b_key);

    // Named records of A are not found for B, in the very words used for ids that never
    // existed; nothing is written.
    let missing_session = "sessions/ses_01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let never = b
        .sessions
        .get_session(proto::GetSessionRequest {
            name: missing_session.into(),
        })
        .await
        .expect_err("no such session");
    let hidden = b
        .sessions
        .get_session(proto::GetSessionRequest {
            name: session.name.clone(),
        })
        .await
        .expect_err("A's session is hidden from B");
    assert_eq!(hidden.code(), Code::NotFound);
    assert_eq!(
        shape(
            hidden.message(),
            session.name.trim_start_matches("sessions/")
        ),
        shape(
            never.message(),
            missing_session.trim_start_matches("sessions/")
        ),
        "B cannot tell A's session from none"
    );
    let intent_id = intent.name.trim_start_matches("transactionIntents/");
    // A well-formed signature, so the refusal is about whose record it is.
    let signature = latchkey::chain::signature::sign_personal(
        &pending_owner,
        alloy::primitives::B256::repeat_byte(1),
    )
    .expect("sign")
    .to_string();
    refused(
        &daemon,
        "B gets A's intent",
        b.intents
            .get_transaction_intent(proto::GetTransactionIntentRequest {
                name: intent.name.clone(),
            }),
        Code::NotFound,
        intent_id,
    )
    .await;
    refused(
        &daemon,
        "B watches A's intent",
        b.intents
            .watch_transaction_intent(proto::WatchTransactionIntentRequest {
                name: intent.name.clone(),
            }),
        Code::NotFound,
        intent_id,
    )
    .await;
    refused(
        &daemon,
        "B revokes A's session",
        b.sessions.revoke_session(proto::RevokeSessionRequest {
            name: session.name.clone(),
        }),
        Code::NotFound,
        "not found",
    )
    .await;
    refused(
        &daemon,
        "B signs A's pending session",
        b.sessions
            .submit_session_signature(proto::SubmitSessionSignatureRequest {
                name: pending.name.clone(),
                signature: signature.clone(),
                ..Default::default()
            }),
        Code::NotFound,
        "not found",
    )
    .await;
    refused(
        &daemon,
        "B signs A's intent",
        b.intents
            .submit_intent_signature(proto::SubmitIntentSignatureRequest {
                name: intent.name.clone(),
                signature,
                ..Default::default()
            }),
        Code::NotFound,
        "not found",
    )
    .await;
    refused(
        &daemon,
        "B mints through A's session",
        b.intents.create_transaction_intent(mint(2, "")),
        Code::NotFound,
        "not found",
    )
    .await;
    refused(
        &daemon,
        "B replays A's idempotency key",
        b.intents.create_transaction_intent(mint(1, "first")),
        Code::NotFound,
        "not found",
    )
    .await;
    refused(
        &daemon,
        "B gets A's policy",
        b.policies.get_policy(proto::GetPolicyRequest {
            name: policy.name.clone(),
        }),
        Code::NotFound,
        "not found",
    )
    .await;
    refused(
        &daemon,
        "B disables A's policy",
        b.policies.disable_policy(proto::DisablePolicyRequest {
            name: policy.name.clone(),
        }),
        Code::NotFound,
        "not found",
    )
    .await;
    let mut sponsored = mint_session_request(&chain, PrivateKeySigner::random().address(), 1).await;
    sponsored.policy = policy.name.clone();
    refused(
        &daemon,
        "B's session spends A's policy",
        b.sessions.create_session(sponsored),
        Code::NotFound,
        "not found",
    )
    .await;

    // Lists show B nothing of A's, whatever the filter.
    let sessions = b
        .sessions
        .list_sessions(proto::ListSessionsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(sessions.sessions.is_empty(), "{sessions:?}");
    let by_account = b
        .sessions
        .list_sessions(proto::ListSessionsRequest {
            account: session.account.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(by_account.sessions.is_empty());
    let intents = b
        .intents
        .list_transaction_intents(proto::ListTransactionIntentsRequest {
            session: session.name.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(intents.transaction_intents.is_empty());
    let everything = b
        .intents
        .list_transaction_intents(proto::ListTransactionIntentsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(everything.transaction_intents.is_empty());
    let policies = b
        .policies
        .list_policies(proto::ListPoliciesRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(policies.policies.is_empty());
    // The account's chain facts are public, but not that A knows its salt.
    let seen_by_b = b
        .accounts
        .get_account(proto::GetAccountRequest {
            name: session.account.clone(),
        })
        .await
        .expect("get account")
        .into_inner();
    assert!(seen_by_b.deployed);
    assert_eq!(seen_by_b.salt, "", "B learns nothing from A's sessions");
    let seen_by_a = daemon
        .accounts
        .get_account(proto::GetAccountRequest {
            name: session.account.clone(),
        })
        .await
        .expect("get account")
        .into_inner();
    assert_eq!(seen_by_a.salt, "0");

    // B works in its own tenant on the very same account: a session of its own, which A
    // does not see either.
    let b_session = b
        .sessions
        .create_session(mint_session_request(&chain, owner.address(), 1).await)
        .await
        .expect("B creates a session on the same account")
        .into_inner();
    assert_eq!(b_session.tenant, "studio-b");
    assert_eq!(b_session.account, session.account);
    let mut a_sessions_client = daemon.sessions.clone();
    refused(
        &daemon,
        "A gets B's session",
        a_sessions_client.get_session(proto::GetSessionRequest {
            name: b_session.name.clone(),
        }),
        Code::NotFound,
        "not found",
    )
    .await;
    let a_sessions = daemon
        .sessions
        .list_sessions(proto::ListSessionsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(a_sessions.sessions.len(), 2, "A's two sessions, not B's");

    // The operator sees every tenant.
    let mut admin = crate::daemon::admin_client(admin_addr).await;
    let all = admin
        .list_sessions(proto::ListSessionsRequest::default())
        .await
        .expect("admin lists")
        .into_inner();
    let mut tenants: Vec<&str> = all
        .sessions
        .iter()
        .map(|session| session.tenant.as_str())
        .collect();
    tenants.sort_unstable();
    assert_eq!(tenants, ["studio-b", "test", "test"]);

    // A's own work goes on.
    let next = daemon
        .intents
        .create_transaction_intent(mint(3, ""))
        .await
        .expect("A mints")
        .into_inner();
    let next = daemon.wait_final(&next.name).await;
    assert_eq!(
        next.status,
        proto::TransactionIntentStatus::Confirmed as i32
    );
}

#[tokio::test]
async fn each_key_has_its_own_request_rate() {
    let chain = TestChain::start().await;
    let daemon = TestDaemon::start_with(&chain, |config| {
        config.api.rate_limit_per_second = 5;
        config.api.rate_limit_burst = 5;
    })
    .await;
    let admin_addr = daemon.admin_addr.expect("admin served");
    let busy_key = create_api_key(admin_addr, TEST_TENANT, &[READ]).await;
    let quiet_key = create_api_key(admin_addr, TEST_TENANT, &[READ]).await;
    let list = || proto::ListSessionsRequest::default();

    // The burst, then refusals; calls a second apart would all pass, so the count is
    // about the bucket, not the machine's speed.
    let mut busy = daemon.clients_with(&busy_key);
    let mut passed = 0;
    let mut refusal = None;
    for _ in 0..20 {
        match busy.sessions.list_sessions(list()).await {
            Ok(_) => passed += 1,
            Err(status) => {
                refusal = Some(status);
                break;
            }
        }
    }
    let refusal = refusal.expect("the key ran out");
    assert!(
        (5..=6).contains(&passed),
        "{passed} calls passed before the refusal"
    );
    assert_eq!(refusal.code(), Code::ResourceExhausted, "{refusal:?}");
    assert!(
        refusal.message().contains("api.rate_limit_per_second"),
        "{refusal:?}"
    );
    assert!(refusal.message().contains("retry in"), "{refusal:?}");
    // A client branches on the details, not the text: the reason, and when to retry.
    let info = tonic_types::StatusExt::get_details_error_info(&refusal).expect("ErrorInfo");
    assert_eq!(info.reason, "RATE_LIMITED");
    assert_eq!(info.metadata["limit"], "api.rate_limit_per_second");
    let retry = tonic_types::StatusExt::get_details_retry_info(&refusal)
        .and_then(|retry| retry.retry_delay)
        .expect("RetryInfo");
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_millis(200),
        "a token comes back every 200 ms at 5/s: {retry:?}"
    );
    let before = daemon.store.content_digest().await.expect("digest");
    let again = busy
        .sessions
        .list_sessions(list())
        .await
        .expect_err("still out");
    assert_eq!(again.code(), Code::ResourceExhausted);
    assert_eq!(daemon.store.content_digest().await.expect("digest"), before);

    // Another key of the same tenant is not charged for it.
    let mut quiet = daemon.clients_with(&quiet_key);
    quiet
        .sessions
        .list_sessions(list())
        .await
        .expect("another key has its own rate");

    // The bucket refills at 5 a second.
    tokio::time::sleep(Duration::from_millis(400)).await;
    busy.sessions.list_sessions(list()).await.expect("refilled");
}
