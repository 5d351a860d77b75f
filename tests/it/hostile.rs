//! Hostile requests over the real socket: malformed, oversized, mismatched and forged input
//! to every service gets exactly the expected status code, a message naming the field, and
//! leaves the store as it was; the daemon keeps serving afterwards.

use std::{
    collections::{BTreeMap, BTreeSet},
    future::Future,
    pin::Pin,
};

use alloy::{
    primitives::{B256, U256},
    signers::local::PrivateKeySigner,
};
use latchkey::{
    api::{
        ERROR_DOMAIN, code_name,
        proto::{
            self, admin_service_client::AdminServiceClient, policy_rule::Rule,
            policy_service_client::PolicyServiceClient,
            session_service_client::SessionServiceClient,
            transaction_intent_service_client::TransactionIntentServiceClient,
        },
    },
    chain::signature::sign_personal,
};
use tonic::{Code, Request, Status, transport::Channel};
use tonic_types::StatusExt;

use crate::{
    daemon::{
        ADMIN_TOKEN, TEST_TENANT, TestDaemon, account_address, authed, create_api_key,
        mint_interaction, mint_session_request, next_action_hash,
    },
    harness::TestChain,
};

type Call = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

/// One row of the table: what is sent, the call, the code it must get, and a text the
/// message must contain (the field's name, where there is one).
struct Case {
    what: String,
    call: Call,
    code: Code,
    says: &'static str,
}

/// The table under construction.
#[derive(Default)]
struct Table(Vec<Case>);

impl Table {
    fn add<T: Send + 'static>(
        &mut self,
        what: impl Into<String>,
        code: Code,
        says: &'static str,
        call: impl Future<Output = Result<tonic::Response<T>, Status>> + Send + 'static,
    ) {
        self.0.push(Case {
            what: what.into(),
            call: Box::pin(async move { call.await.map(|_| ()) }),
            code,
            says,
        });
    }
}

/// The ErrorInfo reason of `status`, if it carries one.
fn error_reason(status: &Status) -> Option<String> {
    status.get_details_error_info().map(|info| info.reason)
}

/// What is wrong with `status`'s machine-readable details, if anything: every refusal of
/// latchkey's carries an ErrorInfo in its domain, with a reason of its code's family and
/// (for bad input) the field in the metadata and in a BadRequest violation. Only tonic's own
/// OUT_OF_RANGE for an oversize message has none.
fn reason_problem(status: &Status) -> Option<String> {
    if status.code() == Code::OutOfRange {
        return None;
    }
    let Some(info) = status.get_details_error_info() else {
        return Some("no ErrorInfo".into());
    };
    if info.domain != ERROR_DOMAIN {
        return Some(format!("ErrorInfo domain {:?}", info.domain));
    }
    let reason = info.reason.as_str();
    let fits = match status.code() {
        Code::InvalidArgument => ["INVALID_FIELD", "MALFORMED_MESSAGE"].contains(&reason),
        Code::NotFound => reason.ends_with("_NOT_FOUND"),
        Code::Unauthenticated => reason.starts_with("CREDENTIALS_") || reason == "API_KEY_REVOKED",
        Code::PermissionDenied => reason == "SCOPE_MISSING",
        Code::ResourceExhausted => reason.ends_with("_LIMIT_REACHED") || reason == "RATE_LIMITED",
        _ => !reason.is_empty() && reason.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
    };
    if !fits {
        return Some(format!("reason {reason} does not fit {:?}", status.code()));
    }
    if reason == "INVALID_FIELD" {
        let field = info.metadata.get("field").cloned().unwrap_or_default();
        let violations = status
            .get_details_bad_request()
            .map(|bad| bad.field_violations);
        let named = violations.is_some_and(|all| all.iter().any(|v| v.field == field));
        if field.is_empty() || !named || !status.message().starts_with(&format!("{field}: ")) {
            return Some(format!(
                "field {field:?} not named in the metadata, a BadRequest and the message"
            ));
        }
    }
    None
}

/// `request` with `header` as its authorization header, if any.
fn admin<T>(request: T, header: Option<String>) -> Request<T> {
    let mut request = Request::new(request);
    if let Some(header) = header {
        request
            .metadata_mut()
            .insert("authorization", header.parse().expect("ascii"));
    }
    request
}

/// The admin token's authorization header.
fn bearer() -> Option<String> {
    Some(format!("Bearer {ADMIN_TOKEN}"))
}

fn function_call(signature: &str, args: &[&str]) -> Option<proto::interaction::Call> {
    Some(proto::interaction::Call::FunctionCall(
        proto::FunctionCall {
            signature: signature.to_owned(),
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        },
    ))
}

fn policy_request(rule: Rule) -> proto::CreatePolicyRequest {
    proto::CreatePolicyRequest {
        display_name: "hostile".into(),
        chain_id: 0,
        strategy: proto::SponsorStrategy::PayForUser as i32,
        rules: vec![proto::PolicyRule { rule: Some(rule) }],
    }
}

#[tokio::test]
async fn hostile_requests_get_precise_refusals_and_write_nothing() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let owner = PrivateKeySigner::random();

    // State to attack: an active held session with a confirmed intent, and a second session
    // still waiting for its owner's signature.
    let session = daemon.active_held_session(&chain, &owner, 5).await;
    let account = account_address(&session.account).to_string();
    let intent = daemon.create_mint(&chain, &session, 1).await;
    let intent = daemon.wait_final(&intent.name).await;
    assert_eq!(
        intent.status,
        proto::TransactionIntentStatus::Confirmed as i32
    );
    let pending_owner = PrivateKeySigner::random();
    let pending = daemon
        .sessions
        .create_session(mint_session_request(&chain, pending_owner.address(), 1).await)
        .await
        .expect("create a pending session")
        .into_inner();
    let pending_hash = next_action_hash(pending.next_action.as_ref());

    // Signatures: a stranger's, and the owner's over another hash with s flipped high.
    let stranger = sign_personal(&PrivateKeySigner::random(), pending_hash).expect("sign");
    let other = sign_personal(&pending_owner, B256::repeat_byte(7)).expect("sign");
    let n = U256::from_str_radix(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        16,
    )
    .expect("secp256k1 order");
    let other = alloy::primitives::Signature::from_raw(&other).expect("65 bytes");
    let high_s = alloy::primitives::Signature::new(other.r(), n - other.s(), !other.v());
    let sixty_five = format!("0x{}", "ab".repeat(65));

    let admin_addr = daemon.admin_addr.expect("admin served");
    let admin_channel = Channel::from_shared(format!("http://{admin_addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect to the admin service");

    let accounts = daemon.accounts.clone();
    let sessions = daemon.sessions.clone();
    let intents = daemon.intents.clone();
    let policies = daemon.policies.clone();
    let admin_client = AdminServiceClient::new(admin_channel);
    let mint = mint_interaction(&chain, &account, 1, 1);
    let base_session = mint_session_request(&chain, owner.address(), 1).await;
    let intent_request =
        |interactions: Vec<proto::Interaction>| proto::CreateTransactionIntentRequest {
            session: session.name.clone(),
            interactions,
            idempotency_key: String::new(),
            policy: String::new(),
        };
    let with_call = |call: Option<proto::interaction::Call>| proto::Interaction {
        call,
        ..mint.clone()
    };
    // 2^256: one more than uint256 holds.
    let over_uint256 =
        "115792089237316195423570985008687907853269984665640564039457584007913129639936";
    let unknown_session = "sessions/ses_01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let unknown_intent = "transactionIntents/int_01ARZ3NDEKTSV4RRFFQ69G5FAV";

    let mut t = Table::default();
    macro_rules! call {
        ($client:ident . $method:ident ($request:expr)) => {{
            let mut client = $client.clone();
            let request = $request;
            async move { client.$method(request).await }
        }};
    }

    // --- AccountService ---------------------------------------------------------------
    let owner_as = |owner: &str| proto::ComputeAccountAddressRequest {
        owner: owner.to_owned(),
        salt: "0".into(),
        ..Default::default()
    };
    t.add(
        "ComputeAccountAddress: empty owner",
        Code::InvalidArgument,
        "owner",
        call!(accounts.compute_account_address(owner_as(""))),
    );
    t.add(
        "ComputeAccountAddress: owner 0x0, which can never sign",
        Code::InvalidArgument,
        "owner: the zero address",
        call!(accounts.compute_account_address(owner_as(&format!("0x{}", "0".repeat(40))))),
    );
    t.add(
        "ComputeAccountAddress: owner of 39 hex digits",
        Code::InvalidArgument,
        "owner",
        call!(accounts.compute_account_address(owner_as(&format!("0x{}", "a".repeat(39))))),
    );
    t.add(
        "ComputeAccountAddress: owner of 100 000 hex digits",
        Code::InvalidArgument,
        "owner",
        call!(accounts.compute_account_address(owner_as(&format!("0x{}", "a".repeat(100_000))))),
    );
    t.add(
        "ComputeAccountAddress: owner in Arabic-Indic digits",
        Code::InvalidArgument,
        "owner",
        call!(accounts.compute_account_address(owner_as(&format!("0x{}", "٣".repeat(40))))),
    );
    t.add(
        "ComputeAccountAddress: owner with a wrong EIP-55 checksum",
        Code::InvalidArgument,
        "owner",
        call!(
            accounts
                .compute_account_address(owner_as("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"))
        ),
    );
    t.add(
        "ComputeAccountAddress: salt 2^256",
        Code::InvalidArgument,
        "salt",
        call!(
            accounts.compute_account_address(proto::ComputeAccountAddressRequest {
                owner: owner.address().to_string(),
                salt: over_uint256.into(),
                ..Default::default()
            })
        ),
    );
    t.add(
        "ComputeAccountAddress: salt -1",
        Code::InvalidArgument,
        "salt",
        call!(
            accounts.compute_account_address(proto::ComputeAccountAddressRequest {
                owner: owner.address().to_string(),
                salt: "-1".into(),
                ..Default::default()
            })
        ),
    );
    t.add(
        "GetAccount: a session name",
        Code::InvalidArgument,
        "name",
        call!(accounts.get_account(proto::GetAccountRequest {
            name: session.name.clone()
        })),
    );
    t.add(
        "GetAccount: NUL after the address",
        Code::InvalidArgument,
        "name",
        call!(accounts.get_account(proto::GetAccountRequest {
            name: format!("{}\0", session.account)
        })),
    );

    // --- SessionService ---------------------------------------------------------------
    t.add(
        "CreateSession: owner 0x0, which no signature can ever complete",
        Code::InvalidArgument,
        "owner: the zero address",
        call!(sessions.create_session(proto::CreateSessionRequest {
            owner: format!("0x{}", "0".repeat(40)),
            ..base_session.clone()
        })),
    );
    t.add(
        "CreateSession: custody = 99",
        Code::InvalidArgument,
        "custody",
        call!(sessions.create_session(proto::CreateSessionRequest {
            custody: 99,
            ..base_session.clone()
        })),
    );
    t.add(
        "CreateSession: valid_after -1",
        Code::InvalidArgument,
        "valid_after",
        call!(sessions.create_session(proto::CreateSessionRequest {
            valid_after: -1,
            ..base_session.clone()
        })),
    );
    t.add(
        "CreateSession: valid_until i64::MAX",
        Code::InvalidArgument,
        "valid_until",
        call!(sessions.create_session(proto::CreateSessionRequest {
            valid_until: i64::MAX,
            ..base_session.clone()
        })),
    );
    t.add(
        "CreateSession: valid_until before valid_after",
        Code::InvalidArgument,
        "valid_after",
        call!(sessions.create_session(proto::CreateSessionRequest {
            valid_after: base_session.valid_until + 10,
            ..base_session.clone()
        })),
    );
    t.add(
        "CreateSession: valid_until in the past",
        Code::InvalidArgument,
        "valid_until",
        call!(sessions.create_session(proto::CreateSessionRequest {
            valid_after: 0,
            valid_until: 1,
            ..base_session.clone()
        })),
    );
    t.add(
        "CreateSession: key_address given for a held key",
        Code::InvalidArgument,
        "key_address",
        call!(sessions.create_session(proto::CreateSessionRequest {
            key_address: owner.address().to_string(),
            ..base_session.clone()
        })),
    );
    t.add(
        "CreateSession: external key_address of control characters",
        Code::InvalidArgument,
        "key_address",
        call!(sessions.create_session(proto::CreateSessionRequest {
            custody: proto::KeyCustody::External as i32,
            key_address: "0x\u{7}\u{1b}[2J\r\n".into(),
            ..base_session.clone()
        })),
    );
    t.add(
        "CreateSession: no permissions",
        Code::InvalidArgument,
        "permissions",
        call!(sessions.create_session(proto::CreateSessionRequest {
            permissions: None,
            ..base_session.clone()
        })),
    );
    let mut permissions = base_session.permissions.clone().expect("permissions");
    permissions.calls = vec![permissions.calls[0].clone(); 65];
    t.add(
        "CreateSession: 65 allowlist entries",
        Code::InvalidArgument,
        "permissions.calls",
        call!(sessions.create_session(proto::CreateSessionRequest {
            permissions: Some(permissions),
            ..base_session.clone()
        })),
    );
    let mut permissions = base_session.permissions.clone().expect("permissions");
    permissions.value_budget = U256::MAX.to_string();
    t.add(
        "CreateSession: value_budget over uint128",
        Code::InvalidArgument,
        "permissions.value_budget",
        call!(sessions.create_session(proto::CreateSessionRequest {
            permissions: Some(permissions),
            ..base_session.clone()
        })),
    );
    let mut permissions = base_session.permissions.clone().expect("permissions");
    permissions.calls[0].function = format!("f({}uint256{})", "(".repeat(400), ")".repeat(400));
    t.add(
        "CreateSession: allowlist function nested 400 deep",
        Code::InvalidArgument,
        "permissions.calls[0].function",
        call!(sessions.create_session(proto::CreateSessionRequest {
            permissions: Some(permissions),
            ..base_session.clone()
        })),
    );
    t.add(
        "CreateSession: policy with path traversal",
        Code::InvalidArgument,
        "policy",
        call!(sessions.create_session(proto::CreateSessionRequest {
            policy: "policies/../../etc/passwd".into(),
            ..base_session.clone()
        })),
    );
    t.add(
        "GetSession: path traversal",
        Code::InvalidArgument,
        "name",
        call!(sessions.get_session(proto::GetSessionRequest {
            name: "sessions/../../../etc/passwd".into()
        })),
    );
    t.add(
        "GetSession: an intent name",
        Code::InvalidArgument,
        "name",
        call!(sessions.get_session(proto::GetSessionRequest {
            name: intent.name.clone()
        })),
    );
    t.add(
        "GetSession: NUL inside the id",
        Code::InvalidArgument,
        "name",
        call!(sessions.get_session(proto::GetSessionRequest {
            name: format!("{}\0x", session.name)
        })),
    );
    t.add(
        "GetSession: unknown id",
        Code::NotFound,
        "not found",
        call!(sessions.get_session(proto::GetSessionRequest {
            name: unknown_session.into()
        })),
    );
    let list_sessions =
        |page_size: i32, page_token: &str, status: i32, account: &str| proto::ListSessionsRequest {
            page_size,
            page_token: page_token.to_owned(),
            status,
            account: account.to_owned(),
        };
    t.add(
        "ListSessions: page_size -1",
        Code::InvalidArgument,
        "page_size",
        call!(sessions.list_sessions(list_sessions(-1, "", 0, ""))),
    );
    t.add(
        "ListSessions: page_size i32::MAX",
        Code::InvalidArgument,
        "page_size",
        call!(sessions.list_sessions(list_sessions(i32::MAX, "", 0, ""))),
    );
    t.add(
        "ListSessions: forged page_token",
        Code::InvalidArgument,
        "page_token",
        call!(sessions.list_sessions(list_sessions(10, "../\0forged", 0, ""))),
    );
    t.add(
        "ListSessions: an intent id as page_token",
        Code::InvalidArgument,
        "page_token",
        call!(sessions.list_sessions(list_sessions(10, &intent.id, 0, ""))),
    );
    t.add(
        "ListSessions: status = 77",
        Code::InvalidArgument,
        "status",
        call!(sessions.list_sessions(list_sessions(10, "", 77, ""))),
    );
    t.add(
        "ListSessions: account without its prefix",
        Code::InvalidArgument,
        "account",
        call!(sessions.list_sessions(list_sessions(10, "", 0, &account))),
    );
    let submit_session = |signature: String| proto::SubmitSessionSignatureRequest {
        name: pending.name.clone(),
        signature,
        ..Default::default()
    };
    t.add(
        "SubmitSessionSignature: 64 bytes",
        Code::InvalidArgument,
        "signature",
        call!(sessions.submit_session_signature(submit_session(format!("0x{}", "ab".repeat(64))))),
    );
    t.add(
        "SubmitSessionSignature: not hex",
        Code::InvalidArgument,
        "signature",
        call!(sessions.submit_session_signature(submit_session(format!("0x{}", "zz".repeat(65))))),
    );
    t.add(
        "SubmitSessionSignature: odd number of hex digits",
        Code::InvalidArgument,
        "signature",
        call!(sessions.submit_session_signature(submit_session(format!("0x{}a", "ab".repeat(65))))),
    );
    t.add(
        "SubmitSessionSignature: a stranger's signature",
        Code::InvalidArgument,
        "signature",
        call!(sessions.submit_session_signature(submit_session(stranger.to_string()))),
    );
    t.add(
        "SubmitSessionSignature: owner's high-s signature of another hash",
        Code::InvalidArgument,
        "signature",
        call!(sessions.submit_session_signature(submit_session(high_s.to_string()))),
    );
    t.add(
        "SubmitSessionSignature: 65 bytes that are no signature",
        Code::InvalidArgument,
        "signature",
        call!(sessions.submit_session_signature(submit_session(sixty_five.clone()))),
    );
    t.add(
        "SubmitSessionSignature: to an active session",
        Code::FailedPrecondition,
        "no signature is pending",
        call!(
            sessions.submit_session_signature(proto::SubmitSessionSignatureRequest {
                name: session.name.clone(),
                signature: sixty_five.clone(),
                ..Default::default()
            })
        ),
    );
    t.add(
        "RevokeSession: a session still pending its signature",
        Code::FailedPrecondition,
        "",
        call!(sessions.revoke_session(proto::RevokeSessionRequest {
            name: pending.name.clone()
        })),
    );
    t.add(
        "RevokeSession: a policy name",
        Code::InvalidArgument,
        "name",
        call!(sessions.revoke_session(proto::RevokeSessionRequest {
            name: "policies/pol_01ARZ3NDEKTSV4RRFFQ69G5FAV".into()
        })),
    );

    // --- TransactionIntentService -----------------------------------------------------
    t.add(
        "CreateTransactionIntent: an intent name as session",
        Code::InvalidArgument,
        "session",
        call!(
            intents.create_transaction_intent(proto::CreateTransactionIntentRequest {
                session: intent.name.clone(),
                ..intent_request(vec![mint.clone()])
            })
        ),
    );
    t.add(
        "CreateTransactionIntent: no interactions",
        Code::InvalidArgument,
        "interactions",
        call!(intents.create_transaction_intent(intent_request(vec![]))),
    );
    t.add(
        "CreateTransactionIntent: 1 000 interactions",
        Code::InvalidArgument,
        "interactions",
        call!(intents.create_transaction_intent(intent_request(vec![mint.clone(); 1_000]))),
    );
    t.add(
        "CreateTransactionIntent: 10 000 interactions (over api.max_request_bytes)",
        Code::OutOfRange,
        "message length too large",
        call!(intents.create_transaction_intent(intent_request(vec![mint.clone(); 10_000]))),
    );
    t.add(
        "CreateTransactionIntent: to of 0x and 10 000 hex digits",
        Code::InvalidArgument,
        "interactions[0].to",
        call!(
            intents.create_transaction_intent(intent_request(vec![proto::Interaction {
                to: format!("0x{}", "f".repeat(10_000)),
                ..mint.clone()
            }]))
        ),
    );
    t.add(
        "CreateTransactionIntent: value 2^256",
        Code::InvalidArgument,
        "interactions[0].value",
        call!(
            intents.create_transaction_intent(intent_request(vec![proto::Interaction {
                value: over_uint256.into(),
                ..mint.clone()
            }]))
        ),
    );
    t.add(
        "CreateTransactionIntent: value -5",
        Code::InvalidArgument,
        "interactions[0].value",
        call!(
            intents.create_transaction_intent(intent_request(vec![proto::Interaction {
                value: "-5".into(),
                ..mint.clone()
            }]))
        ),
    );
    t.add(
        "CreateTransactionIntent: malformed function signature",
        Code::InvalidArgument,
        "interactions[0].function_call",
        call!(
            intents.create_transaction_intent(intent_request(vec![with_call(function_call(
                "mint(address,,uint256",
                &[]
            ))]))
        ),
    );
    t.add(
        "CreateTransactionIntent: signature nested 300 deep",
        Code::InvalidArgument,
        "interactions[0].function_call",
        call!(
            intents.create_transaction_intent(intent_request(vec![with_call(function_call(
                &format!("f(uint256{})", "[]".repeat(300)),
                &["[]"]
            ))]))
        ),
    );
    t.add(
        "CreateTransactionIntent: argument nested 100 000 deep",
        Code::InvalidArgument,
        "interactions[0].function_call",
        call!(
            intents.create_transaction_intent(intent_request(vec![with_call(function_call(
                "f(uint256[][][][])",
                &["[".repeat(100_000).as_str()]
            ))]))
        ),
    );
    t.add(
        "CreateTransactionIntent: one argument for three parameters",
        Code::InvalidArgument,
        "interactions[0].function_call",
        call!(
            intents.create_transaction_intent(intent_request(vec![with_call(function_call(
                "mint(address,uint256,uint256)",
                &[account.as_str()]
            ))]))
        ),
    );
    t.add(
        "CreateTransactionIntent: argument that does not match its type",
        Code::InvalidArgument,
        "interactions[0].function_call",
        call!(
            intents.create_transaction_intent(intent_request(vec![with_call(function_call(
                "mint(address,uint256,uint256)",
                &[&account, "1", over_uint256]
            ))]))
        ),
    );
    t.add(
        "CreateTransactionIntent: calldata of odd hex",
        Code::InvalidArgument,
        "interactions[0].calldata",
        call!(
            intents.create_transaction_intent(intent_request(vec![with_call(Some(
                proto::interaction::Call::Calldata("0xa9059cbb0".into())
            ))]))
        ),
    );
    t.add(
        "CreateTransactionIntent: neither a function call nor calldata",
        Code::InvalidArgument,
        "interactions[0]",
        call!(intents.create_transaction_intent(intent_request(vec![with_call(None)]))),
    );
    t.add(
        "CreateTransactionIntent: idempotency key with unicode",
        Code::InvalidArgument,
        "idempotency_key",
        call!(
            intents.create_transaction_intent(proto::CreateTransactionIntentRequest {
                idempotency_key: "ключ-🔑".into(),
                ..intent_request(vec![mint.clone()])
            })
        ),
    );
    t.add(
        "CreateTransactionIntent: a 5 MB idempotency key",
        Code::OutOfRange,
        "message length too large",
        call!(
            intents.create_transaction_intent(proto::CreateTransactionIntentRequest {
                idempotency_key: "k".repeat(5 * 1024 * 1024),
                ..intent_request(vec![mint.clone()])
            })
        ),
    );
    t.add(
        "CreateTransactionIntent: unknown session",
        Code::NotFound,
        "not found",
        call!(
            intents.create_transaction_intent(proto::CreateTransactionIntentRequest {
                session: unknown_session.into(),
                ..intent_request(vec![mint.clone()])
            })
        ),
    );
    t.add(
        "GetTransactionIntent: a session name",
        Code::InvalidArgument,
        "name",
        call!(
            intents.get_transaction_intent(proto::GetTransactionIntentRequest {
                name: session.name.clone()
            })
        ),
    );
    t.add(
        "GetTransactionIntent: unknown id",
        Code::NotFound,
        "not found",
        call!(
            intents.get_transaction_intent(proto::GetTransactionIntentRequest {
                name: unknown_intent.into()
            })
        ),
    );
    let list_intents = |page_size: i32, page_token: &str, status: i32, session: &str| {
        proto::ListTransactionIntentsRequest {
            page_size,
            page_token: page_token.to_owned(),
            status,
            session: session.to_owned(),
            account: String::new(),
            kind: 0,
        }
    };
    t.add(
        "ListTransactionIntents: page_size i32::MIN",
        Code::InvalidArgument,
        "page_size",
        call!(intents.list_transaction_intents(list_intents(i32::MIN, "", 0, ""))),
    );
    t.add(
        "ListTransactionIntents: status = 77",
        Code::InvalidArgument,
        "status",
        call!(intents.list_transaction_intents(list_intents(10, "", 77, ""))),
    );
    t.add(
        "ListTransactionIntents: an account name as session",
        Code::InvalidArgument,
        "session",
        call!(intents.list_transaction_intents(list_intents(10, "", 0, &session.account))),
    );
    t.add(
        "ListTransactionIntents: a session id as page_token",
        Code::InvalidArgument,
        "page_token",
        call!(intents.list_transaction_intents(list_intents(10, &session.id, 0, ""))),
    );
    t.add(
        "SubmitIntentSignature: to a confirmed intent",
        Code::FailedPrecondition,
        "",
        call!(
            intents.submit_intent_signature(proto::SubmitIntentSignatureRequest {
                name: intent.name.clone(),
                signature: sixty_five.clone(),
                ..Default::default()
            })
        ),
    );
    t.add(
        "SubmitIntentSignature: empty signature",
        Code::InvalidArgument,
        "signature",
        call!(
            intents.submit_intent_signature(proto::SubmitIntentSignatureRequest {
                name: intent.name.clone(),
                signature: "0x".into(),
                ..Default::default()
            })
        ),
    );
    t.add(
        "WatchTransactionIntent: path traversal",
        Code::InvalidArgument,
        "name",
        call!(
            intents.watch_transaction_intent(proto::WatchTransactionIntentRequest {
                name: "transactionIntents/../sessions".into()
            })
        ),
    );

    // --- PolicyService ----------------------------------------------------------------
    t.add(
        "CreatePolicy: strategy = 99",
        Code::InvalidArgument,
        "strategy",
        call!(policies.create_policy(proto::CreatePolicyRequest {
            strategy: 99,
            ..policy_request(Rule::GasPerOperation(proto::GasPerOperationRule {
                max_gas: 1
            }))
        })),
    );
    t.add(
        "CreatePolicy: operations per 0-second interval",
        Code::InvalidArgument,
        "rules[0].operations_per_interval.interval_seconds",
        call!(
            policies.create_policy(policy_request(Rule::OperationsPerInterval(
                proto::OperationsPerIntervalRule {
                    max_operations: 1,
                    interval_seconds: 0
                }
            )))
        ),
    );
    t.add(
        "CreatePolicy: gas per u64::MAX-second interval",
        Code::InvalidArgument,
        "rules[0].gas_per_interval.interval_seconds",
        call!(policies.create_policy(policy_request(Rule::GasPerInterval(
            proto::GasPerIntervalRule {
                max_gas: 1,
                interval_seconds: u64::MAX
            }
        )))),
    );
    t.add(
        "CreatePolicy: spend max_wei over uint128",
        Code::InvalidArgument,
        "rules[0].spend_per_interval.max_wei",
        call!(
            policies.create_policy(policy_request(Rule::SpendPerInterval(
                proto::SpendPerIntervalRule {
                    max_wei: U256::MAX.to_string(),
                    interval_seconds: 60
                }
            )))
        ),
    );
    t.add(
        "CreatePolicy: a rule with nothing set",
        Code::InvalidArgument,
        "rules[0]",
        call!(policies.create_policy(proto::CreatePolicyRequest {
            rules: vec![proto::PolicyRule { rule: None }],
            ..policy_request(Rule::GasPerOperation(proto::GasPerOperationRule {
                max_gas: 1
            }))
        })),
    );
    t.add(
        "CreatePolicy: contract of unicode",
        Code::InvalidArgument,
        "rules[0].contract_functions.functions[0].contract",
        call!(
            policies.create_policy(policy_request(Rule::ContractFunctions(
                proto::ContractFunctionsRule {
                    functions: vec![proto::ContractFunction {
                        contract: "0x😀😀😀😀😀😀😀😀😀😀".into(),
                        function: "*".into()
                    }]
                }
            )))
        ),
    );
    t.add(
        "CreatePolicy: display name of 10 000 characters",
        Code::InvalidArgument,
        "display_name",
        call!(policies.create_policy(proto::CreatePolicyRequest {
            display_name: "n".repeat(10_000),
            ..policy_request(Rule::GasPerOperation(proto::GasPerOperationRule {
                max_gas: 1
            }))
        })),
    );
    t.add(
        "CreatePolicy: another chain",
        Code::InvalidArgument,
        "chain_id",
        call!(policies.create_policy(proto::CreatePolicyRequest {
            chain_id: u64::MAX,
            ..policy_request(Rule::GasPerOperation(proto::GasPerOperationRule {
                max_gas: 1
            }))
        })),
    );
    t.add(
        "DisablePolicy: unknown policy",
        Code::NotFound,
        "not found",
        call!(policies.disable_policy(proto::DisablePolicyRequest {
            name: "policies/pol_01ARZ3NDEKTSV4RRFFQ69G5FAV".into()
        })),
    );
    t.add(
        "DisablePolicy: a session name",
        Code::InvalidArgument,
        "name",
        call!(policies.disable_policy(proto::DisablePolicyRequest {
            name: session.name.clone()
        })),
    );
    t.add(
        "ListPolicies: page_size -5",
        Code::InvalidArgument,
        "page_size",
        call!(policies.list_policies(proto::ListPoliciesRequest {
            page_size: -5,
            page_token: String::new()
        })),
    );
    t.add(
        "ListPolicies: forged page_token",
        Code::InvalidArgument,
        "page_token",
        call!(policies.list_policies(proto::ListPoliciesRequest {
            page_size: 10,
            page_token: "pol_\u{202e}forged".into()
        })),
    );

    // --- Credentials, scopes and tenants ----------------------------------------------
    let raw_sessions = SessionServiceClient::new(daemon.channel.clone());
    let raw_intents = TransactionIntentServiceClient::new(daemon.channel.clone());
    let raw_policies = PolicyServiceClient::new(daemon.channel.clone());
    let (key_prefix, key_secret) = daemon.api_key.rsplit_once('_').expect("a key");
    let forged = format!("Bearer {key_prefix}_{}", "0".repeat(key_secret.len()));
    let read_only = daemon
        .clients_with(&create_api_key(admin_addr, TEST_TENANT, &[proto::ApiKeyScope::Read]).await);
    let read_sessions = read_only.sessions.clone();
    let other_tenant = daemon.clients_with(
        &create_api_key(
            admin_addr,
            "studio-b",
            &[proto::ApiKeyScope::Read, proto::ApiKeyScope::Write],
        )
        .await,
    );
    let other_sessions = other_tenant.sessions.clone();
    let other_intents = other_tenant.intents.clone();
    let app_admin = AdminServiceClient::new(authed(
        Channel::from_shared(format!("http://{admin_addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect"),
        &daemon.api_key,
    ));
    t.add(
        "CreateSession: no authorization header",
        Code::Unauthenticated,
        "authorization: missing",
        call!(raw_sessions.create_session(admin(base_session.clone(), None))),
    );
    t.add(
        "CreateTransactionIntent: a key's id with a forged secret",
        Code::Unauthenticated,
        "unknown API key",
        call!(raw_intents.create_transaction_intent(admin(
            proto::CreateTransactionIntentRequest {
                session: session.name.clone(),
                interactions: vec![mint.clone()],
                idempotency_key: String::new(),
                policy: String::new(),
            },
            Some(forged.clone())
        ))),
    );
    t.add(
        "ListSessions: `Bearer` and 8 KB of junk",
        Code::Unauthenticated,
        "not an API key",
        call!(raw_sessions.list_sessions(admin(
            proto::ListSessionsRequest::default(),
            Some(format!("Bearer lk_{}", "A".repeat(8192)))
        ))),
    );
    t.add(
        "CreatePolicy: the admin token on the application API",
        Code::Unauthenticated,
        "not an API key",
        call!(raw_policies.create_policy(admin(
            policy_request(Rule::GasPerOperation(proto::GasPerOperationRule {
                max_gas: 1
            })),
            bearer()
        ))),
    );
    t.add(
        "RevokeSession: a READ-only key",
        Code::PermissionDenied,
        "needs the WRITE scope",
        call!(read_sessions.revoke_session(proto::RevokeSessionRequest {
            name: session.name.clone()
        })),
    );
    t.add(
        "GetSession: another tenant's session",
        Code::NotFound,
        "not found",
        call!(other_sessions.get_session(proto::GetSessionRequest {
            name: session.name.clone()
        })),
    );
    t.add(
        "CreateTransactionIntent: on another tenant's session",
        Code::NotFound,
        "not found",
        call!(
            other_intents.create_transaction_intent(proto::CreateTransactionIntentRequest {
                session: session.name.clone(),
                interactions: vec![mint.clone()],
                idempotency_key: String::new(),
                policy: String::new(),
            })
        ),
    );
    t.add(
        "Admin PauseRelay: a READ and WRITE key",
        Code::PermissionDenied,
        "needs the ADMIN scope",
        call!(app_admin.pause_relay(proto::PauseRelayRequest {
            reason: "takeover".into()
        })),
    );
    t.add(
        "Admin CreateApiKey: a READ and WRITE key mints itself an ADMIN key",
        Code::PermissionDenied,
        "needs the ADMIN scope",
        call!(app_admin.create_api_key(proto::CreateApiKeyRequest {
            tenant: TEST_TENANT.into(),
            scopes: vec![proto::ApiKeyScope::Admin.into()],
            display_name: String::new(),
            client_access: 0,
        })),
    );
    t.add(
        "Admin CreateApiKey: tenant `../ops`",
        Code::InvalidArgument,
        "tenant",
        call!(admin_client.create_api_key(admin(
            proto::CreateApiKeyRequest {
                tenant: "../ops".into(),
                scopes: vec![proto::ApiKeyScope::Read.into()],
                display_name: String::new(),
                client_access: 0,
            },
            bearer()
        ))),
    );
    t.add(
        "Admin CreateApiKey: scope 9",
        Code::InvalidArgument,
        "scopes[0]",
        call!(admin_client.create_api_key(admin(
            proto::CreateApiKeyRequest {
                tenant: "a".into(),
                scopes: vec![9],
                display_name: String::new(),
                client_access: 0,
            },
            bearer()
        ))),
    );
    t.add(
        "Admin CreateApiKey: a name with a terminal escape",
        Code::InvalidArgument,
        "display_name",
        call!(admin_client.create_api_key(admin(
            proto::CreateApiKeyRequest {
                tenant: "a".into(),
                scopes: vec![proto::ApiKeyScope::Read.into()],
                display_name: "\u{1b}[2J".into(),
                client_access: 0,
            },
            bearer()
        ))),
    );
    t.add(
        "Admin RevokeApiKey: a session's name",
        Code::InvalidArgument,
        "name",
        call!(admin_client.revoke_api_key(admin(
            proto::RevokeApiKeyRequest {
                name: session.name.clone()
            },
            bearer()
        ))),
    );

    // --- AdminService -----------------------------------------------------------------
    t.add(
        "Admin GetStatus: no token",
        Code::Unauthenticated,
        "authorization",
        call!(admin_client.get_status(admin(proto::GetStatusRequest {}, None))),
    );
    t.add(
        "Admin PauseRelay: wrong token",
        Code::Unauthenticated,
        "authorization",
        call!(admin_client.pause_relay(admin(
            proto::PauseRelayRequest {
                reason: "should not pause".into()
            },
            Some("Bearer not-the-admin-token".into())
        ))),
    );
    t.add(
        "Admin PauseRelay: token without Bearer",
        Code::Unauthenticated,
        "authorization",
        call!(admin_client.pause_relay(admin(
            proto::PauseRelayRequest {
                reason: "should not pause".into()
            },
            Some(ADMIN_TOKEN.into())
        ))),
    );
    t.add(
        "Admin PauseRelay: reason of 10 000 characters",
        Code::InvalidArgument,
        "reason",
        call!(admin_client.pause_relay(admin(
            proto::PauseRelayRequest {
                reason: "x".repeat(10_000)
            },
            bearer()
        ))),
    );
    t.add(
        "Admin PauseRelay: reason with a control character",
        Code::InvalidArgument,
        "reason",
        call!(admin_client.pause_relay(admin(
            proto::PauseRelayRequest {
                reason: "line\u{1b}[2Jbreak".into()
            },
            bearer()
        ))),
    );
    t.add(
        "Admin GetSession: path traversal",
        Code::InvalidArgument,
        "name",
        call!(admin_client.get_session(admin(
            proto::GetSessionRequest {
                name: "sessions/../../admin".into()
            },
            bearer()
        ))),
    );
    t.add(
        "Admin ListTransactionIntents: page_size -1",
        Code::InvalidArgument,
        "page_size",
        call!(admin_client.list_transaction_intents(admin(list_intents(-1, "", 0, ""), bearer()))),
    );
    t.add(
        "Admin RevokeSession: a session pending its signature",
        Code::FailedPrecondition,
        "",
        call!(admin_client.revoke_session(admin(
            proto::RevokeSessionRequest {
                name: pending.name.clone()
            },
            bearer()
        ))),
    );

    // Every row: the exact code, the field in the message, and not one byte written.
    let store = daemon.store.clone();
    let mut wrong = Vec::new();
    let mut reasons: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let rows = t.0.len();
    for case in t.0 {
        let before = store.content_digest().await.expect("digest");
        let pause_before = store.relay_pause().await.expect("pause");
        let result = case.call.await;
        let after = store.content_digest().await.expect("digest");
        let pause_after = store.relay_pause().await.expect("pause");
        let (code, message) = match &result {
            Ok(()) => (Code::Ok, String::new()),
            Err(status) => (status.code(), status.message().to_owned()),
        };
        let shown: String = message.chars().take(160).collect();
        let reason = result.as_ref().err().and_then(error_reason);
        eprintln!(
            "{} → {:?} → {} → {}",
            case.what,
            code,
            reason.as_deref().unwrap_or("-"),
            shown
        );
        if let Err(status) = &result
            && let Some(problem) = reason_problem(status)
        {
            wrong.push(format!("{}: {problem}", case.what));
        }
        if let Some(reason) = reason {
            reasons.entry(code_name(code)).or_default().insert(reason);
        }
        if code != case.code {
            wrong.push(format!(
                "{}: expected {:?}, got {code:?} ({shown})",
                case.what, case.code
            ));
        } else if !message.contains(case.says) {
            wrong.push(format!(
                "{}: message {shown:?} does not name {:?}",
                case.what, case.says
            ));
        }
        if before != after || pause_before != pause_after {
            wrong.push(format!("{}: the store changed", case.what));
        }
    }
    assert!(rows >= 90, "{rows} rows");
    eprintln!("reasons by code: {reasons:#?}");
    // Every class of refusal in the table was seen with its reasons.
    for code in [
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "FAILED_PRECONDITION",
    ] {
        assert!(reasons.contains_key(code), "no {code} row: {reasons:?}");
    }
    assert!(
        wrong.is_empty(),
        "{} of {rows} rows went wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // The daemon still serves, on both ports.
    let still = daemon
        .sessions
        .get_session(proto::GetSessionRequest {
            name: session.name.clone(),
        })
        .await
        .expect("a normal request after the hostile ones")
        .into_inner();
    assert_eq!(still.status, proto::SessionStatus::Active as i32);
    let next = daemon.create_mint(&chain, &session, 2).await;
    let next = daemon.wait_final(&next.name).await;
    assert_eq!(
        next.status,
        proto::TransactionIntentStatus::Confirmed as i32
    );
    let mut admin_client = admin_client;
    admin_client
        .get_status(admin(proto::GetStatusRequest {}, bearer()))
        .await
        .expect("admin status after the hostile requests");
}
