//! The relay engine: the one task that owns the relayer keys and their nonces, and the only
//! part of latchkey that sends transactions. It packs queued operations into `handleOps`
//! bundles, sends them from several relayers, replaces the ones that get stuck, follows them
//! into blocks and past reorgs, and carries each outcome back to the intent and its session.
//!
//! # Crash safety
//!
//! Every step is a store write made durable before the chain hears of it, so the store
//! always knows at least as much as the chain could:
//!
//! - a bundle's transaction hash (and every replacement's) is written with its intents,
//!   SUBMITTED, before it is broadcast;
//! - a transaction that is nowhere to be found (never broadcast, or dropped by the node) is
//!   given up only when the relayer's nonce is still unused, so it can never land later in
//!   place of the bundle that takes the nonce next;
//! - every operation has an EntryPoint nonce of its own, so if two transactions carrying it
//!   ever did land, the EntryPoint would refuse the second.
//!
//! # DROPPED is final
//!
//! An operation that carries a deadline (a session key's signed `validUntil`, or a paymaster
//! approval's) is DROPPED for being late only once that deadline is past, when the account
//! or the paymaster refuses it for good; until then it stays QUEUED, held back unsent once
//! it could no longer land in time, and a sponsored one keeps its charge. A caller that sees
//! DROPPED may retry without the first attempt ever executing.
//!
//! On start the first pass is the reconciliation: every SUBMITTED and INCLUDED intent is
//! looked up on chain (receipts, the relayers' nonces, the EntryPoint's nonces and its
//! `UserOperationEvent`s) before anything new is sent.

mod decode;
mod follow;
#[cfg(test)]
mod properties;
mod rebuild;
mod relayer;
mod send;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use alloy::{
    eips::BlockNumberOrTag,
    primitives::Address,
    providers::{DynProvider, Provider},
    signers::local::PrivateKeySigner,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use self::relayer::Relayer;
use crate::{
    chain::{
        ChainError,
        client::{ChainClient, inclusion_time},
        sponsor::parse_approval,
    },
    clock::{now_ms, wall_clock_secs},
    events::Events,
    intent::{Intent, IntentEvent, IntentKind, IntentStatus, InvalidIntentTransition},
    metrics::Metrics,
    session::{InvalidSessionTransition, Session, SessionEvent, SessionId, SessionStatus},
    store::{LostRace, RecordId, SharedStore, StoreError, retry_lost_races},
};

/// The name under which the gRPC health service reports the relay: SERVING while it reaches
/// the chain, NOT_SERVING while it cannot.
pub const HEALTH_SERVICE: &str = "latchkey.relay";

/// Why a relay step failed; the engine logs it and tries again on its next pass.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The chain could not be reached or refused a request.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A transaction could not be signed.
    #[error("signing the handleOps transaction failed: {0}")]
    Signing(String),
    /// A record changed under the engine; it will look again.
    #[error("a record changed concurrently")]
    Conflict,
    /// The engine asked a state machine for a transition it refuses: a bug, since the
    /// engine only acts on records in the statuses it read them in.
    #[error(transparent)]
    IntentTransition(#[from] InvalidIntentTransition),
    /// The same, for a session.
    #[error(transparent)]
    SessionTransition(#[from] InvalidSessionTransition),
    /// An intent's session is missing from the store.
    #[error("session {0} of a relayed intent is missing from the store")]
    MissingSession(SessionId),
}

/// A session that changed under the relay (an API call's write) is re-read and the
/// settlement redone; an intent that changed is not retried (see `Relay::commit`).
impl LostRace for RelayError {
    fn lost_race(&self) -> bool {
        matches!(
            self,
            Self::Store(StoreError::Conflict {
                record: RecordId::Session(_),
                ..
            })
        )
    }

    fn gave_up() -> Self {
        Self::Conflict
    }
}

impl From<alloy::transports::TransportError> for RelayError {
    fn from(error: alloy::transports::TransportError) -> Self {
        Self::Chain(error.into())
    }
}

/// Settings of the relay engine.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// How often the engine looks for work when nothing wakes it.
    pub poll_interval: Duration,
    /// Longest wait between passes while the chain is unreachable.
    pub max_backoff: Duration,
    /// Most transactions one relayer has sent and not yet seen included; past it,
    /// operations wait QUEUED and join the next bundle.
    pub max_in_flight: usize,
    /// Most gas one bundle's transaction may be given (its simulated gas plus the margin).
    pub max_bundle_gas: u128,
    /// Most operations one bundle may carry.
    pub max_ops_per_bundle: usize,
    /// Blocks, counting the inclusion block, before an inclusion is final.
    pub confirmations: u64,
    /// Blocks a bundle may wait unincluded before it is replaced with higher fees.
    pub bump_after_blocks: u64,
    /// How much a replacement raises the fees, in percent.
    pub fee_bump_percent: u64,
    /// How long a signed operation may wait in the queue before it is dropped.
    pub queue_timeout: Duration,
    /// How long, after a shutdown is requested, the engine follows what it already sent.
    pub shutdown_grace: Duration,
    /// How long an operation's window must stay open past the time it is sent at.
    pub window_margin_secs: u64,
    /// How long a rebuilt operation waits for its new signature (the intents' setting).
    pub signature_timeout: Duration,
    /// The key the SponsorPaymaster accepts approvals from, to approve a rebuilt sponsored
    /// operation again; `None` when sponsorship is off.
    pub sponsor_signer: Option<PrivateKeySigner>,
}

/// Whether a pass may send new bundles: not once a shutdown is under way, nor while the
/// operator has paused relaying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sending {
    On,
    Stopped,
}

/// Where the relay stands with the chain, for the health service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayHealth {
    /// The last pass reached the chain.
    Serving,
    /// The last pass could not reach the chain; the engine retries with backoff.
    NotServing,
}

/// What the relay's last successful pass saw; the relay reports it after every pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayProgress {
    /// The latest block the pass worked against; `None` before the first pass.
    pub head: Option<u64>,
    /// When the pass ran, in Unix milliseconds.
    pub at_ms: u64,
}

/// What the rest of the daemon holds of the relay: its relayers, how far its passes got,
/// and a way to wake it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RelayHandle {
    addresses: Arc<[Address]>,
    progress: watch::Receiver<RelayProgress>,
    events: Events,
}

impl RelayHandle {
    /// The relayers' addresses, in the configured order.
    pub fn addresses(&self) -> &[Address] {
        &self.addresses
    }

    /// What the relay's last successful pass saw.
    pub fn progress(&self) -> RelayProgress {
        *self.progress.borrow()
    }

    /// Has the relay look for work now rather than at its next poll.
    pub fn wake(&self) {
        self.events.wake_relay();
    }
}

/// The relay engine. Build it, then [`Relay::run`] it on a task.
pub struct Relay {
    store: SharedStore,
    chain: ChainClient,
    metrics: Arc<Metrics>,
    relayers: Vec<Relayer>,
    provider: DynProvider,
    config: RelayConfig,
    progress: watch::Sender<RelayProgress>,
    /// Which relayer the next pass offers its first bundle to, so the work spreads.
    turn: usize,
}

impl Relay {
    /// An engine relaying the intents of `store` on `chain` with `signers` (at least one),
    /// counting into `metrics`. It wakes whenever the store tells of a queued operation.
    pub fn new(
        store: SharedStore,
        chain: ChainClient,
        metrics: Arc<Metrics>,
        signers: Vec<PrivateKeySigner>,
        config: RelayConfig,
    ) -> Self {
        let provider = chain.provider().clone();
        Self {
            store,
            chain,
            metrics,
            relayers: signers.into_iter().map(Relayer::new).collect(),
            provider,
            config,
            progress: watch::Sender::new(RelayProgress::default()),
            turn: 0,
        }
    }

    /// The handle the rest of the daemon keeps once the engine runs.
    pub fn handle(&self) -> RelayHandle {
        RelayHandle {
            addresses: self
                .relayers
                .iter()
                .map(|relayer| relayer.address)
                .collect(),
            progress: self.progress.subscribe(),
            events: self.store.events().clone(),
        }
    }

    /// The relayers' addresses.
    pub fn addresses(&self) -> Vec<Address> {
        self.relayers
            .iter()
            .map(|relayer| relayer.address)
            .collect()
    }

    /// Runs until `shutdown` is cancelled, telling `health` whenever the relay's standing
    /// with the chain changes. A failed pass is retried after a wait that doubles from the
    /// poll interval up to the configured maximum, so an outage costs little and the engine
    /// recovers by itself when the chain is back.
    pub async fn run(mut self, shutdown: CancellationToken, health: watch::Sender<RelayHealth>) {
        info!(target: "relay", relayers = ?self.addresses(), "started");
        let mut failures: u32 = 0;
        health.send_replace(RelayHealth::Serving);
        loop {
            let wait = match self.pass().await {
                Ok(()) => {
                    if failures > 0 {
                        info!(target: "relay", "the chain answers again; relaying resumed");
                    }
                    report(&health, RelayHealth::Serving);
                    failures = 0;
                    self.config.poll_interval
                }
                Err(error) => {
                    if failures == 0 {
                        warn!(target: "relay", %error, "relay pass failed; retrying with backoff");
                    }
                    if matches!(error, RelayError::Chain(_)) {
                        report(&health, RelayHealth::NotServing);
                    }
                    failures = failures.saturating_add(1);
                    backoff(self.config.poll_interval, self.config.max_backoff, failures)
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                // While backing off, new intents do not cut the wait short.
                () = self.store.events().queued(), if failures == 0 => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        self.drain().await;
        info!(target: "relay", "stopped");
    }

    /// After a shutdown request: follows the bundles already sent until none is waiting
    /// for inclusion, or the grace period is over, sending nothing new. Every step is
    /// written as usual, so whatever is left is resumed at the next start.
    async fn drain(&mut self) {
        let deadline = tokio::time::Instant::now() + self.config.shutdown_grace;
        loop {
            let in_flight = match self.store.intents_in_status(IntentStatus::Submitted).await {
                Ok(intents) => intents.len(),
                Err(error) => {
                    warn!(target: "relay", %error, "cannot read what is in flight; stopping");
                    return;
                }
            };
            if in_flight == 0 {
                info!(target: "relay", "nothing left in flight");
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                warn!(
                    target: "relay",
                    in_flight,
                    "shutdown grace period over; the operations still in flight resume at the next start"
                );
                return;
            }
            info!(target: "relay", in_flight, "waiting for the bundles in flight before stopping");
            if let Err(error) = self.pass_with(Sending::Stopped).await {
                warn!(target: "relay", %error, "relay pass failed while draining");
            }
            tokio::time::sleep_until(
                (tokio::time::Instant::now() + self.config.poll_interval).min(deadline),
            )
            .await;
        }
    }

    /// One pass over everything that may need the engine, in the order that keeps the
    /// store ahead of the chain: what was sent is followed before anything new is sent.
    pub async fn pass(&mut self) -> Result<(), RelayError> {
        self.pass_with(Sending::On).await
    }

    async fn pass_with(&mut self, sending: Sending) -> Result<(), RelayError> {
        // One read of the latest block gives both the height the pass works against and,
        // with the wall clock, the time the next bundle will be judged at.
        let latest = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await?
            .ok_or(ChainError::NoLatestBlock)?;
        let head = latest.header.number;
        let now = inclusion_time(latest.header.timestamp, wall_clock_secs());
        // The operator's pause stops new bundles like a shutdown does; everything already
        // sent is still followed, so nothing in flight is left behind.
        let sending = match self.store.relay_pause().await? {
            Some(_) => Sending::Stopped,
            None => sending,
        };
        // An intent signed while it was being expired is simply looked at again next pass.
        match self.expire_unsigned().await {
            Ok(()) | Err(RelayError::Conflict) => {}
            Err(error) => return Err(error),
        }
        self.expire_sessions(now).await?;
        self.follow_submitted(head).await?;
        self.confirm_included(head).await?;
        self.drop_overdue(latest.header.timestamp).await?;
        if sending == Sending::On {
            self.send_queued(head, now).await?;
        }
        self.progress.send_replace(RelayProgress {
            head: Some(head),
            at_ms: now_ms(),
        });
        Ok(())
    }

    /// Ends the intents waiting for a signature that can no longer come to anything: past
    /// their signature deadline (EXPIRED), or of a session that has ended, revoked, expired
    /// or failed (DROPPED, since the key can never sign a valid operation again). Either way
    /// what they reserved of the session's limits and the policy's goes back at once.
    async fn expire_unsigned(&self) -> Result<(), RelayError> {
        let now = now_ms();
        let mut sessions: BTreeMap<SessionId, Option<SessionStatus>> = BTreeMap::new();
        let mut ended = Vec::new();
        for mut intent in self
            .store
            .intents_in_status(IntentStatus::PendingSignature)
            .await?
        {
            if intent
                .signature_deadline_ms
                .is_some_and(|deadline| deadline <= now)
            {
                intent.failure_reason =
                    Some("no signature was submitted before the deadline".into());
                ended.push((intent, IntentEvent::SignatureTimedOut));
                continue;
            }
            let (IntentKind::Call, Some(session)) = (intent.kind, &intent.session) else {
                continue;
            };
            if !sessions.contains_key(session) {
                let status = self
                    .store
                    .session(session)
                    .await?
                    .map(|session| session.status);
                sessions.insert(session.clone(), status);
            }
            if let Some(Some(status)) = sessions.get(session)
                && status.is_final()
            {
                intent.failure_reason = Some(format!(
                    "the session became {} before the intent was signed; its key can sign \
                     nothing more",
                    status.api_name()
                ));
                ended.push((intent, IntentEvent::Dropped));
            }
        }
        self.commit(ended).await
    }

    /// Expires ACTIVE sessions whose window closed before `now`, the time an operation sent
    /// now would be judged at.
    async fn expire_sessions(&self, now: u64) -> Result<(), RelayError> {
        for mut session in self.store.sessions_in_status(SessionStatus::Active).await? {
            if session.valid_until < now {
                session.apply(&SessionEvent::WindowClosed, now_ms())?;
                match self.store.save(&mut [&mut session], &mut []).await {
                    Ok(()) => info!(target: "relay", session = %session.id, "session expired"),
                    // Changed meanwhile (a revocation began, say): the next pass looks again.
                    Err(StoreError::Conflict { .. }) => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }
        Ok(())
    }

    /// Drops the QUEUED operations that can no longer execute: those whose deadline (see
    /// [`operation_deadline`]) is past for good, given the latest block's time, and those
    /// without one that waited longer than the queue timeout since they were signed. Their
    /// transactions, if they had any, are known gone with their relayer nonce unused.
    async fn drop_overdue(&self, latest_block_time: u64) -> Result<(), RelayError> {
        let now_ms = now_ms();
        let wall_clock = wall_clock_secs();
        let timeout = u64::try_from(self.config.queue_timeout.as_millis()).unwrap_or(u64::MAX);
        let mut overdue = Vec::new();
        for mut intent in self.store.intents_in_status(IntentStatus::Queued).await? {
            let reason = match operation_deadline(&intent) {
                Some(deadline) => is_past(
                    deadline,
                    latest_block_time,
                    wall_clock,
                    self.config.window_margin_secs,
                )
                .then(|| {
                    format!(
                        "not included by its deadline, {deadline} (unix seconds); the \
                         EntryPoint refuses it from then on, so it can never execute"
                    )
                }),
                None => (queued_since(&intent).saturating_add(timeout) <= now_ms).then(|| {
                    format!(
                        "not included within {} s of being signed; the chain's fees may be \
                         above the configured cap, or every relayer may be out of funds",
                        self.config.queue_timeout.as_secs()
                    )
                }),
            };
            if let Some(reason) = reason {
                intent.failure_reason = Some(reason);
                overdue.push((intent, IntentEvent::Dropped));
            }
        }
        if !overdue.is_empty() {
            warn!(target: "relay", count = overdue.len(), "dropping operations that can no longer be included");
        }
        self.commit(overdue).await
    }

    /// Applies each event to its intent and writes them all, with the session changes that
    /// final statuses carry over, in one store write that is durable before anyone hears
    /// of it. A session an API call changed meanwhile is re-read and the settlement redone on
    /// the fresh copy; an intent that changed (only the relay writes intents once they are
    /// signed, but an unsigned one may be signed while the relay expires it) fails the
    /// write with [`RelayError::Conflict`].
    async fn commit(&self, changes: Vec<(Intent, IntentEvent)>) -> Result<(), RelayError> {
        if changes.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut intents = Vec::with_capacity(changes.len());
        for (mut intent, event) in changes {
            intent.apply(&event, now)?;
            intents.push(intent);
        }
        let written = retry_lost_races(|| async {
            let mut intents = intents.clone();
            let mut sessions: BTreeMap<SessionId, (Session, bool)> = BTreeMap::new();
            for intent in intents.iter().filter(|intent| intent.moves_session()) {
                let Some(id) = &intent.session else {
                    continue;
                };
                if !sessions.contains_key(id) {
                    let session = self
                        .store
                        .session(id)
                        .await?
                        .ok_or_else(|| RelayError::MissingSession(id.clone()))?;
                    sessions.insert(id.clone(), (session, false));
                }
                let Some((session, changed)) = sessions.get_mut(id) else {
                    continue;
                };
                *changed |= intent.settle_session(session, now)?;
            }
            let mut session_refs: Vec<&mut Session> = sessions
                .values_mut()
                .filter(|(_, changed)| *changed)
                .map(|(session, _)| session)
                .collect();
            let mut intent_refs: Vec<&mut Intent> = intents.iter_mut().collect();
            self.store.save(&mut session_refs, &mut intent_refs).await?;
            Ok(())
        })
        .await;
        match written {
            // An intent moved (say an API call signed one this pass meant to expire): the
            // decision was made on an old copy, so it is dropped, and the next pass decides
            // again on what is stored.
            Err(RelayError::Store(StoreError::Conflict { .. })) => {
                return Err(RelayError::Conflict);
            }
            other => other?,
        }
        // Durable, and told on the store's events.
        self.store.flush().await?;
        Ok(())
    }
}

/// Tells the health service the relay's standing, waking its watcher only on a change.
fn report(health: &watch::Sender<RelayHealth>, status: RelayHealth) {
    health.send_if_modified(|now| {
        let changed = *now != status;
        *now = status;
        changed
    });
}

/// When `intent` was first signed (its first QUEUED): the queue timeout counts from there,
/// across requeues, so an operation cannot circle forever.
fn queued_since(intent: &Intent) -> u64 {
    intent
        .history
        .iter()
        .find(|(status, _)| *status == IntentStatus::Queued)
        .map_or(intent.created_at_ms, |(_, at)| *at)
}

/// The time after which `intent`'s operation can never execute (unix seconds): the earlier
/// of the deadline a session key signed and the end of its paymaster approval; for an
/// external operation, the end of the window its validation returned. `None` for an
/// unsponsored owner operation: the userOpHash an owner signs carries no deadline.
pub(super) fn operation_deadline(intent: &Intent) -> Option<u64> {
    if intent.kind == IntentKind::External {
        // Its validation's window, the paymaster's included, whatever paymaster it has.
        return intent.valid_until;
    }
    let approval = parse_approval(&intent.user_op.paymaster_and_data())
        .map(|(approval, _)| approval.valid_until);
    [intent.valid_until, approval].into_iter().flatten().min()
}

/// Whether `deadline` has passed for good: a block later than it exists, so every block to
/// come is later too, or the wall clock is past it by more than `margin`, which a chain that
/// mines only on demand needs, since its latest block may be old.
fn is_past(deadline: u64, latest_block_time: u64, wall_clock: u64, margin: u64) -> bool {
    latest_block_time > deadline || wall_clock > deadline.saturating_add(margin)
}

/// The wait after `failures` failed passes in a row: the poll interval doubled for each,
/// up to `max`.
fn backoff(poll: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 1u32.checked_shl(failures.min(16)).unwrap_or(u32::MAX);
    poll.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let poll = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        assert_eq!(backoff(poll, max, 1), Duration::from_millis(200));
        assert_eq!(backoff(poll, max, 3), Duration::from_millis(800));
        assert_eq!(backoff(poll, max, 6), max);
        assert_eq!(backoff(poll, max, u32::MAX), max);
    }
}
