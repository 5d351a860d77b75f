//! The daemon: opens the store, connects to the chain, starts the relay engine and serves the
//! gRPC API (with health and reflection) until the shutdown token is cancelled. There is one
//! shutdown path: the token stops the server and the relay, and the store is flushed last.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use alloy::{
    providers::{Provider, ProviderBuilder},
    rpc::client::RpcClient,
    transports::http::{Http, reqwest},
};
use axum::serve::ListenerExt;
use tokio::{net::TcpListener, sync::watch};
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tracing::info;

use crate::{
    api::{
        FILE_DESCRIPTOR_SET,
        admin::Admin,
        edge::EdgeLayer,
        gate::{Gate, Surface},
        proto::{
            account_service_server::AccountServiceServer, admin_service_server::AdminServiceServer,
            policy_service_server::PolicyServiceServer,
            session_service_server::SessionServiceServer,
            transaction_intent_service_server::TransactionIntentServiceServer,
        },
        services::{Accounts, Intents, Policies, Sessions},
        watch::{WatchLimits, WatchSlots, Watches},
    },
    app::{App, AppConfig, BundlerConfig},
    auth::{
        RateLimit,
        stamp::{StampWindow, UsedNonces},
    },
    chain::{ChainError, client::ChainClient, deploy::Deployment},
    config::{JsonRpcSettings, Settings, TlsIdentity},
    metrics::Metrics,
    relay::{HEALTH_SERVICE, Relay, RelayHealth},
    rpc::JsonRpc,
    store::{SharedStore, SledStore, StoreError},
};

/// Why the daemon could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The store could not be opened.
    #[error("store at the configured data_dir: {0}")]
    Store(#[from] StoreError),
    /// The chain is unreachable or lacks the contracts.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The configured paymaster does not accept the configured approving key.
    #[error(
        "sponsor.signer_private_key is the key of {configured}, but the paymaster {paymaster} \
         accepts approvals from {on_chain}; set the paymaster's signer (setSigner) or the key"
    )]
    SponsorSignerMismatch {
        /// The paymaster.
        paymaster: alloy::primitives::Address,
        /// The configured key's address.
        configured: alloy::primitives::Address,
        /// The paymaster's signer.
        on_chain: alloy::primitives::Address,
    },
    /// The configured paymaster serves another EntryPoint.
    #[error(
        "the paymaster {paymaster} serves the EntryPoint {serves}, not the configured \
         chain.entry_point {configured}"
    )]
    SponsorEntryPointMismatch {
        /// The paymaster.
        paymaster: alloy::primitives::Address,
        /// The EntryPoint it serves.
        serves: alloy::primitives::Address,
        /// The configured EntryPoint.
        configured: alloy::primitives::Address,
    },
    /// The held keys do not open under the configured master key.
    #[error("held session keys: {0}")]
    Keys(#[from] crate::store::SealingError),
    /// The listen address could not be bound, or the server failed.
    #[error("gRPC server: {0}")]
    Server(String),
    /// The relay task panicked: nothing would be relayed any more, so the daemon stopped.
    #[error("the relay failed and the daemon stopped: {0}")]
    RelayFailed(String),
}

/// Connects to the configured chain and checks what the daemon relies on there: the chain
/// answers, the EntryPoint and the factory have code, and a configured paymaster serves that
/// EntryPoint and accepts the configured approving key. `latchkey config check` runs the
/// same checks without starting anything.
pub async fn connect_chain(settings: &Settings) -> Result<ChainClient, DaemonError> {
    let chain_settings = &settings.chain;
    // Every request has a deadline: a node that accepts a connection and never answers
    // would otherwise hold the relay (and the API calls that read the chain) forever.
    let http = reqwest::Client::builder()
        .timeout(chain_settings.rpc_timeout)
        .build()
        .map_err(|error| DaemonError::Server(format!("HTTP client: {error}")))?;
    let transport = Http::with_client(http, chain_settings.rpc_url.clone());
    let is_local = transport.guess_local();
    let provider = ProviderBuilder::new()
        .connect_client(RpcClient::new(transport, is_local))
        .erased();
    let examples = crate::chain::deploy::expected_addresses(chain_settings.entry_point);
    let deployment = Deployment {
        entry_point: chain_settings.entry_point,
        factory: chain_settings.factory,
        game_items: examples.game_items,
        game_gold: examples.game_gold,
    };
    let chain =
        ChainClient::connect(provider, deployment, chain_settings.max_fee_per_gas_wei).await?;
    if let Some(sponsor) = &settings.sponsor {
        // Approvals the paymaster would refuse (AA34) must stop the daemon here,
        // not drop every sponsored operation later.
        let paymaster = sponsor.paymaster;
        let (on_chain, entry_point) = chain.paymaster_setup(paymaster).await?;
        if entry_point != chain.deployment().entry_point {
            return Err(DaemonError::SponsorEntryPointMismatch {
                paymaster,
                serves: entry_point,
                configured: chain.deployment().entry_point,
            });
        }
        if on_chain != sponsor.signer.address() {
            return Err(DaemonError::SponsorSignerMismatch {
                paymaster,
                configured: sponsor.signer.address(),
                on_chain,
            });
        }
    }
    Ok(chain)
}

/// A daemon bound to its address, ready to [`Daemon::run`].
pub struct Daemon {
    /// Who may call, and how often: one gate for both servers, so a peer's failed
    /// authentications count on both.
    gate: Arc<Gate>,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    /// The bundler JSON-RPC's listener and settings, when it is served.
    jsonrpc: Option<(TcpListener, JsonRpcSettings)>,
    /// The admin service's listener, when anyone can use it.
    admin: Option<TcpListener>,
    /// The TLS certificate and key both servers present; plaintext when `None`.
    tls: Option<TlsIdentity>,
    /// Largest request message any service decodes.
    max_request_bytes: usize,
    /// The web origins whose pages may call the application API over gRPC-web.
    cors_allowed_origins: Vec<http::HeaderValue>,
    /// How many watch streams each server holds open.
    watch_limits: WatchLimits,
    app: App,
    relay: Relay,
}

impl Daemon {
    /// Opens everything the daemon needs and binds the listen address (port 0 picks a free
    /// one; [`Daemon::local_addr`] tells which). `settings` were checked and parsed by
    /// [`crate::config::Config::validate`]; nothing is checked or read from them again.
    pub async fn start(settings: Settings) -> Result<Self, DaemonError> {
        let store: SharedStore = Arc::new(SledStore::open(&settings.data_dir)?);
        // Every held key must open under the configured master key before anything is
        // served; keys an older version stored bare are sealed now.
        let sealed = crate::store::seal_legacy_keys(store.as_ref(), &settings.master_key).await?;
        if sealed > 0 {
            info!(target: "daemon", sealed, "held keys stored bare by an older version are now sealed");
        }
        let chain = connect_chain(&settings).await?;
        let Settings {
            listen,
            metrics_listen,
            relayers,
            relay,
            sponsor,
            intents,
            admin: admin_config,
            master_key,
            api,
            tls,
            jsonrpc,
            ..
        } = settings;
        let relay_max_bundle_gas = relay.max_bundle_gas;
        let metrics = Arc::new(Metrics::default());
        let queue_timeout = relay.queue_timeout;
        let relay = Relay::new(
            store.clone(),
            chain.clone(),
            metrics.clone(),
            relayers,
            relay,
        );
        let app = App::new(
            store,
            chain,
            AppConfig {
                window_margin_secs: intents.window_margin_secs,
                signature_timeout: Duration::from_secs(intents.signature_timeout_secs),
                queue_timeout,
                sponsor,
                master_key,
                admin_token: admin_config.token.is_some(),
                bundler: BundlerConfig {
                    max_operations_per_sender: jsonrpc.max_operations_per_sender,
                    max_operation_gas: relay_max_bundle_gas,
                    trace_validation: jsonrpc.trace_validation,
                },
            },
            metrics,
            relay.handle(),
        );
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|error| DaemonError::Server(format!("bind {}: {error}", listen)))?;
        let jsonrpc_listener = match jsonrpc.listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|error| {
                DaemonError::Server(format!("bind jsonrpc.listen {addr}: {error}"))
            })?),
            None => None,
        };
        let metrics_listener = match metrics_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|error| {
                DaemonError::Server(format!("bind metrics_listen {addr}: {error}"))
            })?),
            None => None,
        };
        // Served when someone can get in: with the admin token, or an ADMIN key made
        // while a token was configured.
        let admin = if app.admin_reachable().await? {
            let listener = TcpListener::bind(admin_config.listen)
                .await
                .map_err(|error| {
                    DaemonError::Server(format!(
                        "bind admin.listen {}: {error}",
                        admin_config.listen
                    ))
                })?;
            if !admin_config.listen.ip().is_loopback() && tls.is_none() {
                tracing::warn!(
                    target: "daemon",
                    addr = %admin_config.listen,
                    "the admin service listens beyond this machine without TLS: its credentials \
                     cross the network in the clear; set tls.cert_file and tls.key_file"
                );
            }
            Some(listener)
        } else {
            info!(target: "daemon", "admin service off: set admin.token (LATCHKEY_ADMIN_TOKEN) to serve it and create the first keys");
            None
        };
        let gate = Arc::new(Gate::new(
            admin_config.token.as_deref(),
            RateLimit {
                per_second: api.rate_limit_per_second,
                burst: api.rate_limit_burst,
            },
            RateLimit {
                per_second: api.auth_failures_per_second,
                burst: api.auth_failure_burst,
            },
            UsedNonces::new(StampWindow {
                millis: api.stamp_window_secs.saturating_mul(1000),
            }),
        ));
        let cors_allowed_origins = api
            .cors_allowed_origins
            .iter()
            .map(|origin| {
                http::HeaderValue::from_str(origin).map_err(|_| {
                    DaemonError::Server(format!("api.cors_allowed_origins: {origin:?}"))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            gate,
            listener,
            metrics_listener,
            jsonrpc: jsonrpc_listener.map(|listener| (listener, jsonrpc)),
            admin,
            tls,
            max_request_bytes: api.max_request_bytes,
            cors_allowed_origins,
            watch_limits: WatchLimits {
                total: api.max_watch_streams,
                per_tenant: api.max_watch_streams_per_tenant,
                admin: api.max_admin_watch_streams,
            },
            app,
            relay,
        })
    }

    /// The address the API listens on.
    pub fn local_addr(&self) -> Result<SocketAddr, DaemonError> {
        self.listener
            .local_addr()
            .map_err(|error| DaemonError::Server(error.to_string()))
    }

    /// The address metrics are served on, when they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// The address the bundler JSON-RPC listens on, when it is served.
    pub fn jsonrpc_addr(&self) -> Option<SocketAddr> {
        self.jsonrpc
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// The address the admin service listens on, when it is served.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// The application, for embedding callers.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Serves until `shutdown` is cancelled, then stops the relay and flushes the store.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), DaemonError> {
        let addr = self.local_addr()?;
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<AccountServiceServer<Accounts>>()
            .await;
        health_reporter
            .set_serving::<SessionServiceServer<Sessions>>()
            .await;
        health_reporter
            .set_serving::<TransactionIntentServiceServer<Intents>>()
            .await;
        health_reporter
            .set_serving::<PolicyServiceServer<Policies>>()
            .await;
        let (reflection, reflection_v1alpha) = reflection_services(&APPLICATION_SERVICES)?;
        let watches = Watches {
            slots: WatchSlots::new(self.watch_limits),
            shutdown: shutdown.clone(),
        };

        if let Some(listener) = self.metrics_listener {
            let app = self.app.clone();
            let metrics_addr = listener.local_addr().ok();
            let router = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let app = app.clone();
                    async move {
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            app.metrics_text().await,
                        )
                    }
                }),
            );
            let stop = shutdown.clone().cancelled_owned();
            tokio::spawn(async move {
                if let Err(error) = axum::serve(listener, router)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(target: "daemon", %error, "metrics server failed");
                }
            });
            info!(target: "daemon", addr = ?metrics_addr, "serving metrics at /metrics");
        }

        if let Some((listener, settings)) = self.jsonrpc {
            let jsonrpc_addr = listener.local_addr().ok();
            let router = JsonRpc::new(self.app.clone(), self.gate.clone(), settings).router();
            let stop = shutdown.clone().cancelled_owned();
            let listener = listener.tap_io(|stream| {
                // Small JSON answers go out at once, as on the gRPC servers.
                let _ = stream.set_nodelay(true);
            });
            tokio::spawn(async move {
                if let Err(error) = axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(stop)
                .await
                {
                    tracing::error!(target: "daemon", %error, "bundler JSON-RPC server failed");
                }
            });
            info!(target: "daemon", addr = ?jsonrpc_addr, "serving the bundler JSON-RPC");
        }

        let admin_server = match self.admin {
            Some(listener) => {
                let admin_addr = listener.local_addr().ok();
                let service =
                    AdminServiceServer::new(Admin::new(self.app.clone(), watches.clone()))
                        .max_decoding_message_size(self.max_request_bytes);
                let stop = shutdown.clone().cancelled_owned();
                let (reflection, reflection_v1alpha) =
                    reflection_services(&["latchkey.v1.AdminService"])?;
                info!(target: "daemon", addr = ?admin_addr, tls = self.tls.is_some(), "serving the admin service");
                Some(tokio::spawn(
                    server_builder(self.tls.as_ref())?
                        .layer(EdgeLayer::new(
                            self.app.clone(),
                            self.gate.clone(),
                            Surface::Admin,
                            self.max_request_bytes,
                        ))
                        .add_service(reflection)
                        .add_service(reflection_v1alpha)
                        .add_service(service)
                        .serve_with_incoming_shutdown(accepted(listener), stop),
                ))
            }
            None => None,
        };

        let relay_shutdown = shutdown.child_token();
        let (relay_health, mut relay_health_changes) = watch::channel(RelayHealth::Serving);
        let relay_task = tokio::spawn(self.relay.run(relay_shutdown.clone(), relay_health));
        // A relay that dies takes the daemon down with it: serving requests that nothing
        // will ever relay would hide the failure. The panic's message is the exit reason.
        let relay = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                let ended = relay_task.await;
                if let Err(error) = &ended {
                    tracing::error!(target: "daemon", %error, "the relay task failed; shutting down");
                    shutdown.cancel();
                }
                ended.map_err(|error| {
                    let reason = match error.try_into_panic() {
                        Ok(panic) => panic
                            .downcast_ref::<&str>()
                            .map(|text| (*text).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "a panic without a message".to_owned()),
                        Err(error) => error.to_string(),
                    };
                    DaemonError::RelayFailed(reason)
                })
            }
        });
        // The relay's standing, as the health service's `latchkey.relay` entry; the API
        // services stay SERVING, since reads and signing work without the chain's help.
        tokio::spawn(async move {
            loop {
                let status = match *relay_health_changes.borrow_and_update() {
                    RelayHealth::Serving => ServingStatus::Serving,
                    RelayHealth::NotServing => ServingStatus::NotServing,
                };
                health_reporter
                    .set_service_status(HEALTH_SERVICE, status)
                    .await;
                if relay_health_changes.changed().await.is_err() {
                    break;
                }
            }
        });

        info!(target: "daemon", %addr, tls = self.tls.is_some(), "serving gRPC");
        // Browsers reach the application API over gRPC-web, on this same port: HTTP/1.1
        // (or HTTP/2) with CORS for the allowed origins, translated to gRPC before the edge,
        // which so checks a browser's call exactly as any other.
        let served = server_builder(self.tls.as_ref())?
            .accept_http1(true)
            .layer(browser_cors(self.cors_allowed_origins.clone()))
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(EdgeLayer::new(
                self.app.clone(),
                self.gate.clone(),
                Surface::Api,
                self.max_request_bytes,
            ))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            .add_service(
                AccountServiceServer::new(Accounts(self.app.clone()))
                    .max_decoding_message_size(self.max_request_bytes),
            )
            .add_service(
                SessionServiceServer::new(Sessions(self.app.clone()))
                    .max_decoding_message_size(self.max_request_bytes),
            )
            .add_service(
                TransactionIntentServiceServer::new(Intents {
                    app: self.app.clone(),
                    watches,
                })
                .max_decoding_message_size(self.max_request_bytes),
            )
            .add_service(
                PolicyServiceServer::new(Policies(self.app.clone()))
                    .max_decoding_message_size(self.max_request_bytes),
            )
            .serve_with_incoming_shutdown(
                accepted(self.listener),
                shutdown.clone().cancelled_owned(),
            )
            .await;

        relay_shutdown.cancel();
        let relay_ended = match relay.await {
            Ok(ended) => ended,
            Err(error) => Err(DaemonError::RelayFailed(error.to_string())),
        };
        if let Some(admin_server) = admin_server {
            match admin_server.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(target: "daemon", %error, "admin service failed"),
                Err(error) => {
                    tracing::error!(target: "daemon", %error, "admin service task failed")
                }
            }
        }
        self.app.store().flush().await?;
        relay_ended?;
        info!(target: "daemon", "stopped");
        served.map_err(|error| DaemonError::Server(error.to_string()))
    }
}

/// The services the application port serves, as reflection lists them.
const APPLICATION_SERVICES: [&str; 5] = [
    "latchkey.v1.AccountService",
    "latchkey.v1.SessionService",
    "latchkey.v1.TransactionIntentService",
    "latchkey.v1.PolicyService",
    "grpc.health.v1.Health",
];

/// gRPC reflection, v1 and the older v1alpha that grpcurl and other tools still ask for,
/// listing exactly `services` (and itself): a port never lists what it does not serve.
fn reflection_services(
    services: &[&str],
) -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    DaemonError,
> {
    let builder = || {
        let mut builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection");
        for service in services {
            builder = builder.with_service_name(*service);
        }
        builder
    };
    let failed = |error: tonic_reflection::server::Error| DaemonError::Server(error.to_string());
    Ok((
        builder().build_v1().map_err(failed)?,
        builder().build_v1alpha().map_err(failed)?,
    ))
}

/// Most streams one HTTP/2 connection may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`):
/// a client needing more opens another connection, and one connection cannot pin the
/// daemon's tasks.
pub const MAX_CONCURRENT_STREAMS: u32 = 256;

/// Largest header block a request may send, in bytes (`SETTINGS_MAX_HEADER_LIST_SIZE`): an
/// API key and a few metadata entries fit many times over.
pub const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;

/// How often an idle connection is pinged, and how long its answer may take before the
/// connection is closed: a peer that went away without closing frees its connection (and
/// its watch streams' slots) within their sum.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// See [`KEEPALIVE_INTERVAL`].
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A gRPC server builder with the HTTP/2 limits above, presenting `tls` when given.
/// The connections `listener` accepts, with Nagle's algorithm off. tonic sets `TCP_NODELAY`
/// only on listeners it binds itself; on these, a response's headers, message and trailers
/// would otherwise wait for the peer's delayed ACK, some 40 ms a call.
fn accepted(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
}

/// How long a browser may cache the answer to a CORS preflight.
const CORS_MAX_AGE: Duration = Duration::from_secs(600);

/// CORS for gRPC-web calls from pages of `origins`: what they may send (the gRPC-web
/// headers, a client's stamp, or an API key) and read (the call's status and its details).
fn browser_cors(origins: Vec<http::HeaderValue>) -> tower_http::cors::CorsLayer {
    use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName};
    let allowed = [
        CONTENT_TYPE,
        AUTHORIZATION,
        HeaderName::from_static(crate::auth::stamp::STAMP_HEADER),
        HeaderName::from_static("x-grpc-web"),
        HeaderName::from_static("x-user-agent"),
        HeaderName::from_static("grpc-timeout"),
    ];
    let exposed = [
        HeaderName::from_static("grpc-status"),
        HeaderName::from_static("grpc-message"),
        HeaderName::from_static("grpc-status-details-bin"),
    ];
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::AllowOrigin::list(origins))
        .allow_methods([http::Method::POST])
        .allow_headers(allowed)
        .expose_headers(exposed)
        .max_age(CORS_MAX_AGE)
}

fn server_builder(tls: Option<&TlsIdentity>) -> Result<Server, DaemonError> {
    let builder = Server::builder()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT));
    let Some(tls) = tls else {
        return Ok(builder);
    };
    // alloy's dependencies enable rustls's second crypto backend too, so rustls cannot pick
    // one by itself: name ring. A provider installed already (by an embedding caller, or
    // the other server) is kept.
    let _ = rustls::crypto::ring::default_provider().install_default();
    builder
        .tls_config(
            ServerTlsConfig::new()
                .identity(Identity::from_pem(&tls.cert_pem, tls.key_pem.as_slice())),
        )
        .map_err(|error| DaemonError::Server(format!("tls: {error}")))
}
