//! The application layer: each thing a client can ask of latchkey, as one function over the
//! store, the chain and the relay. It validates against state (the API edge has already
//! validated the input's form), decides with the pure state machines, writes one atomic store
//! transaction, and only then lets the relay act on chain.

mod access;
mod admin;
mod error;
mod observe;
mod policies;
mod sponsor;

use std::{collections::HashMap, sync::Arc, time::Duration};

use alloy::primitives::{Address, Bytes, U256};
use tokio::sync::{Notify, broadcast, watch};
use tracing::info;

pub use self::{
    access::MAX_KEY_NAME_CHARS,
    admin::{ChainHeadView, MAX_PAUSE_REASON_CHARS, RelayProgress, RelayerView, StatusView},
    error::{AppError, reasons},
    policies::{NewPolicy, PaymasterView, PolicyView, WindowView},
    sponsor::Sponsor,
};
use crate::{
    auth::{Gate, TenantId, Visibility},
    chain::{
        ChainError,
        client::ChainClient,
        ops,
        user_operation::{UserOperation, canonical_signature, is_signed_by, sign_user_op_hash},
    },
    intent::{Intent, IntentEvent, IntentId, IntentKind, IntentStatus, Interaction},
    keys,
    metrics::Metrics,
    policy::{Operation, PolicyId},
    session::{
        KeyCustody, Permissions, Session, SessionEvent, SessionId, SessionStatus, Usage,
        rules::{self, CheckContext},
    },
    store::{CreateIntent, IntentFilter, Page, PageRequest, SessionFilter, Store, StoreError},
};

/// Refuses anything but an ACTIVE session.
fn check_active(session: &Session) -> Result<(), AppError> {
    if session.status != SessionStatus::Active {
        return Err(AppError::precondition(
            reasons::SESSION_NOT_ACTIVE,
            "session_status",
            format!(
                "{} is {}, not SESSION_STATUS_ACTIVE",
                session.id.resource_name(),
                session.status.api_name()
            ),
        ));
    }
    Ok(())
}

/// Most intents one session may have waiting for their signature at once. An unsigned
/// intent reserves the session's limits and its policy's until it is signed or expires, so
/// without a bound one caller could tie up a policy with requests it never signs.
pub const MAX_UNSIGNED_INTENTS_PER_SESSION: usize = 8;

/// How often a write that lost an optimistic-concurrency race is retried.
const CONFLICT_RETRIES: usize = 8;

/// Settings of the application layer.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Refuse intents when the session's window closes within this many seconds.
    pub window_margin_secs: u64,
    /// How long an intent or a registration waits for its signature before it expires.
    pub signature_timeout: Duration,
    /// The paymaster policies sponsor through; `None` when sponsorship is off.
    pub sponsor: Option<Sponsor>,
    /// The key held session keys are sealed under in the store.
    pub master_key: keys::MasterKey,
    /// Who may call, and how often.
    pub gate: Arc<Gate>,
}

/// What a client asks for when it creates a session.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The tenant the session belongs to: the caller's.
    pub tenant: TenantId,
    /// The account owner.
    pub owner: Address,
    /// The account's salt.
    pub salt: U256,
    /// Who holds the key; for [`KeyCustody::External`], the key's address.
    pub custody: KeyCustody,
    /// The key's address, for external custody.
    pub external_key: Option<Address>,
    /// Start of the window (exclusive), unix seconds; 0 for no start.
    pub valid_after: u64,
    /// End of the window, unix seconds.
    pub valid_until: u64,
    /// What the key may do.
    pub permissions: Permissions,
    /// The policy that sponsors the session's operations, if any.
    pub policy: Option<PolicyId>,
}

/// An account as latchkey sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    /// Its address.
    pub address: Address,
    /// Whether it has code.
    pub deployed: bool,
    /// Its owner, when known.
    pub owner: Option<Address>,
    /// Its salt, when latchkey knows the account from a session.
    pub salt: Option<U256>,
}

/// A session with the intent that waits for the owner's signature, if any.
#[derive(Debug, Clone)]
pub struct SessionView {
    /// The session.
    pub session: Session,
    /// Its registration intent.
    pub registration: Intent,
    /// Its revocation intent, once requested.
    pub revocation: Option<Intent>,
}

impl SessionView {
    /// The intent whose userOpHash the owner must sign next, if the session waits for a
    /// signature: its registration or its revocation.
    pub fn pending_signature(&self) -> Option<&Intent> {
        [Some(&self.registration), self.revocation.as_ref()]
            .into_iter()
            .flatten()
            .find(|intent| intent.status == IntentStatus::PendingSignature)
    }
}

/// The application: cheap to clone, shared by every API handler and the relay.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    chain: ChainClient,
    config: AppConfig,
    metrics: Metrics,
    updates: broadcast::Sender<Intent>,
    relay_wakeup: Arc<Notify>,
    relay_progress: watch::Sender<RelayProgress>,
    started_at_ms: u64,
    /// The span of each intent that has not reached a final status.
    intent_spans: std::sync::Mutex<HashMap<IntentId, tracing::Span>>,
}

impl App {
    /// Builds the application over its parts. `relay_wakeup` is notified whenever an intent
    /// is queued.
    pub fn new(
        store: Store,
        chain: ChainClient,
        config: AppConfig,
        relay_wakeup: Arc<Notify>,
    ) -> Self {
        let (updates, _) = broadcast::channel(1024);
        Self {
            inner: Arc::new(Inner {
                store,
                chain,
                config,
                metrics: Metrics::default(),
                updates,
                relay_wakeup,
                relay_progress: watch::Sender::new(RelayProgress::default()),
                started_at_ms: now_ms(),
                intent_spans: std::sync::Mutex::default(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
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

    /// Every intent change, as it is written. Watchers subscribe before reading the current
    /// state, so they miss nothing in between.
    pub fn subscribe(&self) -> broadcast::Receiver<Intent> {
        self.inner.updates.subscribe()
    }

    /// Tells watchers about written intents and wakes the relay when one is queued. Every
    /// durable change of an intent passes here, so here is where its life is logged: one
    /// record per change, whichever task made it, inside the intent's span.
    pub fn publish(&self, intents: &[&Intent]) {
        for intent in intents {
            let span = self.intent_span(intent);
            let transaction = intent
                .submission
                .as_ref()
                .map(|submission| submission.tx_hash.to_string());
            info!(
                target: "intent",
                parent: &span,
                status = ?intent.status,
                transaction,
                block = intent.result.as_ref().map(|result| result.block_number),
                reason = intent.failure_reason.as_deref(),
                "intent changed"
            );
            if intent.status.is_final() {
                // The last handle goes with `span` below: the span closes, and its close
                // record tells how long the intent took from its request to its end.
                self.lock_intent_spans().remove(&intent.id);
            }
            // No receiver is fine: nobody watches.
            let _ = self.inner.updates.send((*intent).clone());
            if intent.status == IntentStatus::Queued {
                self.wake_relay();
            }
        }
    }

    /// The span of `intent`, carrying its id, userOpHash and kind: opened at its first
    /// change (under the request that made it) and kept until its last, so every record of
    /// its life is inside one span. A restart opens a new one at the next change.
    fn intent_span(&self, intent: &Intent) -> tracing::Span {
        self.lock_intent_spans()
            .entry(intent.id.clone())
            .or_insert_with(|| {
                tracing::info_span!(
                    target: "intent",
                    "intent",
                    intent = %intent.id,
                    user_op_hash = %intent.user_op_hash,
                    kind = ?intent.kind,
                )
            })
            .clone()
    }

    fn lock_intent_spans(&self) -> std::sync::MutexGuard<'_, HashMap<IntentId, tracing::Span>> {
        // A panic while holding the lock leaves the map whole: take it back.
        self.inner
            .intent_spans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Has the relay look for work now rather than at its next poll.
    pub fn wake_relay(&self) {
        self.inner.relay_wakeup.notify_one();
    }

    /// When the application started, in Unix milliseconds.
    pub fn started_at_ms(&self) -> u64 {
        self.inner.started_at_ms
    }

    /// What the relay's last successful pass saw.
    pub fn relay_progress(&self) -> RelayProgress {
        *self.inner.relay_progress.borrow()
    }

    /// Called by the relay after each successful pass.
    pub fn report_relay_progress(&self, progress: RelayProgress) {
        self.inner.relay_progress.send_replace(progress);
    }

    // -----------------------------------------------------------------------------------
    // Accounts
    // -----------------------------------------------------------------------------------

    /// The counterfactual address of the account of (owner, salt).
    pub async fn account_address(&self, owner: Address, salt: U256) -> Result<Address, AppError> {
        Ok(self.chain().account_address(owner, salt).await?)
    }

    /// An account: deployed or not, and its owner when known. The chain's facts are public;
    /// the salt comes only from a session `visibility` covers, so one tenant never learns
    /// from latchkey which accounts another has sessions on.
    pub async fn account(
        &self,
        address: Address,
        visibility: &Visibility,
    ) -> Result<AccountView, AppError> {
        let deployed = self.chain().is_deployed(address).await?;
        let known = self
            .store()
            .list_sessions(
                &SessionFilter {
                    tenant: visibility.tenant().cloned(),
                    account: Some(address),
                    status: None,
                },
                &PageRequest {
                    size: 1,
                    token: None,
                },
            )?
            .items
            .into_iter()
            .next();
        let owner = if deployed {
            Some(self.chain().owner_of(address).await?)
        } else {
            known.as_ref().map(|session| session.owner)
        };
        Ok(AccountView {
            address,
            deployed,
            owner,
            salt: known.map(|session| session.salt),
        })
    }

    // -----------------------------------------------------------------------------------
    // Sessions
    // -----------------------------------------------------------------------------------

    /// Creates a session in `PendingSignature`, with the registration operation the owner
    /// must sign. Nothing is written unless every check passes.
    pub async fn create_session(&self, request: NewSession) -> Result<SessionView, AppError> {
        let chain = self.chain();
        let now = chain.inclusion_time().await?;
        if request.valid_until <= now.saturating_add(self.config().window_margin_secs) {
            return Err(AppError::invalid(
                "valid_until",
                format!(
                    "must be more than {} s after now ({now}, the later of the latest block's \
                     time and the wall clock)",
                    self.config().window_margin_secs
                ),
            ));
        }
        if request.valid_after >= request.valid_until {
            return Err(AppError::invalid(
                "valid_after",
                "must be before valid_until",
            ));
        }
        let account = chain.account_address(request.owner, request.salt).await?;
        let deployed = chain.is_deployed(account).await?;
        if deployed {
            let owner = chain.owner_of(account).await?;
            if owner != request.owner {
                return Err(AppError::precondition(
                    reasons::OWNER_MISMATCH,
                    "owner",
                    format!(
                        "account {account} is now owned by {owner}, not {}",
                        request.owner
                    ),
                ));
            }
        }
        let policy = self.named_policy(request.policy.as_ref(), &request.tenant)?;
        if let Some(policy) = &policy {
            policy.check(
                Operation::Registration {
                    deploys_account: !deployed,
                },
                chain.chain_id(),
            )?;
        }
        if let Some(policy) = &policy
            && let Err(refusal) = policy.check(Operation::Revocation, chain.chain_id())
        {
            // Its player holds no ETH: if the policy would not pay to revoke the key,
            // nobody could.
            return Err(AppError::precondition(
                refusal.reason(),
                refusal.rule(),
                format!("{refusal}; a session a policy sponsors must be revocable under it"),
            ));
        }
        let deployment = chain.deployment();
        for permission in &request.permissions.calls {
            if [account, deployment.entry_point, Address::ZERO].contains(&permission.target) {
                return Err(AppError::invalid(
                    "permissions.calls.target",
                    format!("{} is the account or the EntryPoint", permission.target),
                ));
            }
        }

        let held = match request.custody {
            KeyCustody::Held => Some(keys::generate()),
            KeyCustody::External => None,
        };
        let key = match (&held, request.external_key) {
            (Some(generated), _) => generated.address,
            (None, Some(address)) => address,
            (None, None) => return Err(AppError::invalid("key_address", "required for EXTERNAL")),
        };
        if key == request.owner || key == account || key == Address::ZERO {
            return Err(AppError::invalid(
                "key_address",
                "must differ from the owner, the account and the zero address",
            ));
        }

        let now_ms = now_ms();
        let intent_id = IntentId::generate();
        let fees = chain.fees().await?;
        let permission_count = request.permissions.calls.len() as u128;
        let mut op = UserOperation {
            sender: account,
            nonce: ops::owner_nonce(intent_id.as_str().as_bytes()),
            call_data: ops::registration_call_data(
                account,
                key,
                request.valid_after,
                request.valid_until,
                request.permissions.to_contract(),
            ),
            call_gas_limit: ops::REGISTRATION_CALL_GAS
                + ops::REGISTRATION_CALL_GAS_PER_PERMISSION * permission_count,
            verification_gas_limit: ops::OWNER_VERIFICATION_GAS
                + if deployed { 0 } else { ops::DEPLOYMENT_GAS },
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            ..Default::default()
        };
        if !deployed {
            op.factory = Some(deployment.factory);
            op.factory_data = ops::factory_data(request.owner, request.salt);
        }
        let charge = self.finish_op(
            policy.as_ref(),
            Operation::Registration {
                deploys_account: !deployed,
            },
            &mut op,
            now,
            now_ms,
        )?;
        let user_op_hash = op.hash_v08(deployment.entry_point, chain.chain_id())?;

        let mut session = Session {
            tenant: request.tenant,
            id: SessionId::generate(),
            account,
            owner: request.owner,
            salt: request.salt,
            chain_id: chain.chain_id(),
            key,
            custody: request.custody,
            valid_after: request.valid_after,
            valid_until: request.valid_until,
            permissions: request.permissions,
            policy: request.policy,
            status: SessionStatus::PendingSignature,
            registration_intent: intent_id.clone(),
            revocation_intent: None,
            failure_reason: None,
            usage: Usage::default(),
            next_intent_lane: 0,
            revision: 0,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        };
        // A key registered again (an EXTERNAL key can be) must not reuse its old lanes.
        session.next_intent_lane = ops::first_intent_lane(session.id.as_str().as_bytes());
        let mut registration = Intent::new(
            intent_id,
            IntentKind::Registration,
            &session,
            (op, user_op_hash),
            IntentStatus::PendingSignature,
            now_ms,
        );
        registration.signature_deadline_ms =
            Some(now_ms.saturating_add(self.signature_timeout_ms()));
        registration.charge = charge;
        let sealed = held
            .as_ref()
            .map(|generated| {
                keys::seal(
                    &self.config().master_key,
                    generated.address,
                    &generated.secret,
                )
                .map(|sealed| (generated.address, sealed))
            })
            .transpose()
            .map_err(|_| AppError::Internal("sealing the new session key failed"))?;
        let held_key = sealed
            .as_ref()
            .map(|(address, sealed)| (*address, sealed.as_slice()));
        self.store()
            .create_session(&mut session, &mut registration, held_key)?;
        // Acknowledged means durable: the client may act on the answer at once.
        self.store().flush().await?;
        info!(target: "session", session = %session.id, tenant = %session.tenant, %account, key = %key, "created");
        self.session(&session.id, &Visibility::All)
    }

    /// A session `visibility` covers; any other is not found, exactly like one that never
    /// existed, so a tenant learns nothing of another's ids.
    fn visible_session(
        &self,
        id: &SessionId,
        visibility: &Visibility,
    ) -> Result<Session, AppError> {
        self.store()
            .session(id)?
            .filter(|session| visibility.sees(&session.tenant))
            .ok_or_else(|| AppError::not_found("name", id.resource_name()))
    }

    /// A session with its registration and revocation intents.
    pub fn session(
        &self,
        id: &SessionId,
        visibility: &Visibility,
    ) -> Result<SessionView, AppError> {
        let session = self.visible_session(id, visibility)?;
        let registration = self
            .store()
            .intent(&session.registration_intent)?
            .ok_or(AppError::Internal("a session's registration is missing"))?;
        let revocation = match &session.revocation_intent {
            Some(id) => Some(
                self.store()
                    .intent(id)?
                    .ok_or(AppError::Internal("a session's revocation is missing"))?,
            ),
            None => None,
        };
        Ok(SessionView {
            session,
            registration,
            revocation,
        })
    }

    /// Sessions, newest first.
    pub fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: &PageRequest,
    ) -> Result<Page<SessionView>, AppError> {
        let sessions = self.store().list_sessions(filter, page)?;
        let items = sessions
            .items
            .iter()
            .map(|session| self.session(&session.id, &Visibility::All))
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            next_token: sessions.next_token,
        })
    }

    /// Attaches the owner's signature to the session's pending registration or revocation,
    /// and queues it for relay. A signature from anyone but the owner is refused here,
    /// before any gas is spent.
    pub async fn submit_session_signature(
        &self,
        id: &SessionId,
        visibility: &Visibility,
        signature: Bytes,
    ) -> Result<SessionView, AppError> {
        let signature = canonical(&signature)?;
        for _ in 0..CONFLICT_RETRIES {
            let view = self.session(id, visibility)?;
            let mut session = view.session;
            let nothing_pending = || {
                AppError::precondition(
                    reasons::NO_SIGNATURE_PENDING,
                    "status",
                    format!(
                        "the session is {}: no signature is pending",
                        session.status.api_name()
                    ),
                )
            };
            if session.status.is_final() {
                return Err(nothing_pending());
            }
            let mut intent = [Some(view.registration), view.revocation]
                .into_iter()
                .flatten()
                .find(|intent| intent.status == IntentStatus::PendingSignature)
                .ok_or_else(nothing_pending)?;
            check_deadline(&intent)?;
            if intent.kind == IntentKind::Registration
                && self.chain().inclusion_time().await? >= session.valid_until
            {
                return Err(AppError::precondition(
                    reasons::SESSION_WINDOW_CLOSED,
                    "valid_until",
                    "the session's window has closed; create a new session",
                ));
            }
            if !is_signed_by(intent.user_op_hash, &signature, session.owner) {
                return Err(AppError::invalid(
                    "signature",
                    format!(
                        "not a signature of {} by the account owner {}",
                        intent.user_op_hash, session.owner
                    ),
                ));
            }
            let now_ms = now_ms();
            intent.user_op.signature = signature.clone();
            intent.apply(&IntentEvent::Signed, now_ms)?;
            session.settle(&intent, now_ms)?;
            match self.store().save(&mut [&mut session], &mut [&mut intent]) {
                Ok(()) => {
                    self.store().flush().await?;
                    self.publish(&[&intent]);
                    info!(target: "session", session = %id, user_op_hash = %intent.user_op_hash, "owner signed");
                    return self.session(id, &Visibility::All);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(AppError::Busy)
    }

    /// Starts revoking an active session: a revocation operation for the owner to sign.
    pub async fn revoke_session(
        &self,
        id: &SessionId,
        visibility: &Visibility,
    ) -> Result<SessionView, AppError> {
        // Not found before anything is asked of the chain, whoever's session it is.
        self.visible_session(id, visibility)?;
        let chain = self.chain();
        let inclusion_time = chain.inclusion_time().await?;
        let fees = chain.fees().await?;
        for _ in 0..CONFLICT_RETRIES {
            let mut session = self
                .store()
                .session(id)?
                .ok_or_else(|| AppError::not_found("name", id.resource_name()))?;
            if session.status != SessionStatus::Active {
                return Err(AppError::precondition(
                    reasons::SESSION_NOT_REVOCABLE,
                    "status",
                    format!(
                        "only a SESSION_STATUS_ACTIVE session can be revoked; this one is {}",
                        session.status.api_name()
                    ),
                ));
            }
            let now_ms = now_ms();
            let intent_id = IntentId::generate();
            let mut op = UserOperation {
                sender: session.account,
                nonce: ops::owner_nonce(intent_id.as_str().as_bytes()),
                call_data: ops::revocation_call_data(session.account, session.key),
                call_gas_limit: ops::REVOCATION_CALL_GAS,
                verification_gas_limit: ops::OWNER_VERIFICATION_GAS,
                max_fee_per_gas: fees.max_fee_per_gas,
                max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
                ..Default::default()
            };
            // A session sponsored from its registration is sponsored to its revocation: its
            // policy covered revocation when the session was created, and admits a
            // revocation even when disabled or at its limits.
            let policy = self.named_policy(session.policy.as_ref(), &session.tenant)?;
            let charge = self.finish_op(
                policy.as_ref(),
                Operation::Revocation,
                &mut op,
                inclusion_time,
                now_ms,
            )?;
            let user_op_hash = op.hash_v08(chain.deployment().entry_point, chain.chain_id())?;
            let mut revocation = Intent::new(
                intent_id.clone(),
                IntentKind::Revocation,
                &session,
                (op, user_op_hash),
                IntentStatus::PendingSignature,
                now_ms,
            );
            revocation.signature_deadline_ms =
                Some(now_ms.saturating_add(self.signature_timeout_ms()));
            revocation.charge = charge;
            session.apply(&SessionEvent::RevocationRequested, now_ms)?;
            session.revocation_intent = Some(intent_id);
            session.failure_reason = None;
            match self.store().create_intent(&mut session, &mut revocation) {
                Ok(_) => {
                    self.store().flush().await?;
                    info!(target: "session", session = %id, user_op_hash = %user_op_hash, "revocation requested");
                    return self.session(id, &Visibility::All);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(AppError::Busy)
    }

    // -----------------------------------------------------------------------------------
    // Transaction intents
    // -----------------------------------------------------------------------------------

    /// Creates an intent on an active session: checks it against the session's rules, builds
    /// its operation and, for a held key, signs and queues it. With an idempotency key, a
    /// repeated request returns the first intent and writes nothing.
    pub async fn create_intent(
        &self,
        session_id: &SessionId,
        visibility: &Visibility,
        interactions: Vec<Interaction>,
        idempotency_key: Option<String>,
        policy: Option<PolicyId>,
    ) -> Result<Intent, AppError> {
        // Whose session it is decides first: another tenant's idempotency keys say nothing.
        let session = self.visible_session(session_id, visibility)?;
        if let Some(key) = &idempotency_key
            && let Some(existing) = self.store().intent_by_idempotency_key(session_id, key)?
        {
            return same_request(existing, &interactions, policy.as_ref());
        }
        let chain = self.chain();
        let deployment = chain.deployment();
        // What the chain says is read once, here: the retry loop below only re-reads the
        // session and re-decides, so concurrent intents on one session (which each write
        // its usage) race over microseconds, not over RPC round trips.
        check_active(&session)?;
        let ctx = CheckContext {
            now: chain.inclusion_time().await?,
            window_margin_secs: self.config().window_margin_secs,
            forbidden: [session.account, deployment.entry_point],
        };
        // Refuse what the rules refuse before asking the chain anything about the calls.
        rules::check_intent(&session, &interactions, 0, &ctx)?;
        // The intent's own policy, else its session's: named means sponsored or refused.
        let named = policy;
        let policy =
            self.named_policy(named.as_ref().or(session.policy.as_ref()), &session.tenant)?;
        if let Some(policy) = &policy {
            policy.check(Operation::Calls(&interactions), chain.chain_id())?;
        }
        let call_gas = chain
            .estimate_calls(session.account, &interactions)
            .await
            .map_err(|error| match error {
                // A call that would revert is the request's fault; anything else is the
                // chain's, and the client should retry.
                ChainError::CallWouldRevert { .. } => AppError::precondition(
                    reasons::CALL_WOULD_REVERT,
                    "simulation",
                    error.to_string(),
                ),
                other => AppError::Chain(other),
            })?;
        let fees = chain.fees().await?;
        for _ in 0..CONFLICT_RETRIES {
            let mut session = self
                .store()
                .session(session_id)?
                .ok_or_else(|| AppError::not_found("session", session_id.resource_name()))?;
            check_active(&session)?;
            if session.custody == KeyCustody::External {
                self.check_unsigned_room(&session)?;
            }
            let calls = interactions.len() as u128;
            let mut op = UserOperation {
                sender: session.account,
                nonce: ops::session_nonce(session.key, session.next_intent_lane),
                call_data: ops::intent_call_data(&interactions),
                call_gas_limit: ops::call_gas_limit(call_gas),
                verification_gas_limit: ops::SESSION_VERIFICATION_GAS
                    + ops::SESSION_VERIFICATION_GAS_PER_CALL * calls,
                max_fee_per_gas: fees.max_fee_per_gas,
                max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
                ..Default::default()
            };
            let now_ms = now_ms();
            let charge = self.finish_op(
                policy.as_ref(),
                Operation::Calls(&interactions),
                &mut op,
                ctx.now,
                now_ms,
            )?;
            // A sponsored operation costs the account nothing, so it takes nothing of the
            // session's gas budget.
            let reserved =
                rules::check_intent(&session, &interactions, ops::worst_case_cost(&op), &ctx)?;
            let user_op_hash = op.hash_v08(deployment.entry_point, chain.chain_id())?;

            let (status, deadline) = match session.custody {
                KeyCustody::Held => {
                    let sealed = self
                        .store()
                        .held_key(session.key)?
                        .ok_or(AppError::Internal("held key missing from the store"))?;
                    let signer = keys::signer(&self.config().master_key, session.key, &sealed)
                        .map_err(|error| {
                            tracing::error!(target: "session", session = %session.id, %error, "held key unusable");
                            AppError::Internal("held key unusable")
                        })?;
                    op.signature = sign_user_op_hash(&signer, user_op_hash).await?;
                    (IntentStatus::Queued, None)
                }
                KeyCustody::External => (
                    IntentStatus::PendingSignature,
                    Some(now_ms.saturating_add(self.signature_timeout_ms())),
                ),
            };
            let mut intent = Intent::new(
                IntentId::generate(),
                IntentKind::Call,
                &session,
                (op, user_op_hash),
                status,
                now_ms,
            );
            intent.interactions = interactions.clone();
            intent.idempotency_key = idempotency_key.clone();
            intent.signature_deadline_ms = deadline;
            intent.reserved = reserved;
            intent.charge = charge;
            session.usage = session
                .usage
                .checked_add(reserved)
                .ok_or(AppError::Internal("session usage overflow"))?;
            session.next_intent_lane =
                session.next_intent_lane.checked_add(1).ok_or_else(|| {
                    AppError::precondition(
                        reasons::SESSION_LANES_EXHAUSTED,
                        "call_limit",
                        "the session has no nonce lanes left; create a new session",
                    )
                })?;
            session.updated_at_ms = now_ms;
            match self.store().create_intent(&mut session, &mut intent) {
                Ok(CreateIntent::Created) => {
                    self.store().flush().await?;
                    self.publish(&[&intent]);
                    return Ok(intent);
                }
                Ok(CreateIntent::Existing(existing)) => {
                    return same_request(*existing, &interactions, named.as_ref());
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(AppError::Busy)
    }

    /// Attaches the session key holder's signature to an EXTERNAL intent and queues it.
    pub async fn submit_intent_signature(
        &self,
        id: &IntentId,
        visibility: &Visibility,
        signature: Bytes,
    ) -> Result<Intent, AppError> {
        let signature = canonical(&signature)?;
        for _ in 0..CONFLICT_RETRIES {
            let mut intent = self.intent(id, visibility)?;
            if intent.kind != IntentKind::Call {
                return Err(AppError::precondition(
                    reasons::WRONG_SIGNATURE_METHOD,
                    "name",
                    "a registration or revocation is signed with SubmitSessionSignature",
                ));
            }
            if intent.status != IntentStatus::PendingSignature {
                return Err(AppError::precondition(
                    reasons::NO_SIGNATURE_PENDING,
                    "status",
                    format!(
                        "the intent is {}: no signature is pending",
                        intent.status.api_name()
                    ),
                ));
            }
            let session = self
                .store()
                .session(&intent.session)?
                .ok_or(AppError::Internal("an intent's session is missing"))?;
            check_deadline(&intent)?;
            check_active(&session)?;
            if !is_signed_by(intent.user_op_hash, &signature, session.key) {
                return Err(AppError::invalid(
                    "signature",
                    format!(
                        "not a signature of {} by the session key {}",
                        intent.user_op_hash, session.key
                    ),
                ));
            }
            intent.user_op.signature = signature.clone();
            intent.apply(&IntentEvent::Signed, now_ms())?;
            match self.store().save(&mut [], &mut [&mut intent]) {
                Ok(()) => {
                    self.store().flush().await?;
                    self.publish(&[&intent]);
                    return self.intent(id, &Visibility::All);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(AppError::Busy)
    }

    /// An intent of any kind (a session's registration and revocation are intents too)
    /// that `visibility` covers; any other is not found.
    pub fn intent(&self, id: &IntentId, visibility: &Visibility) -> Result<Intent, AppError> {
        self.store()
            .intent(id)?
            .filter(|intent| visibility.sees(&intent.tenant))
            .ok_or_else(|| AppError::not_found("name", id.resource_name()))
    }

    /// Intents of every kind `filter` admits, newest first.
    pub fn list_intents(
        &self,
        filter: &IntentFilter,
        page: &PageRequest,
    ) -> Result<Page<Intent>, AppError> {
        Ok(self.store().list_intents(filter, page)?)
    }

    /// Refuses one more unsigned intent on `session` when it has
    /// [`MAX_UNSIGNED_INTENTS_PER_SESSION`] already. Read inside the write's retry loop: every
    /// new intent writes its session, so two racing requests cannot both take the last slot.
    fn check_unsigned_room(&self, session: &Session) -> Result<(), AppError> {
        let filter = IntentFilter {
            session: Some(session.id.clone()),
            status: Some(IntentStatus::PendingSignature),
            kind: Some(IntentKind::Call),
            ..IntentFilter::default()
        };
        let page = PageRequest {
            size: MAX_UNSIGNED_INTENTS_PER_SESSION,
            token: None,
        };
        let waiting = self.store().list_intents(&filter, &page)?.items.len();
        if waiting >= MAX_UNSIGNED_INTENTS_PER_SESSION {
            return Err(AppError::Exhausted {
                reason: reasons::UNSIGNED_LIMIT_REACHED,
                limit: "unsigned intents per session",
                message: format!(
                    "{} has {waiting} intents waiting for their signature, the most one session \
                     may have; sign them (SubmitIntentSignature) or let them expire at their \
                     signature_deadline",
                    session.id.resource_name()
                ),
            });
        }
        Ok(())
    }

    fn signature_timeout_ms(&self) -> u64 {
        u64::try_from(self.config().signature_timeout.as_millis()).unwrap_or(u64::MAX)
    }
}

/// Now, unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The canonical form of a submitted signature, or the error naming the field.
fn canonical(signature: &[u8]) -> Result<Bytes, AppError> {
    canonical_signature(signature)
        .ok_or_else(|| AppError::invalid("signature", "not a valid 65-byte ECDSA signature"))
}

/// Refuses a signature that arrives after the intent's deadline, even if the relay has not
/// yet marked the intent EXPIRED.
fn check_deadline(intent: &Intent) -> Result<(), AppError> {
    if intent
        .signature_deadline_ms
        .is_some_and(|deadline| deadline <= now_ms())
    {
        return Err(AppError::precondition(
            reasons::SIGNATURE_DEADLINE_PASSED,
            "signature_deadline",
            "the signature arrived after the deadline; create the intent or session again",
        ));
    }
    Ok(())
}

/// The intent stored under an idempotency key, if the repeated request asks for the same
/// calls (and, when it names one, the same policy); a key reused for a different request is
/// refused rather than silently answered.
fn same_request(
    existing: Intent,
    interactions: &[Interaction],
    policy: Option<&PolicyId>,
) -> Result<Intent, AppError> {
    if let Some(policy) = policy
        && existing.charge.as_ref().map(|charge| &charge.policy) != Some(policy)
    {
        return Err(AppError::precondition(
            reasons::IDEMPOTENCY_KEY_REUSED,
            "idempotency_key",
            format!("already used by {} under another policy", existing.id),
        ));
    }
    let same = existing.interactions.len() == interactions.len()
        && existing
            .interactions
            .iter()
            .zip(interactions)
            .all(|(stored, asked)| {
                stored.to == asked.to && stored.value == asked.value && stored.data == asked.data
            });
    if !same {
        return Err(AppError::precondition(
            reasons::IDEMPOTENCY_KEY_REUSED,
            "idempotency_key",
            format!("already used by {} for different interactions", existing.id),
        ));
    }
    Ok(existing)
}
