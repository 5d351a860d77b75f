//! Players in the browser: sessions opened to their own client, which calls with stamps of
//! the session key instead of an API key, over gRPC and over gRPC-web. Each stamp is made
//! here as the example page makes it with WebCrypto: a P-256 signature over the method, the
//! stamp's fields and the exact request bytes.

use std::{net::SocketAddr, time::Duration};

use alloy::{primitives::B256, signers::local::PrivateKeySigner};
use latchkey::{
    api::proto::{
        self, session_service_client::SessionServiceClient,
        transaction_intent_service_client::TransactionIntentServiceClient,
    },
    auth::stamp::{STAMP_HEADER, preimage},
    ids::SessionId,
};
use p256::ecdsa::{Signature, SigningKey, signature::Signer as _};
use prost::Message;
use tonic::{Code, Request, transport::Channel};

use crate::{
    daemon::{
        Clients, TEST_TENANT, TestDaemon, account_address, admin_client, mint_interaction,
        mint_session_request, next_action_hash, refused,
    },
    harness::TestChain,
};

/// A browser's non-extractable session key, and the stamps it makes.
struct BrowserKey {
    key: SigningKey,
}

impl BrowserKey {
    fn new() -> Self {
        let key = std::iter::repeat_with(rand::random::<[u8; 32]>)
            .find_map(|bytes| SigningKey::from_slice(&bytes).ok())
            .expect("a scalar");
        Self { key }
    }

    /// `exportKey("raw", publicKey)`: 0x04 ‖ x ‖ y.
    fn public_key(&self) -> String {
        let point = self.key.verifying_key().to_encoded_point(false);
        format!("0x{}", alloy::hex::encode(point.as_bytes()))
    }

    fn signer(&self) -> proto::Signer {
        proto::Signer {
            kind: proto::SignerKind::P256 as i32,
            key: self.public_key(),
            id: String::new(),
        }
    }

    /// The stamp of a call to `method` (`Service/Method`) naming `session`, over `bytes`,
    /// made at `timestamp_ms`.
    fn stamp_at(&self, session: &str, method: &str, bytes: &[u8], timestamp_ms: u64) -> String {
        let id = SessionId::parse(session.trim_start_matches("sessions/")).expect("session id");
        let nonce = alloy::hex::encode(rand::random::<[u8; 16]>());
        let path = format!("/latchkey.v1.{method}");
        let signature: Signature =
            self.key
                .sign(&preimage(&path, &id, timestamp_ms, &nonce, bytes));
        serde_json::json!({
            "session": session,
            "publicKey": self.public_key(),
            "timestampMs": timestamp_ms,
            "nonce": nonce,
            "signature": format!("0x{}", alloy::hex::encode(signature.to_bytes())),
        })
        .to_string()
    }

    /// A stamp made now of `message`, as the page sends it.
    fn stamp(&self, session: &str, method: &str, message: &impl Message) -> String {
        self.stamp_at(
            session,
            method,
            &message.encode_to_vec(),
            latchkey::clock::now_ms(),
        )
    }

    /// WebCrypto's `sign({name: "ECDSA", hash: "SHA-256"}, key, hash)`.
    fn sign_hash(&self, hash: B256) -> String {
        let signature: Signature = self.key.sign(hash.as_slice());
        format!("0x{}", alloy::hex::encode(signature.to_bytes()))
    }
}

/// `message` as a request carrying `stamp`.
fn stamped<T>(message: T, stamp: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert(STAMP_HEADER, stamp.parse().expect("an ASCII stamp"));
    request
}

/// Clients without any credential of their own: each request carries its stamp.
struct Client {
    sessions: SessionServiceClient<Channel>,
    intents: TransactionIntentServiceClient<Channel>,
    accounts: proto::account_service_client::AccountServiceClient<Channel>,
}

impl Client {
    fn new(channel: &Channel) -> Self {
        Self {
            sessions: SessionServiceClient::new(channel.clone()),
            intents: TransactionIntentServiceClient::new(channel.clone()),
            accounts: proto::account_service_client::AccountServiceClient::new(channel.clone()),
        }
    }
}

/// A backend key of [`TEST_TENANT`] that may open sessions to their clients up to `access`.
async fn backend_key(daemon: &TestDaemon, access: proto::ClientAccess) -> String {
    admin_client(daemon.admin_addr.expect("admin service"))
        .await
        .create_api_key(proto::CreateApiKeyRequest {
            tenant: TEST_TENANT.to_owned(),
            scopes: vec![
                proto::ApiKeyScope::Read.into(),
                proto::ApiKeyScope::Write.into(),
            ],
            display_name: "game backend".to_owned(),
            client_access: access.into(),
        })
        .await
        .expect("create a key")
        .into_inner()
        .secret
}

/// What the backend asks for: an EXTERNAL session of `key`, minting on GameItems, opened to
/// the client with `access`, with no `valid_until` (so the default lifetime).
async fn client_session_request(
    chain: &TestChain,
    owner: &PrivateKeySigner,
    key: &BrowserKey,
    access: proto::ClientAccess,
) -> proto::CreateSessionRequest {
    let mut request = mint_session_request(chain, owner.address(), 10).await;
    request.custody = proto::KeyCustody::External as i32;
    request.key_signer = Some(key.signer());
    request.client_access = access.into();
    request.valid_until = 0;
    request
}

/// A client session, registered and ACTIVE.
async fn active_client_session(
    chain: &TestChain,
    backend: &mut Clients,
    key: &BrowserKey,
    access: proto::ClientAccess,
) -> proto::Session {
    let owner = PrivateKeySigner::random();
    let request = client_session_request(chain, &owner, key, access).await;
    backend.activate(chain, &owner, request).await
}

fn mint_request(
    chain: &TestChain,
    session: &proto::Session,
    id: u64,
) -> proto::CreateTransactionIntentRequest {
    proto::CreateTransactionIntentRequest {
        session: session.name.clone(),
        interactions: vec![mint_interaction(
            chain,
            &account_address(&session.account).to_string(),
            id,
            1,
        )],
        idempotency_key: String::new(),
        policy: String::new(),
    }
}

const CREATE_INTENT: &str = "TransactionIntentService/CreateTransactionIntent";

#[tokio::test]
async fn a_client_session_acts_with_stamps_and_every_bad_stamp_is_refused_writing_nothing() {
    let chain = TestChain::start().await;
    let daemon = TestDaemon::start(&chain).await;
    let key = BrowserKey::new();

    // The test daemon's own key grants no client access: asking for it is refused by name.
    let owner = PrivateKeySigner::random();
    let mut plain = daemon.api.clone();
    refused(
        &daemon,
        "client access from a key that may not grant it",
        plain.sessions.create_session(
            client_session_request(&chain, &owner, &key, proto::ClientAccess::ReadOnly).await,
        ),
        Code::PermissionDenied,
        "client_access: CLIENT_ACCESS_READ_ONLY is more than this API key may grant",
    )
    .await;
    let mut backend = Clients::new(
        daemon.channel.clone(),
        &backend_key(&daemon, proto::ClientAccess::ReadWrite).await,
    );
    let mut held = mint_session_request(&chain, owner.address(), 1).await;
    held.client_access = proto::ClientAccess::ReadWrite.into();
    refused(
        &daemon,
        "client access on a held key",
        backend.sessions.create_session(held),
        Code::InvalidArgument,
        "key_signer: a session with client access needs an EXTERNAL SIGNER_KIND_P256 key",
    )
    .await;

    let before = chain.latest_timestamp().await;
    let session =
        active_client_session(&chain, &mut backend, &key, proto::ClientAccess::ReadWrite).await;
    assert_eq!(session.client_access, proto::ClientAccess::ReadWrite as i32);
    let lifetime = u64::try_from(session.valid_until).expect("positive") - before;
    assert!(
        (900..960).contains(&lifetime),
        "no valid_until means 900 s from now: {lifetime}"
    );

    // A valid stamp works: the client reads its session and account, mints, signs its
    // intent touch-free, lists and watches it, all with stamps alone.
    let mut client = Client::new(&daemon.channel);
    let get = proto::GetSessionRequest {
        name: session.name.clone(),
    };
    let read = client
        .sessions
        .get_session(stamped(
            get.clone(),
            &key.stamp(&session.name, "SessionService/GetSession", &get),
        ))
        .await
        .expect("a stamped read")
        .into_inner();
    assert_eq!(read.name, session.name);
    let get_account = proto::GetAccountRequest {
        name: session.account.clone(),
    };
    client
        .accounts
        .get_account(stamped(
            get_account.clone(),
            &key.stamp(&session.name, "AccountService/GetAccount", &get_account),
        ))
        .await
        .expect("its own account");

    let mint = mint_request(&chain, &session, 7);
    let intent = client
        .intents
        .create_transaction_intent(stamped(
            mint.clone(),
            &key.stamp(&session.name, CREATE_INTENT, &mint),
        ))
        .await
        .expect("a stamped write")
        .into_inner();
    let sign = proto::SubmitIntentSignatureRequest {
        name: intent.name.clone(),
        signature: key.sign_hash(next_action_hash(intent.next_action.as_ref())),
        webauthn: None,
    };
    client
        .intents
        .submit_intent_signature(stamped(
            sign.clone(),
            &key.stamp(
                &session.name,
                "TransactionIntentService/SubmitIntentSignature",
                &sign,
            ),
        ))
        .await
        .expect("the client signs its intent");
    let watch = proto::WatchTransactionIntentRequest {
        name: intent.name.clone(),
    };
    let mut stream = client
        .intents
        .watch_transaction_intent(stamped(
            watch.clone(),
            &key.stamp(
                &session.name,
                "TransactionIntentService/WatchTransactionIntent",
                &watch,
            ),
        ))
        .await
        .expect("a stamped watch")
        .into_inner();
    let confirmed = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let update = stream
                .message()
                .await
                .expect("the stream")
                .expect("an update");
            if update.status == proto::TransactionIntentStatus::Confirmed as i32 {
                return update;
            }
        }
    })
    .await
    .expect("confirmed within a minute");
    assert_eq!(confirmed.name, intent.name);

    // Another client session of the same tenant, whose records this client never sees.
    let other_key = BrowserKey::new();
    let other = active_client_session(
        &chain,
        &mut backend,
        &other_key,
        proto::ClientAccess::ReadWrite,
    )
    .await;
    let list = proto::ListTransactionIntentsRequest::default();
    let listed = client
        .intents
        .list_transaction_intents(stamped(
            list.clone(),
            &key.stamp(
                &session.name,
                "TransactionIntentService/ListTransactionIntents",
                &list,
            ),
        ))
        .await
        .expect("a stamped list")
        .into_inner();
    assert!(
        listed
            .transaction_intents
            .iter()
            .all(|listed| listed.session == session.name),
        "only its own session's intents"
    );
    let list = proto::ListSessionsRequest::default();
    let sessions = client
        .sessions
        .list_sessions(stamped(
            list.clone(),
            &key.stamp(&session.name, "SessionService/ListSessions", &list),
        ))
        .await
        .expect("a stamped list")
        .into_inner();
    let names: Vec<&str> = sessions.sessions.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, [session.name.as_str()]);

    // Each bad stamp is refused, and nothing is written.
    let mint = mint_request(&chain, &session, 8);
    let stamp = key.stamp(&session.name, CREATE_INTENT, &mint);
    client
        .intents
        .create_transaction_intent(stamped(mint.clone(), &stamp))
        .await
        .expect("the stamp's one use");
    refused(
        &daemon,
        "a replayed stamp",
        client
            .intents
            .create_transaction_intent(stamped(mint.clone(), &stamp)),
        Code::Unauthenticated,
        "latchkey-stamp.nonce: already used",
    )
    .await;
    let other_mint = mint_request(&chain, &session, 9);
    refused(
        &daemon,
        "a stamp over other bytes",
        client.intents.create_transaction_intent(stamped(
            other_mint.clone(),
            &key.stamp(&session.name, CREATE_INTENT, &mint),
        )),
        Code::Unauthenticated,
        "latchkey-stamp.signature: not the session key's signature",
    )
    .await;
    refused(
        &daemon,
        "a stamp for another method",
        client.intents.create_transaction_intent(stamped(
            other_mint.clone(),
            &key.stamp(
                &session.name,
                "TransactionIntentService/GetTransactionIntent",
                &other_mint,
            ),
        )),
        Code::Unauthenticated,
        "latchkey-stamp.signature",
    )
    .await;
    let stale = key.stamp_at(
        &session.name,
        CREATE_INTENT,
        &other_mint.encode_to_vec(),
        latchkey::clock::now_ms() - 301_000,
    );
    refused(
        &daemon,
        "a stale stamp",
        client
            .intents
            .create_transaction_intent(stamped(other_mint.clone(), &stale)),
        Code::Unauthenticated,
        "latchkey-stamp.timestampMs",
    )
    .await;
    // A stamp of another session: naming it with this key, or acting on its records.
    let foreign = mint_request(&chain, &other, 10);
    refused(
        &daemon,
        "a stamp naming another session",
        client.intents.create_transaction_intent(stamped(
            foreign.clone(),
            &key.stamp(&other.name, CREATE_INTENT, &foreign),
        )),
        Code::Unauthenticated,
        "no session with client access has this id and key",
    )
    .await;
    refused(
        &daemon,
        "a stamp acting on another session's records",
        client.intents.create_transaction_intent(stamped(
            foreign.clone(),
            &key.stamp(&session.name, CREATE_INTENT, &foreign),
        )),
        Code::NotFound,
        &format!("session: {} not found", other.name),
    )
    .await;
    let their_intent = proto::GetTransactionIntentRequest {
        name: other.registration_intent.clone(),
    };
    refused(
        &daemon,
        "reading another session's intent",
        client.intents.get_transaction_intent(stamped(
            their_intent.clone(),
            &key.stamp(
                &session.name,
                "TransactionIntentService/GetTransactionIntent",
                &their_intent,
            ),
        )),
        Code::NotFound,
        "not found",
    )
    .await;
    // Only the backend decides what a client may not: who pays, new sessions, revocation.
    let mut sponsored = mint_request(&chain, &session, 11);
    sponsored.policy = "policies/pol_01JDZZZZZZZZZZZZZZZZZZZZZZ".into();
    refused(
        &daemon,
        "a client naming a policy",
        client.intents.create_transaction_intent(stamped(
            sponsored.clone(),
            &key.stamp(&session.name, CREATE_INTENT, &sponsored),
        )),
        Code::PermissionDenied,
        "policy: a client's intents are sponsored by its session's policy",
    )
    .await;
    let revoke = proto::RevokeSessionRequest {
        name: session.name.clone(),
    };
    refused(
        &daemon,
        "a client revoking",
        client.sessions.revoke_session(stamped(
            revoke.clone(),
            &key.stamp(&session.name, "SessionService/RevokeSession", &revoke),
        )),
        Code::PermissionDenied,
        "is not open to client sessions",
    )
    .await;
    let mut both = stamped(
        other_mint.clone(),
        &key.stamp(&session.name, CREATE_INTENT, &other_mint),
    );
    both.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", daemon.api_key).parse().expect("ascii"),
    );
    refused(
        &daemon,
        "a stamp and an API key at once",
        client.intents.create_transaction_intent(both),
        Code::Unauthenticated,
        "not both",
    )
    .await;

    // A READ_ONLY session's client reads, and is refused every write.
    let reader_key = BrowserKey::new();
    let reader = active_client_session(
        &chain,
        &mut backend,
        &reader_key,
        proto::ClientAccess::ReadOnly,
    )
    .await;
    let get = proto::GetSessionRequest {
        name: reader.name.clone(),
    };
    client
        .sessions
        .get_session(stamped(
            get.clone(),
            &reader_key.stamp(&reader.name, "SessionService/GetSession", &get),
        ))
        .await
        .expect("a READ_ONLY client reads");
    let write = mint_request(&chain, &reader, 12);
    refused(
        &daemon,
        "a READ_ONLY stamp on a write",
        client.intents.create_transaction_intent(stamped(
            write.clone(),
            &reader_key.stamp(&reader.name, CREATE_INTENT, &write),
        )),
        Code::PermissionDenied,
        "needs CLIENT_ACCESS_READ_WRITE; session",
    )
    .await;

    // Past its window the session expires, and its client access with it.
    chain
        .mine_at(u64::try_from(session.valid_until).expect("positive") + 1)
        .await;
    backend
        .wait_session(&session.name, proto::SessionStatus::Expired)
        .await;
    let get = proto::GetSessionRequest {
        name: session.name.clone(),
    };
    refused(
        &daemon,
        "an expired session's stamp",
        client.sessions.get_session(stamped(
            get.clone(),
            &key.stamp(&session.name, "SessionService/GetSession", &get),
        )),
        Code::Unauthenticated,
        "is SESSION_STATUS_EXPIRED; its client access ended with it",
    )
    .await;
}

/// Sends one gRPC-web call over HTTP/1.1, as a browser's `fetch` does, and returns the
/// response's status, headers and body.
async fn grpc_web(
    addr: SocketAddr,
    method: &str,
    origin: &str,
    headers: &[(&str, String)],
    message: &[u8],
) -> alloy::transports::http::reqwest::Response {
    let mut body = vec![0u8];
    body.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    body.extend_from_slice(message);
    let mut request = alloy::transports::http::reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client")
        .post(format!("http://{addr}/latchkey.v1.{method}"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", origin)
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.expect("an answer")
}

/// The `grpc-status` of a gRPC-web answer: in its headers (a trailers-only answer), or in
/// the trailer frame at the end of its body.
fn grpc_web_status(headers: &http::HeaderMap, body: &[u8]) -> Option<String> {
    if let Some(status) = headers.get("grpc-status") {
        return Some(status.to_str().ok()?.to_owned());
    }
    let mut rest = body;
    while rest.len() >= 5 {
        let length = u32::from_be_bytes(rest[1..5].try_into().ok()?) as usize;
        let (frame, tail) = rest[5..].split_at(length);
        if rest[0] & 0x80 != 0 {
            let trailers = std::str::from_utf8(frame).ok()?;
            return trailers
                .lines()
                .find_map(|line| line.trim().strip_prefix("grpc-status:"))
                .map(|status| status.trim().to_owned());
        }
        rest = tail;
    }
    None
}

#[tokio::test]
async fn browsers_of_allowed_origins_call_over_grpc_web_with_stamps() {
    const ORIGIN: &str = "http://localhost:5173";
    let chain = TestChain::start().await;
    let daemon = TestDaemon::start_with(&chain, |config| {
        config.api.cors_allowed_origins = vec![ORIGIN.to_owned()];
    })
    .await;
    let mut backend = Clients::new(
        daemon.channel.clone(),
        &backend_key(&daemon, proto::ClientAccess::ReadWrite).await,
    );
    let key = BrowserKey::new();
    let session =
        active_client_session(&chain, &mut backend, &key, proto::ClientAccess::ReadWrite).await;

    // The preflight: an allowed origin may send a stamp and read the call's status; another
    // origin is not let in.
    let client = alloy::transports::http::reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(
                alloy::transports::http::reqwest::Method::OPTIONS,
                format!(
                    "http://{}/latchkey.v1.SessionService/GetSession",
                    daemon.addr
                ),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,x-grpc-web,latchkey-stamp",
            )
            .send()
    };
    let allowed = preflight(ORIGIN).await.expect("preflight");
    let headers = allowed.headers();
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .map(|value| value.to_str().expect("ascii")),
        Some(ORIGIN)
    );
    let allow_headers = headers
        .get("access-control-allow-headers")
        .expect("allowed headers")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(allow_headers.contains("latchkey-stamp"), "{allow_headers}");
    let stranger = preflight("http://evil.example").await.expect("preflight");
    assert!(
        stranger
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "another origin is not allowed"
    );

    // A stamped read over gRPC-web answers the session, with its status readable by the page.
    let get = proto::GetSessionRequest {
        name: session.name.clone(),
    };
    let stamp = key.stamp(&session.name, "SessionService/GetSession", &get);
    let answer = grpc_web(
        daemon.addr,
        "SessionService/GetSession",
        ORIGIN,
        &[(STAMP_HEADER, stamp.clone())],
        &get.encode_to_vec(),
    )
    .await;
    assert_eq!(answer.status(), 200);
    let headers = answer.headers().clone();
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .map(|value| value.to_str().expect("ascii")),
        Some(ORIGIN)
    );
    assert!(
        headers
            .get("access-control-expose-headers")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|exposed| exposed.contains("grpc-status")),
        "{headers:?}"
    );
    let body = answer.bytes().await.expect("body");
    assert_eq!(grpc_web_status(&headers, &body).as_deref(), Some("0"));
    let length = u32::from_be_bytes(body[1..5].try_into().expect("4 bytes")) as usize;
    let read = proto::Session::decode(&body[5..5 + length]).expect("a session");
    assert_eq!(read.name, session.name);

    // The same stamp again is a replay, over gRPC-web as over gRPC.
    let replay = grpc_web(
        daemon.addr,
        "SessionService/GetSession",
        ORIGIN,
        &[(STAMP_HEADER, stamp)],
        &get.encode_to_vec(),
    )
    .await;
    let headers = replay.headers().clone();
    let body = replay.bytes().await.expect("body");
    assert_eq!(
        grpc_web_status(&headers, &body).as_deref(),
        Some((Code::Unauthenticated as i32).to_string().as_str())
    );
}

/// The median of `samples`, in microseconds.
fn median_micros(mut samples: Vec<Duration>) -> u128 {
    samples.sort();
    samples[samples.len() / 2].as_micros()
}

#[tokio::test]
async fn a_stamped_read_costs_what_its_signature_check_adds_to_a_keyed_one() {
    // Not a timed test: it prints what it measured, for the closing figures; the machine is
    // shared, so only the ratio within one run means much.
    const CALLS: usize = 300;
    let chain = TestChain::start().await;
    let daemon = TestDaemon::start(&chain).await;
    let mut backend = Clients::new(
        daemon.channel.clone(),
        &backend_key(&daemon, proto::ClientAccess::ReadOnly).await,
    );
    let key = BrowserKey::new();
    let owner = PrivateKeySigner::random();
    let session = backend
        .sessions
        .create_session(
            client_session_request(&chain, &owner, &key, proto::ClientAccess::ReadOnly).await,
        )
        .await
        .expect("create")
        .into_inner();
    let get = proto::GetSessionRequest {
        name: session.name.clone(),
    };
    let mut client = Client::new(&daemon.channel);
    let (mut keyed, mut stamped_calls) = (Vec::new(), Vec::new());
    for _ in 0..CALLS {
        let started = std::time::Instant::now();
        backend
            .sessions
            .get_session(get.clone())
            .await
            .expect("keyed read");
        keyed.push(started.elapsed());
        // The stamp is made (and signed) before the clock starts: the browser's cost, not
        // the daemon's.
        let request = stamped(
            get.clone(),
            &key.stamp(&session.name, "SessionService/GetSession", &get),
        );
        let started = std::time::Instant::now();
        client
            .sessions
            .get_session(request)
            .await
            .expect("stamped read");
        stamped_calls.push(started.elapsed());
    }
    let (keyed, stamped_median) = (median_micros(keyed), median_micros(stamped_calls));
    println!(
        "GetSession over one connection, median of {CALLS}: API key {keyed} µs, stamp \
         {stamped_median} µs ({:.2}x)",
        stamped_median as f64 / keyed as f64
    );
}
