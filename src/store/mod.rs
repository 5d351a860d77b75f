//! Persistence: sessions, intents, policies, held keys and API keys, with the indexes the
//! API lists by and the restart path resumes from.
//!
//! The domain modules decide; the store only records. [`Store`] is what every use case and
//! the relay need of a database, and nothing of how one works: a backend implements it, and
//! [`embedded`] is the one on sled that `make dev` and a single instance run on.
//!
//! # Atomic writes
//!
//! Every state change of sessions, intents and policies is one [`Batch`], and one batch is
//! one transaction: the records, every index entry that follows from them, the usage they
//! count against their policies, any key material and the outbox entry of every intent
//! change are written together or not at all. The caller acts on chain only after that
//! write returned (and, when the action must survive a crash, after [`Store::flush`]), so
//! on restart [`Store::intents_in_status`] and [`Store::sessions_in_status`] say what was
//! in flight.
//!
//! # Concurrency
//!
//! Sessions, intents and policies carry a `revision` ([`Record`]). A write names the
//! revision it was based on and is refused with [`StoreError::Conflict`] when the stored
//! record has moved on, so two writers (say the relay engine and an API handler) can never
//! overwrite each other's change; the loser re-reads and decides again, through
//! [`retry_lost_races`]. On success the record is stored at `revision + 1` (a new one at
//! revision 1) and the caller's copy is set to the same, so the copy can be written again
//! without a re-read and a caller cannot forget to follow along. A refused write leaves the
//! copies as they were.
//!
//! Reads are not transactions: a list or lookup sees every write either wholly or not at
//! all, record by record, but a list that spans several records may see a write that
//! committed while it ran. Lists re-check every filter on the record itself, so they never
//! return a record that does not match.
//!
//! # Events
//!
//! An intent change is told on [`Store::events`] once it is durable: the write puts it in
//! an outbox in the same transaction, and [`Store::flush`] tells the outbox after its sync,
//! so no writer can forget to publish and no change is told that a crash could undo.

pub mod embedded;
mod error;
mod record;
mod sealing;

use std::{fmt, sync::Arc};

use alloy::primitives::{Address, B256};
use async_trait::async_trait;

pub use self::{
    embedded::{SCHEMA_VERSION, SledStore},
    error::{RecordId, StoreError},
    record::Record,
    sealing::{RotationReport, SealingError, rotate_master_key, seal_legacy_keys},
};
use crate::{
    auth::{ApiKey, ApiKeyId, TenantId},
    events::Events,
    intent::{Intent, IntentId, IntentKind, IntentStatus},
    policy::{Policy, PolicyId, PolicyUsage, WindowKey},
    session::{KeyCustody, Session, SessionId, SessionStatus},
};

/// A store handle to share: every task holds a clone, and every clone is the same database.
pub type SharedStore = Arc<dyn Store>;

/// One record of a [`Batch`]: new, or a change of the stored one.
#[derive(Clone, Copy, Debug)]
pub enum Change<'a, T> {
    /// A new record, stored at revision 1 whatever its copy carries; `AlreadyExists` if its
    /// id is taken.
    Create(&'a T),
    /// A changed record, stored at `revision + 1` if the stored one is still at the
    /// `revision` its copy carries (`Conflict` if not, `NotFound` if there is none).
    Update(&'a T),
}

impl<'a, T: Record> Change<'a, T> {
    /// The record as the caller has it.
    pub fn record(&self) -> &'a T {
        match self {
            Self::Create(record) | Self::Update(record) => record,
        }
    }

    /// The revision the record is stored at when the write succeeds.
    pub fn stored_revision(&self) -> Result<u64, StoreError> {
        match self {
            Self::Create(_) => Ok(1),
            Self::Update(record) => record.revision().checked_add(1).ok_or_else(|| {
                invalid(format!(
                    "{} is at the last possible revision",
                    record.record_id()
                ))
            }),
        }
    }
}

/// One atomic write: every change in it is made, or none.
///
/// Besides the revision checks of each [`Change`], a backend keeps these rules, so that no
/// use case has to:
/// - a session never changes its account; an intent never changes its session, account,
///   idempotency key or sponsorship charge; a policy never changes its rules or creation
///   time: they are indexed, or counted against (`InvalidWrite`);
/// - a new intent with a sponsorship charge is admitted by its policy as stored in the same
///   transaction (`Refused`), and the usage of every intent with a charge moves with its
///   status;
/// - a new intent whose idempotency key its session already used writes nothing: the
///   intent that holds the key comes back as [`Written::Existing`];
/// - every intent written goes to the outbox, to be told once durable.
#[derive(Debug, Default)]
pub struct Batch<'a> {
    /// Sessions, written first.
    pub sessions: Vec<Change<'a, Session>>,
    /// Intents, written after the sessions they belong to.
    pub intents: Vec<Change<'a, Intent>>,
    /// Policies.
    pub policies: Vec<Change<'a, Policy>>,
    /// A held key's address and its secret as the keys module sealed it; `AlreadyExists` if
    /// the address is taken, so key material is never silently replaced.
    pub held_key: Option<(Address, &'a [u8])>,
}

/// What a [`Batch`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Written {
    /// Everything in it is stored.
    Stored,
    /// A new intent's idempotency key is taken: nothing was written, and this is the intent
    /// that holds it, as stored.
    Existing(Box<Intent>),
}

/// What the daemon needs of a database. Writes are atomic [`Batch`]es under revision checks;
/// reads serve the lookups, the lists and the restart path; [`Store::flush`] makes writes
/// durable and tells their events.
///
/// The required methods are a backend's whole job. The provided ones are the writes the use
/// cases make, built on [`Store::write`], with their checks and the copies' revisions kept
/// in one place for every backend.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Makes every change of `batch` in one transaction, or none of them.
    ///
    /// The copies in the batch are not touched: the caller sets each to
    /// [`Change::stored_revision`] once this returned [`Written::Stored`] (the provided
    /// writes do).
    async fn write(&self, batch: &Batch<'_>) -> Result<Written, StoreError>;

    /// Makes every write that returned before this call durable, then tells the outbox's
    /// changes on [`Store::events`], oldest first, and takes them out of it. A crash between
    /// the two may tell a change again after the restart (at least once, never never).
    /// Await it between a state change and a chain action that must not be repeated or lost
    /// after a crash.
    async fn flush(&self) -> Result<(), StoreError>;

    /// The bus every durable intent change is told on.
    fn events(&self) -> &Events;

    /// A session as stored: the copy to decide on and hand back to a write, whose revision
    /// check then catches anyone who wrote in between.
    async fn session(&self, id: &SessionId) -> Result<Option<Session>, StoreError>;

    /// An intent as stored, like [`Store::session`].
    async fn intent(&self, id: &IntentId) -> Result<Option<Intent>, StoreError>;

    /// A policy as stored, like [`Store::session`].
    async fn policy(&self, id: &PolicyId) -> Result<Option<Policy>, StoreError>;

    /// The intent a client created in `session` under idempotency key `client_key`, so the
    /// API can answer a retried request before doing any work for it.
    async fn intent_by_idempotency_key(
        &self,
        session: &SessionId,
        client_key: &str,
    ) -> Result<Option<Intent>, StoreError>;

    /// The intents whose operation has the userOpHash `hash`, newest first: the bundler
    /// JSON-RPC's lookups. Usually one; a hash sent again after its first operation was
    /// dropped has more.
    async fn intents_by_user_op_hash(&self, hash: B256) -> Result<Vec<Intent>, StoreError>;

    /// How many external operations of `sender` are on their way (not final): one per
    /// nonce key at most.
    async fn open_external_operations(&self, sender: Address) -> Result<usize, StoreError>;

    /// A page of sessions, newest first, through the most selective index the filter allows.
    async fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: &PageRequest,
    ) -> Result<Page<Session>, StoreError>;

    /// A page of intents, newest first, through the most selective index the filter allows.
    async fn list_intents(
        &self,
        filter: &IntentFilter,
        page: &PageRequest,
    ) -> Result<Page<Intent>, StoreError>;

    /// A page of policies, newest first: `tenant`'s, or every tenant's.
    async fn list_policies(
        &self,
        tenant: Option<&TenantId>,
        page: &PageRequest,
    ) -> Result<Page<Policy>, StoreError>;

    /// Every intent in `status`, oldest first: on restart, the `Queued` ones go back to the
    /// relay in the order they were made and the `Submitted` ones are tracked again.
    async fn intents_in_status(&self, status: IntentStatus) -> Result<Vec<Intent>, StoreError>;

    /// How many intents are in `status`, exactly, from the status index.
    async fn count_intents_in_status(&self, status: IntentStatus) -> Result<usize, StoreError>;

    /// Every session in `status`, oldest first: on restart, registrations and revocations
    /// under way are resumed, and active sessions get their expiry timers back.
    async fn sessions_in_status(&self, status: SessionStatus) -> Result<Vec<Session>, StoreError>;

    /// What a policy's operations have used in all: settled from receipts, and reserved by
    /// those on their way.
    async fn policy_usage(&self, id: &PolicyId) -> Result<PolicyUsage, StoreError>;

    /// What a policy's operations have used in one interval of one limit.
    async fn policy_window_usage(
        &self,
        id: &PolicyId,
        window: WindowKey,
    ) -> Result<PolicyUsage, StoreError>;

    /// The stored bytes of a held session key, by its address, as the keys module sealed
    /// them.
    async fn held_key(&self, address: Address) -> Result<Option<Vec<u8>>, StoreError>;

    /// Every held key: its address and its stored bytes, in address order.
    async fn held_keys(&self) -> Result<Vec<(Address, Vec<u8>)>, StoreError>;

    /// Replaces held keys' stored bytes, all in one transaction: each `(address, expected,
    /// new)` is written only if the key still holds `expected`, and if any does not, nothing
    /// is written ([`StoreError::HeldKeyChanged`]). Durable when this returns.
    async fn replace_held_keys(
        &self,
        changes: &[(Address, Vec<u8>, Vec<u8>)],
    ) -> Result<(), StoreError>;

    /// Stores a new API key, durably, so a key shown to its holder is never lost;
    /// `AlreadyExists` if its id is taken.
    async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError>;

    /// An API key as stored.
    async fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKey>, StoreError>;

    /// Every API key, revoked ones included, oldest first.
    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// Marks an API key revoked at `now_ms`, durably, so a revocation the operator saw
    /// succeed holds after a crash. A key revoked already keeps its first revocation time.
    async fn revoke_api_key(&self, id: &ApiKeyId, now_ms: u64) -> Result<ApiKey, StoreError>;

    /// The operator's pause of the relay, if it is paused.
    async fn relay_pause(&self) -> Result<Option<RelayPause>, StoreError>;

    /// Pauses the relay (`Some`) or lets it run (`None`), durably, so a pause acknowledged
    /// to the operator survives a crash.
    async fn set_relay_pause(&self, pause: Option<&RelayPause>) -> Result<(), StoreError>;

    /// A digest of every record and index entry, in order. Two equal digests mean the store
    /// holds exactly the same data: tests use it to show that a refused request wrote
    /// nothing, and an operator can compare it across a maintenance window.
    async fn content_digest(&self) -> Result<B256, StoreError>;

    /// Stores a new session with its registration intent, and the session key's secret when
    /// latchkey holds it, in one write: a session never exists without the intent that
    /// registers it, nor a held session without its key. Both copies are set to revision 1.
    ///
    /// `held_key` is the key's address and its sealed secret; it is required exactly when the
    /// session's custody is `Held`.
    async fn create_session(
        &self,
        session: &mut Session,
        registration: &mut Intent,
        held_key: Option<(Address, &[u8])>,
    ) -> Result<(), StoreError> {
        if session.registration_intent != registration.id
            || registration.session.as_ref() != Some(&session.id)
            || registration.account != session.account
        {
            return Err(invalid(format!(
                "intent {} is not the registration of session {}",
                registration.id, session.id
            )));
        }
        match (session.custody, held_key) {
            (KeyCustody::Held, Some((address, _))) if address == session.key => {}
            (KeyCustody::External, None) => {}
            _ => {
                return Err(invalid(format!(
                    "session {} needs its held key exactly when latchkey holds it, under the \
                     session key's address",
                    session.id
                )));
            }
        }
        let batch = Batch {
            sessions: vec![Change::Create(session)],
            intents: vec![Change::Create(registration)],
            held_key,
            ..Batch::default()
        };
        if let Written::Existing(existing) = self.write(&batch).await? {
            return Err(invalid(format!(
                "registration {} reuses the idempotency key of {}",
                registration.id, existing.id
            )));
        }
        session.set_revision(1);
        registration.set_revision(1);
        Ok(())
    }

    /// Stores a new intent together with the session change it makes (its reserved usage,
    /// its nonce lane), in one write, unless the client already used the intent's
    /// idempotency key in this session: then nothing is written and the first intent comes
    /// back. The key check and the write are one transaction, so two concurrent requests
    /// with one key create one intent.
    ///
    /// The session write is checked against `session.revision`. On
    /// [`CreateIntent::Created`] the intent is stored at revision 1 and the session at
    /// `revision + 1`, and both copies are set to match; on [`CreateIntent::Existing`]
    /// neither copy changes. The key is checked first, so a retried request gets its intent
    /// back even when the session has moved on since.
    async fn create_intent(
        &self,
        session: &mut Session,
        intent: &mut Intent,
    ) -> Result<CreateIntent, StoreError> {
        if intent.session.as_ref() != Some(&session.id) || intent.account != session.account {
            return Err(invalid(format!(
                "intent {} does not belong to session {}",
                intent.id, session.id
            )));
        }
        let session_change = Change::Update(&*session);
        let revision = session_change.stored_revision()?;
        let batch = Batch {
            sessions: vec![session_change],
            intents: vec![Change::Create(&*intent)],
            ..Batch::default()
        };
        match self.write(&batch).await? {
            Written::Existing(existing) => Ok(CreateIntent::Existing(existing)),
            Written::Stored => {
                session.set_revision(revision);
                intent.set_revision(1);
                Ok(CreateIntent::Created)
            }
        }
    }

    /// Stores a new external operation (an [`crate::intent::IntentKind::External`]
    /// intent) at revision 1, holding its sender's nonce key while it is on its way:
    /// [`StoreError::NonceKeyInUse`] when another holds it, and nothing is written.
    async fn create_external(&self, intent: &mut Intent) -> Result<(), StoreError> {
        if intent.kind != crate::intent::IntentKind::External || intent.session.is_some() {
            return Err(invalid(format!(
                "intent {} is not an external operation",
                intent.id
            )));
        }
        let batch = Batch {
            intents: vec![Change::Create(&*intent)],
            ..Batch::default()
        };
        self.write(&batch).await?;
        intent.set_revision(1);
        Ok(())
    }

    /// Stores a sponsored external operation waiting for its account's signature (an
    /// [`crate::intent::IntentKind::External`] intent in `PendingSignature`, with its
    /// charge), in one write with the approval it replaces, `replaced`, already DROPPED:
    /// the charge is admitted against the policy's limits, and the sender's nonce key held,
    /// inside that write. The new intent is stored at revision 1, the replaced one at its
    /// next.
    async fn approve_external(
        &self,
        intent: &mut Intent,
        replaced: Option<&mut Intent>,
    ) -> Result<(), StoreError> {
        if intent.kind != crate::intent::IntentKind::External || intent.session.is_some() {
            return Err(invalid(format!(
                "intent {} is not an external operation",
                intent.id
            )));
        }
        let mut intents = Vec::new();
        if let Some(old) = replaced.as_deref() {
            intents.push(Change::Update(old));
        }
        intents.push(Change::Create(&*intent));
        let batch = Batch {
            intents,
            ..Batch::default()
        };
        let revisions = revisions(&batch.intents)?;
        self.write(&batch).await?;
        if let Some(old) = replaced {
            old.set_revision(revisions[0]);
        }
        intent.set_revision(1);
        Ok(())
    }

    /// Writes changed sessions and the intents a change touched (for example intents
    /// confirmed and the session usage they settle) in one write, so they never disagree.
    /// Each is stored at `revision + 1` and each copy is set to match. A record must appear
    /// once.
    async fn save(
        &self,
        sessions: &mut [&mut Session],
        intents: &mut [&mut Intent],
    ) -> Result<(), StoreError> {
        if sessions.is_empty() && intents.is_empty() {
            return Ok(());
        }
        let batch = Batch {
            sessions: sessions
                .iter()
                .map(|session| Change::Update(&**session))
                .collect(),
            intents: intents
                .iter()
                .map(|intent| Change::Update(&**intent))
                .collect(),
            ..Batch::default()
        };
        let session_revisions = revisions(&batch.sessions)?;
        let intent_revisions = revisions(&batch.intents)?;
        self.write(&batch).await?;
        for (session, revision) in sessions.iter_mut().zip(session_revisions) {
            session.set_revision(revision);
        }
        for (intent, revision) in intents.iter_mut().zip(intent_revisions) {
            intent.set_revision(revision);
        }
        Ok(())
    }

    /// Stores a new policy at revision 1 and sets the copy's revision to match.
    async fn create_policy(&self, policy: &mut Policy) -> Result<(), StoreError> {
        let batch = Batch {
            policies: vec![Change::Create(&*policy)],
            ..Batch::default()
        };
        self.write(&batch).await?;
        policy.set_revision(1);
        Ok(())
    }

    /// Writes a changed policy (its name or enabled flag; never its rules) under the
    /// revision check, like [`Store::save`]. A policy disabled here refuses every operation
    /// whose write comes after this one.
    async fn save_policy(&self, policy: &mut Policy) -> Result<(), StoreError> {
        let change = Change::Update(&*policy);
        let revision = change.stored_revision()?;
        let batch = Batch {
            policies: vec![change],
            ..Batch::default()
        };
        self.write(&batch).await?;
        policy.set_revision(revision);
        Ok(())
    }
}

/// The revision each change is stored at, checked before anything is written.
fn revisions<T: Record>(changes: &[Change<'_, T>]) -> Result<Vec<u64>, StoreError> {
    changes.iter().map(Change::stored_revision).collect()
}

fn invalid(reason: String) -> StoreError {
    StoreError::InvalidWrite { reason }
}

/// How many times a read-decide-write that lost an optimistic-concurrency race is made in
/// all before [`retry_lost_races`] gives up.
pub const CONFLICT_ATTEMPTS: usize = 8;

/// An error that may say its write lost a race: another writer changed a record between the
/// read and the write ([`StoreError::Conflict`]), so nothing was written and deciding again on
/// fresh copies may succeed.
pub trait LostRace {
    /// Whether this error is such a lost race.
    fn lost_race(&self) -> bool;
    /// The error when every attempt lost.
    fn gave_up() -> Self;
}

/// Runs `attempt` (read, decide, write) until it does not lose a race, at most
/// [`CONFLICT_ATTEMPTS`] times; then gives up with [`LostRace::gave_up`], having written
/// nothing. Every writer that decides on records it read goes through here, so none can
/// forget to re-read.
///
/// `attempt` is a closure making a new future each time (`|| async move { … }` over
/// references), rather than an async closure, so the future stays `Send` for tonic.
pub async fn retry_lost_races<T, E: LostRace, F: Future<Output = Result<T, E>>>(
    mut attempt: impl FnMut() -> F,
) -> Result<T, E> {
    for _ in 0..CONFLICT_ATTEMPTS {
        match attempt().await {
            Err(error) if error.lost_race() => continue,
            done => return done,
        }
    }
    Err(E::gave_up())
}

/// The largest page a list returns, whatever the request asks, so that one request cannot
/// make the daemon read the whole database into memory.
pub const MAX_PAGE_SIZE: usize = 1000;

/// The operator's pause of the relay: while it is stored, the relay sends no new bundle.
/// It lives in the store so that a paused daemon stays paused across a restart.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RelayPause {
    /// Why, as the operator gave it.
    pub reason: String,
    /// When, in Unix milliseconds.
    pub since_ms: u64,
}

/// Which page of a list to return, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// How many items at most; 0 counts as 1 and anything above [`MAX_PAGE_SIZE`] as that.
    /// The API layer applies its own default before calling.
    pub size: usize,
    /// The `next_token` of the previous page of the same list (same filter), or `None` for
    /// the first page.
    pub token: Option<String>,
}

/// One page of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Pass this back for the next page; `None` when this page is the last. It is opaque:
    /// its form may change.
    ///
    /// Paging is by position in creation order, so a walk never returns an item twice nor
    /// skips one that matched throughout, even while records are created between requests
    /// (they are newer than every page already handed out, so they appear only in a new
    /// walk).
    pub next_token: Option<String>,
}

/// Which sessions a list returns; every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Sessions of this tenant.
    pub tenant: Option<TenantId>,
    /// Sessions on this account.
    pub account: Option<Address>,
    /// Sessions in this status.
    pub status: Option<SessionStatus>,
}

impl SessionFilter {
    /// Whether `session` passes, by the same test the lists apply, so that a live stream
    /// can filter updates exactly as a list would.
    pub fn matches(&self, session: &Session) -> bool {
        self.tenant
            .as_ref()
            .is_none_or(|tenant| &session.tenant == tenant)
            && self
                .account
                .is_none_or(|account| session.account == account)
            && self.status.is_none_or(|status| session.status == status)
    }
}

/// Which intents a list returns; every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntentFilter {
    /// Intents of this tenant.
    pub tenant: Option<TenantId>,
    /// Intents of this session.
    pub session: Option<SessionId>,
    /// Intents on this account.
    pub account: Option<Address>,
    /// Intents in this status.
    pub status: Option<IntentStatus>,
    /// Intents of this kind.
    pub kind: Option<IntentKind>,
}

impl IntentFilter {
    /// Whether `intent` passes, by the same test the lists apply, so that a live stream can
    /// filter updates exactly as a list would.
    pub fn matches(&self, intent: &Intent) -> bool {
        self.tenant
            .as_ref()
            .is_none_or(|tenant| &intent.tenant == tenant)
            && self
                .session
                .as_ref()
                .is_none_or(|session| intent.session.as_ref() == Some(session))
            && self.account.is_none_or(|account| intent.account == account)
            && self.status.is_none_or(|status| intent.status == status)
            && self.kind.is_none_or(|kind| intent.kind == kind)
    }
}

/// What [`Store::create_intent`] did. A client that retries a request with the same
/// idempotency key gets the intent its first request created, not a second one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateIntent {
    /// The intent is stored, and the session with it.
    Created,
    /// The session already has an intent under this idempotency key: here it is, as stored.
    /// Nothing was written.
    Existing(Box<Intent>),
}
