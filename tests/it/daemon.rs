//! A latchkey daemon for tests: in-process, on a free port, with its sled store in a temp
//! directory, relaying to the harness's anvil, and a gRPC client connected over a real
//! socket. Dropping it stops the daemon.

use std::{future::Future, net::SocketAddr, path::PathBuf, time::Duration};

use alloy::{
    primitives::{Address, B256},
    signers::local::PrivateKeySigner,
};
use latchkey::{
    api::proto::{
        self, account_service_client::AccountServiceClient,
        policy_service_client::PolicyServiceClient, session_service_client::SessionServiceClient,
        transaction_intent_service_client::TransactionIntentServiceClient,
    },
    chain::signature::sign_personal,
    config::Config,
    daemon::Daemon,
    store::SharedStore,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Response, Status, service::interceptor::InterceptedService, transport::Channel};

use crate::harness::TestChain;

/// The admin token of test daemons.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123456789";

/// The tenant of the API key test daemons' clients call with.
pub const TEST_TENANT: &str = "test";

/// A channel that sends an API key (or the admin token) with every call.
pub type AuthChannel = InterceptedService<Channel, latchkey::cli::admin::BearerToken>;

/// `channel` with `authorization: Bearer <credential>` on every call.
pub fn authed(channel: Channel, credential: &str) -> AuthChannel {
    let bearer = latchkey::cli::Secret::new(credential)
        .bearer()
        .expect("a header-safe credential");
    InterceptedService::new(channel, bearer)
}

/// A client of the admin service at `admin_addr`, calling with the admin token.
pub async fn admin_client(
    admin_addr: SocketAddr,
) -> proto::admin_service_client::AdminServiceClient<AuthChannel> {
    let channel = Channel::from_shared(format!("http://{admin_addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect to the admin service");
    proto::admin_service_client::AdminServiceClient::new(authed(channel, ADMIN_TOKEN))
}

/// Creates an API key of `tenant` with `scopes` through the admin service, and returns the
/// full key.
pub async fn create_api_key(
    admin_addr: SocketAddr,
    tenant: &str,
    scopes: &[proto::ApiKeyScope],
) -> String {
    admin_client(admin_addr)
        .await
        .create_api_key(proto::CreateApiKeyRequest {
            tenant: tenant.to_owned(),
            scopes: scopes.iter().map(|&scope| scope.into()).collect(),
            display_name: format!("tests ({tenant})"),
            client_access: 0,
        })
        .await
        .expect("create an API key")
        .into_inner()
        .secret
}

/// A READ and WRITE key of [`TEST_TENANT`].
async fn test_api_key(admin_addr: SocketAddr) -> String {
    create_api_key(
        admin_addr,
        TEST_TENANT,
        &[proto::ApiKeyScope::Read, proto::ApiKeyScope::Write],
    )
    .await
}

/// The master key of test daemons (64 hex digits): it seals their held session keys.
pub const MASTER_KEY: &str = "4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d";

/// Gas budget given to test sessions: 1 ETH of worst-case fees.
pub const GAS_BUDGET: &str = "1000000000000000000";

pub struct TestDaemon {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    /// The bundler JSON-RPC's address.
    pub jsonrpc_addr: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub store: SharedStore,
    pub api: Clients,
    /// The READ and WRITE key of [`TEST_TENANT`] that `api` calls with.
    pub api_key: String,
    /// The unauthenticated channel to the API, for clients with other credentials.
    pub channel: Channel,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

/// The API clients over one channel, with the waits and signatures tests share.
#[derive(Clone)]
pub struct Clients {
    pub sessions: SessionServiceClient<AuthChannel>,
    pub intents: TransactionIntentServiceClient<AuthChannel>,
    pub accounts: AccountServiceClient<AuthChannel>,
    pub policies: PolicyServiceClient<AuthChannel>,
}

impl std::ops::Deref for TestDaemon {
    type Target = Clients;
    fn deref(&self) -> &Clients {
        &self.api
    }
}

impl std::ops::DerefMut for TestDaemon {
    fn deref_mut(&mut self) -> &mut Clients {
        &mut self.api
    }
}

impl TestDaemon {
    /// Starts a daemon on a fresh store.
    pub async fn start(chain: &TestChain) -> Self {
        Self::start_with(chain, |_| {}).await
    }

    /// Starts a daemon on a fresh store, with `adjust` applied to the test configuration.
    pub async fn start_with(chain: &TestChain, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(chain, &dir.path().join("store"));
        adjust(&mut config);
        let mut daemon = Self::start_config(config, None).await;
        daemon._dir = Some(dir);
        daemon
    }

    /// Starts a daemon on the store in `data_dir`, which holds a previous daemon's state,
    /// calling with that daemon's `api_key` (so the restart itself writes nothing).
    pub async fn start_on(chain: &TestChain, data_dir: PathBuf, api_key: &str) -> Self {
        Self::start_config(test_config(chain, &data_dir), Some(api_key.to_owned())).await
    }

    async fn start_config(config: Config, api_key: Option<String>) -> Self {
        init_logs();
        let data_dir = config.data_dir.clone();
        let settings = config.validate().expect("a valid test configuration");
        let daemon = Daemon::start(settings).await.expect("daemon starts");
        let addr = daemon.local_addr().expect("bound");
        let metrics_addr = daemon.metrics_addr();
        let admin_addr = daemon.admin_addr();
        let jsonrpc_addr = daemon.jsonrpc_addr();
        let store = daemon.app().store().clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { daemon.run(shutdown).await.expect("daemon runs") }
        });
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect to the daemon");
        let api_key = match api_key {
            Some(key) => key,
            None => test_api_key(admin_addr.expect("test daemons serve the admin service")).await,
        };
        Self {
            addr,
            metrics_addr,
            admin_addr,
            jsonrpc_addr,
            data_dir,
            store,
            api: Clients::new(channel.clone(), &api_key),
            api_key,
            channel,
            shutdown,
            task: Some(task),
            _dir: None,
        }
    }

    /// Scrapes the daemon's metrics: each sample (`name{labels}`) with its value.
    pub async fn scrape(&self) -> std::collections::HashMap<String, f64> {
        let addr = self.metrics_addr.expect("metrics are served");
        let response = alloy::transports::http::reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("scrape");
        assert!(response.status().is_success(), "{response:?}");
        let text = response.text().await.expect("metrics text");
        text.lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (sample, value) = line.rsplit_once(' ').expect("a sample and its value");
                (sample.to_owned(), value.parse().expect("a number"))
            })
            .collect()
    }

    /// Clients that call with `credential` instead of the test key.
    pub fn clients_with(&self, credential: &str) -> Clients {
        Clients::new(self.channel.clone(), credential)
    }

    /// Waits until the relay has completed two passes that began after this call: whatever
    /// was in the store when it was called has been looked at by a whole pass. An absence
    /// ("nothing was sent") is checked after this, not after a sleep that hopes.
    pub async fn relay_passes(&self) {
        let mut admin = admin_client(
            self.admin_addr
                .expect("test daemons serve the admin service"),
        )
        .await;
        let last_pass = |status: proto::DaemonStatus| {
            status
                .relay
                .and_then(|relay| relay.last_pass_at)
                .map(|at| (at.seconds, at.nanos))
        };
        let mut seen = Vec::new();
        for _ in 0..300 {
            let status = admin
                .get_status(proto::GetStatusRequest {})
                .await
                .expect("status")
                .into_inner();
            let pass = last_pass(status);
            if seen.last() != Some(&pass) {
                seen.push(pass);
            }
            // The first value seen may be a pass already under way when this was called.
            if seen.len() >= 3 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the relay made no two passes within 15 s");
    }

    /// Takes the temporary directory that holds the store, so it outlives this daemon.
    pub fn keep_dir(&mut self) -> Option<tempfile::TempDir> {
        self._dir.take()
    }

    /// Stops the daemon gracefully and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("daemon task");
        }
    }
}

impl Clients {
    /// Clients over `channel` that call with `credential`.
    pub fn new(channel: Channel, credential: &str) -> Self {
        let channel = authed(channel, credential);
        Self {
            sessions: SessionServiceClient::new(channel.clone()),
            intents: TransactionIntentServiceClient::new(channel.clone()),
            accounts: AccountServiceClient::new(channel.clone()),
            policies: PolicyServiceClient::new(channel),
        }
    }

    /// Creates a HELD session for `owner` that may mint on the harness's GameItems, signs
    /// its registration with the owner's key (EIP-191, an independent signer) and waits
    /// until it is ACTIVE.
    pub async fn active_held_session(
        &mut self,
        chain: &TestChain,
        owner: &PrivateKeySigner,
        call_limit: u32,
    ) -> proto::Session {
        let request = mint_session_request(chain, owner.address(), call_limit).await;
        self.activate(chain, owner, request).await
    }

    /// Creates the session `request` asks for, funds its account (without a paymaster the
    /// account pays for its own operations), has `owner` sign, and waits for ACTIVE.
    pub async fn activate(
        &mut self,
        chain: &TestChain,
        owner: &PrivateKeySigner,
        request: proto::CreateSessionRequest,
    ) -> proto::Session {
        let session = self
            .sessions
            .create_session(request)
            .await
            .expect("create session")
            .into_inner();
        chain.fund(account_address(&session.account)).await;
        self.sign_and_activate(owner, session).await
    }

    /// Submits the owner's signature of the session's next action and waits for ACTIVE.
    pub async fn sign_and_activate(
        &mut self,
        owner: &PrivateKeySigner,
        session: proto::Session,
    ) -> proto::Session {
        self.submit_owner_signature(owner, &session).await;
        self.wait_session(&session.name, proto::SessionStatus::Active)
            .await
    }

    /// The owner signs the session's next action (its registration or its revocation) and
    /// submits the signature.
    pub async fn submit_owner_signature(
        &mut self,
        owner: &PrivateKeySigner,
        session: &proto::Session,
    ) {
        let hash = next_action_hash(session.next_action.as_ref());
        let signature = sign_personal(owner, hash).expect("owner signs");
        self.sessions
            .submit_session_signature(proto::SubmitSessionSignatureRequest {
                name: session.name.clone(),
                signature: signature.to_string(),
                ..Default::default()
            })
            .await
            .expect("submit signature");
    }

    /// Creates an intent on `session` that mints one of item `id` to its account, and
    /// returns it as created.
    pub async fn create_mint(
        &mut self,
        chain: &TestChain,
        session: &proto::Session,
        id: u64,
    ) -> proto::TransactionIntent {
        let account = account_address(&session.account).to_string();
        self.intents
            .create_transaction_intent(proto::CreateTransactionIntentRequest {
                session: session.name.clone(),
                interactions: vec![mint_interaction(chain, &account, id, 1)],
                idempotency_key: String::new(),
                policy: String::new(),
            })
            .await
            .expect("create intent")
            .into_inner()
    }

    /// Revokes `session`: asks for the revocation, has the owner sign it, and waits for
    /// REVOKED. Returns the session as RevokeSession answered (REVOKING, with the
    /// revocation's next action) and as it ended.
    pub async fn revoke(
        &mut self,
        owner: &PrivateKeySigner,
        session: &proto::Session,
    ) -> (proto::Session, proto::Session) {
        let revoking = self
            .sessions
            .revoke_session(proto::RevokeSessionRequest {
                name: session.name.clone(),
            })
            .await
            .expect("revoke")
            .into_inner();
        self.submit_owner_signature(owner, &revoking).await;
        let revoked = self
            .wait_session(&session.name, proto::SessionStatus::Revoked)
            .await;
        (revoking, revoked)
    }

    /// Creates an EXTERNAL session for `owner` whose key is `key` (allowed to mint
    /// `call_limit` times), funds the account, has the owner sign, and waits for ACTIVE.
    pub async fn active_external_session(
        &mut self,
        chain: &TestChain,
        owner: &PrivateKeySigner,
        key: Address,
        call_limit: u32,
    ) -> proto::Session {
        let mut request = mint_session_request(chain, owner.address(), call_limit).await;
        request.custody = proto::KeyCustody::External as i32;
        request.key_address = key.to_string();
        let session = self.activate(chain, owner, request).await;
        assert_eq!(session.key_address, key.to_string());
        session
    }

    /// Polls a session until it reaches `status` (or fails the test after 30 s).
    pub async fn wait_session(
        &mut self,
        name: &str,
        status: proto::SessionStatus,
    ) -> proto::Session {
        for _ in 0..300 {
            let session = self
                .sessions
                .get_session(proto::GetSessionRequest {
                    name: name.to_owned(),
                })
                .await
                .expect("get session")
                .into_inner();
            if session.status == status as i32 {
                return session;
            }
            let settled = [
                proto::SessionStatus::Failed,
                proto::SessionStatus::Revoked,
                proto::SessionStatus::Expired,
            ];
            assert!(
                !settled.iter().any(|s| *s as i32 == session.status),
                "session {name} settled in {:?} ({}) instead of {status:?}",
                proto::SessionStatus::try_from(session.status),
                session.failure_reason
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("session {name} never reached {status:?}");
    }

    /// Polls an intent until it reaches `status` (or fails the test after 60 s).
    pub async fn wait_status(
        &mut self,
        name: &str,
        status: proto::TransactionIntentStatus,
    ) -> proto::TransactionIntent {
        self.poll_intent(
            name,
            |intent| intent.status == status as i32,
            &format!("{status:?}"),
        )
        .await
    }

    /// Polls an intent until it is final (or fails the test after 60 s).
    pub async fn wait_final(&mut self, name: &str) -> proto::TransactionIntent {
        self.poll_intent(name, |intent| is_final(intent.status), "a final status")
            .await
    }

    async fn poll_intent(
        &mut self,
        name: &str,
        done: impl Fn(&proto::TransactionIntent) -> bool,
        what: &str,
    ) -> proto::TransactionIntent {
        for _ in 0..600 {
            let intent = self
                .intents
                .get_transaction_intent(proto::GetTransactionIntentRequest {
                    name: name.to_owned(),
                })
                .await
                .expect("get intent")
                .into_inner();
            if done(&intent) {
                return intent;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("intent {name} never reached {what}");
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Daemon logs go to the test's output (shown for failing tests); `RUST_LOG` filters them.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

pub fn test_config(chain: &TestChain, data_dir: &std::path::Path) -> Config {
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: data_dir.to_owned(),
        ..Config::default()
    };
    config.chain.rpc_url = chain.chain.rpc_url().to_string();
    config.chain.factory = Some(chain.chain.deployment.factory);
    config.relayer.private_key = Some(format!(
        "0x{}",
        alloy::hex::encode(chain.chain.relayer.to_bytes())
    ));
    config.relayer.poll_interval_ms = 200;
    config.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.admin.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.admin.token = Some(ADMIN_TOKEN.to_owned());
    config.jsonrpc.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    // Tests drive the daemon as fast as they can; the rate limit has its own test.
    config.api.rate_limit_per_second = 100_000;
    config.api.rate_limit_burst = 100_000;
    config.keys.master_key = Some(MASTER_KEY.to_owned());
    // Sponsorship is on, through the dev chain's paymaster; only operations that name a
    // policy use it.
    config.sponsor.paymaster = Some(chain.chain.paymaster);
    config.sponsor.signer_private_key = Some(format!(
        "0x{}",
        alloy::hex::encode(chain.chain.sponsor_signer.to_bytes())
    ));
    config
}

pub fn is_final(status: i32) -> bool {
    use proto::TransactionIntentStatus as S;
    [S::Confirmed, S::Reverted, S::Dropped, S::Expired]
        .iter()
        .any(|s| *s as i32 == status)
}

pub fn next_action_hash(action: Option<&proto::NextAction>) -> B256 {
    let action = action.expect("a next action");
    assert_eq!(action.r#type, proto::NextActionType::SignWithWallet as i32);
    action.signable_hash.parse().expect("a 32-byte hash")
}

/// A HELD session request for `owner` (salt 0) allowed to mint on GameItems `call_limit` times.
pub async fn mint_session_request(
    chain: &TestChain,
    owner: Address,
    call_limit: u32,
) -> proto::CreateSessionRequest {
    let now = chain.latest_timestamp().await;
    proto::CreateSessionRequest {
        owner: owner.to_string(),
        salt: "0".into(),
        custody: proto::KeyCustody::Held as i32,
        key_address: String::new(),
        valid_after: i64::try_from(now - 1).expect("fits"),
        valid_until: i64::try_from(now + 3_600).expect("fits"),
        permissions: Some(proto::SessionPermissions {
            call_limit,
            value_per_call_limit: String::new(),
            value_budget: String::new(),
            gas_budget: GAS_BUDGET.into(),
            calls: vec![proto::CallPermission {
                target: chain.chain.deployment.game_items.to_string(),
                function: "mint(address,uint256,uint256)".into(),
                selector: String::new(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        policy: String::new(),
        ..Default::default()
    }
}

/// `mint(account, id, amount)` on the harness's GameItems.
pub fn mint_interaction(
    chain: &TestChain,
    account: &str,
    id: u64,
    amount: u64,
) -> proto::Interaction {
    proto::Interaction {
        to: chain.chain.deployment.game_items.to_string(),
        value: String::new(),
        call: Some(proto::interaction::Call::FunctionCall(
            proto::FunctionCall {
                signature: "mint(address,uint256,uint256)".into(),
                args: vec![account.to_owned(), id.to_string(), amount.to_string()],
            },
        )),
    }
}

/// The address inside an `accounts/{address}` name.
/// The on-chain registration id of a session (`sessions/{id}`).
pub fn registration(session: &proto::Session) -> B256 {
    latchkey::chain::signature::registration_id(session.name.trim_start_matches("sessions/"))
}

pub fn account_address(name: &str) -> Address {
    name.strip_prefix("accounts/")
        .expect("account name")
        .parse()
        .expect("address")
}

/// The real `latchkey serve` binary as a child process, for tests that must kill it.
pub struct DaemonProcess {
    child: std::process::Child,
    pub api: Clients,
    pub admin_addr: SocketAddr,
    /// The READ and WRITE key of [`TEST_TENANT`] that `api` calls with.
    pub api_key: String,
    /// The unauthenticated channel to the API, for clients with other credentials.
    channel: Channel,
}

impl std::ops::Deref for DaemonProcess {
    type Target = Clients;
    fn deref(&self) -> &Clients {
        &self.api
    }
}

impl std::ops::DerefMut for DaemonProcess {
    fn deref_mut(&mut self) -> &mut Clients {
        &mut self.api
    }
}

impl DaemonProcess {
    /// Spawns `latchkey serve --config FILE` on a free port over the store in `data_dir`, with
    /// at most `max_in_flight` transactions in flight, and connects.
    pub async fn spawn(
        chain: &TestChain,
        data_dir: &std::path::Path,
        max_in_flight: usize,
    ) -> Self {
        let port = free_port();
        Self::spawn_on(
            chain,
            data_dir,
            port,
            &format!("max_in_flight = {max_in_flight}\n"),
        )
        .await
    }

    /// Spawns `latchkey serve` listening on `port`, over the store in `data_dir`, with
    /// `relayer_settings` (TOML lines) added to its `[relayer]` table, and connects.
    pub async fn spawn_on(
        chain: &TestChain,
        data_dir: &std::path::Path,
        port: u16,
        relayer_settings: &str,
    ) -> Self {
        Self::spawn_logging(chain, data_dir, port, relayer_settings, None).await
    }

    /// [`DaemonProcess::spawn_on`], with the daemon's log as JSON at its default level
    /// (`RUST_LOG` unset) in `log_file` when given (else warnings only, on the test's
    /// stderr).
    pub async fn spawn_logging(
        chain: &TestChain,
        data_dir: &std::path::Path,
        port: u16,
        relayer_settings: &str,
        log_file: Option<&std::path::Path>,
    ) -> Self {
        let log = log_file.map(|file| (file, ""));
        Self::spawn_with(chain, data_dir, port, relayer_settings, log, MASTER_KEY).await
    }

    /// [`DaemonProcess::spawn_on`], with the daemon's log as JSON filtered by `log.1` (the
    /// daemon's default when empty) in the file `log.0` when given, and `master_key` as its
    /// master key.
    pub async fn spawn_with(
        chain: &TestChain,
        data_dir: &std::path::Path,
        port: u16,
        relayer_settings: &str,
        log: Option<(&std::path::Path, &str)>,
        master_key: &str,
    ) -> Self {
        let config = test_config(chain, data_dir);
        let file = data_dir.with_extension("toml");
        let admin_port = free_port();
        let toml = format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = {data_dir:?}\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\n[api]\nrate_limit_per_second = 100000\nrate_limit_burst = 100000\n\n[chain]\nrpc_url = \"{rpc}\"\nfactory = \"{factory}\"\n\n[relayer]\npoll_interval_ms = 200\n{relayer_settings}",
            data_dir = data_dir.display().to_string(),
            rpc = config.chain.rpc_url,
            factory = chain.chain.deployment.factory,
        );
        std::fs::write(&file, toml).expect("write config");
        // The relayer key comes from the environment, as the docs recommend.
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
        command
            .args(["serve", "--config", &file.display().to_string()])
            .env("LATCHKEY_MASTER_KEY", master_key)
            .env("LATCHKEY_ADMIN_TOKEN", ADMIN_TOKEN)
            .env(
                "LATCHKEY_RELAYER_PRIVATE_KEY",
                config.relayer.private_key.as_deref().expect("key"),
            )
            .env("RUST_LOG", "warn");
        if let Some((log_file, filter)) = log {
            command
                .args(["--log-format", "json"])
                .stderr(std::fs::File::create(log_file).expect("create the log file"));
            if filter.is_empty() {
                command.env_remove("RUST_LOG");
            } else {
                command.env("RUST_LOG", filter);
            }
        }
        let child = command.spawn().expect("spawn latchkey serve");
        let uri = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if let Ok(channel) = Channel::from_shared(uri.clone())
                .expect("uri")
                .connect()
                .await
            {
                let admin_addr = SocketAddr::from(([127, 0, 0, 1], admin_port));
                let api_key = test_api_key(admin_addr).await;
                return Self {
                    child,
                    api: Clients::new(channel.clone(), &api_key),
                    admin_addr,
                    api_key,
                    channel,
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        panic!("latchkey serve did not start listening");
    }

    /// SIGTERM, then waits up to `timeout` for the process to exit by itself. Returns how
    /// long it took and how it exited; fails the test if it outlives `timeout`.
    pub async fn terminate(mut self, timeout: Duration) -> (Duration, std::process::ExitStatus) {
        let started = std::time::Instant::now();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "SIGTERM delivered");
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the daemon") {
                return (started.elapsed(), status);
            }
            assert!(
                started.elapsed() < timeout,
                "the daemon was still running {timeout:?} after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Clients that call with `credential` instead of the test key.
    pub fn clients_with(&self, credential: &str) -> Clients {
        Clients::new(self.channel.clone(), credential)
    }

    /// SIGKILL: no graceful shutdown, no flush.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reap");
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on now.
/// The intent as the daemon stored it, with what the API does not show (its submission,
/// its operation). A plain call, for the tests' filters and closures: the embedded store
/// answers a read without waiting on anything, so blocking on it returns at once.
pub fn stored_intent(daemon: &TestDaemon, name: &str) -> latchkey::intent::Intent {
    let id = name
        .strip_prefix("transactionIntents/")
        .expect("intent name");
    let id = latchkey::intent::IntentId::parse(id).expect("intent id");
    futures::executor::block_on(daemon.store.intent(&id))
        .expect("read")
        .expect("stored")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Runs `request`, expects `code` with `needle` in the message, and checks the store did not
/// change.
pub async fn refused<T: std::fmt::Debug>(
    daemon: &TestDaemon,
    what: &str,
    request: impl Future<Output = Result<Response<T>, Status>>,
    code: Code,
    needle: &str,
) {
    let before = daemon.store.content_digest().await.expect("digest");
    let status = request
        .await
        .expect_err(&format!("{what}: must be refused"));
    assert_eq!(status.code(), code, "{what}: {status:?}");
    assert!(
        status.message().contains(needle),
        "{what}: message {:?} should mention {needle:?}",
        status.message()
    );
    let after = daemon.store.content_digest().await.expect("digest");
    assert_eq!(before, after, "{what}: the store changed");
}
