//! The application layer: each thing a client can ask of latchkey, as one use case over the
//! store, the chain and the relay's handle, one file per resource. A use case validates
//! against state (the API edge has already validated the input's form), decides with the
//! pure state machines, writes one atomic store transaction (which tells its intent changes
//! on the store's events once durable), and only then lets the relay act on chain.
//!
//! - [`accounts`](App::account): counterfactual addresses and what the chain says of an
//!   account;
//! - `sessions`: create, sign, read, list and revoke sessions;
//! - `intents`: create, sign, read and list transaction intents;
//! - `policies`: gas sponsorship policies and the paymaster;
//! - `access`: API keys;
//! - `status`: the daemon's status and the relay's pause;
//! - `observe`: the levels behind the metrics, read at each scrape;
//! - `sponsor`: the paymaster's approvals, as a policy admits an operation;
//! - `bundler`: user operations of any v0.8 account, as the bundler JSON-RPC sends,
//!   estimates and looks them up;
//! - `paymaster_service`: the ERC-7677 paymaster service's approvals of such operations
//!   under a policy.

mod access;
mod accounts;
mod bundler;
mod error;
mod intents;
mod observe;
mod paymaster_service;
mod policies;
mod sessions;
mod sponsor;
mod status;

use std::{sync::Arc, time::Duration};

pub use self::{
    access::MAX_KEY_NAME_CHARS,
    accounts::AccountView,
    bundler::{BundlerConfig, BundlerRefusal, GasEstimate, GasPrice, has_receipt},
    error::{AppError, reasons},
    intents::MAX_UNSIGNED_INTENTS_PER_SESSION,
    paymaster_service::{PaymasterFields, calls_of},
    policies::{NewPolicy, PaymasterView, PolicyView, WindowView},
    sessions::{NewSession, SessionView},
    sponsor::Sponsor,
    status::{ChainHeadView, MAX_PAUSE_REASON_CHARS, RelayerView, StatusView},
};
use crate::{
    auth::Visibility,
    chain::client::ChainClient,
    clock::now_ms,
    intent::Intent,
    keys,
    metrics::Metrics,
    relay::RelayHandle,
    store::{LostRace, Record, SharedStore, StoreError},
};

/// Settings of the application layer.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Refuse intents when the session's window closes within this many seconds.
    pub window_margin_secs: u64,
    /// How long an intent or a registration waits for its signature before it expires.
    pub signature_timeout: Duration,
    /// How long a signed operation may wait in the relay's queue (the relay's own setting):
    /// part of the deadline a session key's operation carries.
    pub queue_timeout: Duration,
    /// The paymaster policies sponsor through; `None` when sponsorship is off.
    pub sponsor: Option<Sponsor>,
    /// The key held session keys are sealed under in the store.
    pub master_key: keys::MasterKey,
    /// Whether an admin token lets callers into the admin service (besides ADMIN keys).
    pub admin_token: bool,
    /// The bundler's limits.
    pub bundler: BundlerConfig,
}

/// The application: the context every use case runs in (store, chain, settings, metrics and
/// the relay's handle). Cheap to clone; every API handler holds one.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    store: SharedStore,
    chain: ChainClient,
    config: AppConfig,
    metrics: Arc<Metrics>,
    relay: RelayHandle,
    started_at_ms: u64,
}

impl App {
    /// Builds the application over its parts.
    pub fn new(
        store: SharedStore,
        chain: ChainClient,
        config: AppConfig,
        metrics: Arc<Metrics>,
        relay: RelayHandle,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                chain,
                config,
                metrics,
                relay,
                started_at_ms: now_ms(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &SharedStore {
        &self.inner.store
    }

    /// The chain view.
    pub fn chain(&self) -> &ChainClient {
        &self.inner.chain
    }

    /// The settings.
    pub fn config(&self) -> &AppConfig {
        &self.inner.config
    }

    /// The metrics this daemon exports.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The relay: its relayers, its progress, and its wake-up.
    pub fn relay(&self) -> &RelayHandle {
        &self.inner.relay
    }

    /// Every intent change from now on, once it is durable. Watchers subscribe before
    /// reading the current state, so they miss nothing in between.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Intent> {
        self.store().events().subscribe()
    }

    /// When the application started, in Unix milliseconds.
    pub fn started_at_ms(&self) -> u64 {
        self.inner.started_at_ms
    }

    fn signature_timeout_ms(&self) -> u64 {
        u64::try_from(self.config().signature_timeout.as_millis()).unwrap_or(u64::MAX)
    }
}

/// `record` when `visibility` covers its tenant (and, for a client, is its session or one
/// of its intents); any other is not found (by the request's `field` and its resource
/// `name`), exactly like one that never existed, so a tenant learns nothing of another's ids.
fn visible<T: Record>(
    record: Option<T>,
    visibility: &Visibility,
    field: &'static str,
    name: String,
) -> Result<T, AppError> {
    record
        .filter(|record| visibility.sees(record.tenant(), record.session()))
        .ok_or_else(|| AppError::not_found(field, name))
}

impl LostRace for AppError {
    fn lost_race(&self) -> bool {
        matches!(self, Self::Store(StoreError::Conflict { .. }))
    }

    fn gave_up() -> Self {
        Self::Busy
    }
}
