//! Persistence: sessions, intents and held keys in sled, with the indexes the API lists by
//! and the restart path resumes from.
//!
//! The domain modules decide; the store only records. Every state change of a session or
//! intent is one call here, and one call is one sled transaction: the records, every index
//! entry that follows from them, and any key material are written together or not at all.
//! The caller acts on chain only after that write returned (and, when the action must
//! survive a crash, after [`Store::flush`]), so on restart [`Store::intents_in_status`] and
//! [`Store::sessions_in_status`] say what was in flight.
//!
//! # Concurrency
//!
//! Sessions and intents carry a `revision`. A write names the revision it was based on and
//! is refused with [`StoreError::Conflict`] when the stored record has moved on, so two
//! writers (say the relay engine and an API handler) can never overwrite each other's
//! change; the loser re-reads and decides again. On success the store keeps the record at
//! `revision + 1` (a new record at 1) and sets the caller's copy to the same, so the copy
//! can be written again without a re-read and a caller cannot forget to follow along.
//! A refused write leaves the copies as they were.
//!
//! Reads are not transactions: a list or lookup sees every write either wholly or not at
//! all, entry by entry, but a list that spans several entries may see a write that committed
//! while it ran. Lists re-check every filter on the record itself, so they never return a
//! record that does not match.
//!
//! The store's methods block on sled. They are short (sled serves from memory and writes to
//! its log in the background), except [`Store::flush`], which waits for an fsync on
//! sled's own threads and is async.

mod error;
mod layout;
mod sealing;
mod tx;

#[cfg(test)]
mod tests;

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use alloy::primitives::Address;
use sled::Tree;

pub use self::{
    error::{RecordId, StoreError},
    sealing::{RotationReport, SealingError, rotate_master_key, seal_legacy_keys},
};
use self::{
    layout::Table,
    tx::{Staged, Trees},
};
use crate::{
    auth::{ApiKey, ApiKeyId, TenantId},
    events::Events,
    intent::{Intent, IntentId, IntentKind, IntentStatus},
    policy::{Policy, PolicyId, PolicyUsage, WindowKey},
    session::{KeyCustody, Session, SessionId, SessionStatus},
};

/// The layout version this build reads and writes. Bumped whenever the bytes on disk change
/// meaning, so an old binary never misreads a newer database (nor the reverse).
///
/// - 1: sessions, intents, their indexes and held keys.
/// - 2: adds the `policies` and `policy_usage` trees, a session's `policy` and an intent's
///   `charge`. Version 1 data is valid version 2 data (the new fields default to none), so
///   a version 1 store is upgraded in place when opened; a version 1 binary then refuses it,
///   since it would drop the charges and leave their reservations in the policies forever.
/// - 3: held keys are sealed under the master key (see [`crate::keys`]) instead of stored
///   bare. Version 2 data is upgraded in place: the store is restamped when opened, and the
///   daemon seals the bare keys at start, before it signs anything. A version 2 binary
///   refuses version 3, since it cannot open sealed keys.
/// - 4: adds the `api_keys` tree, and a tenant on every session, intent and policy. Older
///   records read as the tenant `default`, so an older store is upgraded in place; a
///   version 3 binary refuses version 4, since it would drop the tenants and show every
///   tenant's records to every key.
pub const SCHEMA_VERSION: u32 = 4;

/// Versions this build upgrades in place, because their data reads as the current version
/// (bare held keys are recognised by their length until the daemon seals them; records
/// without a tenant belong to `default`).
const UPGRADABLE_VERSIONS: &[u32] = &[1, 2, 3];

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

/// The daemon's database. Cloning is cheap and every clone is the same database, so each
/// task can hold its own handle.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    trees: Trees,
    /// The `meta` tree, held open: the relay reads the pause from it on every pass.
    meta: Tree,
    /// Turns the outbox into events once its changes are durable; held while doing so,
    /// so each change is told once and in order.
    outbox: std::sync::Mutex<()>,
    events: Events,
    path: PathBuf,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the contents: the store holds key material.
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

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
                .is_none_or(|session| &intent.session == session)
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

impl Store {
    /// A digest of every data tree's keys and values, in order. Two equal digests mean the
    /// store holds exactly the same data: tests use it to show that a refused request wrote
    /// nothing, and an operator can compare it across a maintenance window.
    pub fn content_digest(&self) -> Result<alloy::primitives::B256, StoreError> {
        let mut hasher = alloy::primitives::Keccak256::new();
        for table in Table::ALL.into_iter().filter(|table| table.holds_data()) {
            let tree = self.inner.trees.tree(table);
            hasher.update(tree.name());
            for entry in tree.iter() {
                let (key, value) = entry?;
                hasher.update((key.len() as u64).to_be_bytes());
                hasher.update(&key);
                hasher.update((value.len() as u64).to_be_bytes());
                hasher.update(&value);
            }
        }
        Ok(hasher.finalize())
    }

    /// Opens the database in `path`, creating it when missing. A fresh database is stamped
    /// with [`SCHEMA_VERSION`]; an older one whose data reads as this version is restamped;
    /// any other version is refused before any of its data is read or written.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(path).open()?;
        let meta = db.open_tree(layout::META)?;
        match meta.get(layout::SCHEMA_VERSION_KEY)? {
            Some(bytes) => {
                let found = <[u8; 4]>::try_from(bytes.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| {
                        layout::corrupt(
                            layout::META,
                            layout::SCHEMA_VERSION_KEY,
                            "the schema version is not 4 bytes",
                        )
                    })?;
                if UPGRADABLE_VERSIONS.contains(&found) {
                    meta.insert(layout::SCHEMA_VERSION_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                    db.flush()?;
                    tracing::info!(target: "store", from = found, to = SCHEMA_VERSION, "schema upgraded");
                } else if found != SCHEMA_VERSION {
                    return Err(StoreError::SchemaMismatch {
                        found,
                        expected: SCHEMA_VERSION,
                    });
                }
            }
            None => {
                // No version: a fresh directory, unless data is already there.
                let unversioned = db.tree_names().iter().any(|name| {
                    name.as_ref() != layout::META.as_bytes()
                        && db.open_tree(name).is_ok_and(|tree| !tree.is_empty())
                });
                if unversioned {
                    return Err(StoreError::SchemaMismatch {
                        found: 0,
                        expected: SCHEMA_VERSION,
                    });
                }
                meta.insert(layout::SCHEMA_VERSION_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
            }
        }
        let trees = Trees::open(&db)?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                trees,
                meta,
                outbox: std::sync::Mutex::new(()),
                events: Events::default(),
                path: path.to_owned(),
            }),
        })
    }

    /// Stores a new session with its registration intent, and the session key's secret when
    /// latchkey holds it, in one write: a session never exists without the intent that
    /// registers it, nor a held session without its key.
    ///
    /// Both records must be new (`AlreadyExists` otherwise); they are stored at revision 1
    /// whatever revision the copies carry (0 by convention), and both copies are set to 1.
    /// `held_key` is the key's address and its secret as the keys module sealed it; it is
    /// required exactly when the session's custody is `Held`.
    pub fn create_session(
        &self,
        session: &mut Session,
        registration: &mut Intent,
        held_key: Option<(Address, &[u8])>,
    ) -> Result<(), StoreError> {
        if session.registration_intent != registration.id
            || registration.session != session.id
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
        let staged_session = Staged::session(session, 1)?;
        let staged_intent = Staged::intent(registration, 1)?;
        self.inner.trees.transact(|tx| {
            tx.insert_session(&staged_session)?;
            tx.insert_intent(&staged_intent)?;
            if let Some((address, secret)) = held_key {
                tx.insert_held_key(address, secret)?;
            }
            Ok(())
        })?;
        session.revision = 1;
        registration.revision = 1;
        Ok(())
    }

    /// Stores a new intent together with the session change it makes (its reserved usage,
    /// its nonce lane), in one write, unless the client already used the intent's
    /// idempotency key in this session: then nothing is written and the first intent comes
    /// back. The key check and the write are one transaction, so two concurrent requests
    /// with one key create one intent.
    ///
    /// The session write is checked against `session.revision` (`Conflict` when it moved
    /// on). On [`CreateIntent::Created`] the intent is stored at revision 1 and the session
    /// at `revision + 1`, and both copies are set to match; on [`CreateIntent::Existing`]
    /// neither copy changes. The key is checked first, so a retried request gets its intent
    /// back even when the session has moved on since.
    pub fn create_intent(
        &self,
        session: &mut Session,
        intent: &mut Intent,
    ) -> Result<CreateIntent, StoreError> {
        if intent.session != session.id || intent.account != session.account {
            return Err(invalid(format!(
                "intent {} does not belong to session {}",
                intent.id, session.id
            )));
        }
        let revision = next_revision(&session.id, session.revision)?;
        let staged_session = Staged::session(session, revision)?;
        let staged_intent = Staged::intent(intent, 1)?;
        let outcome = self.inner.trees.transact(|tx| {
            if let Some(client_key) = &staged_intent.record.idempotency_key
                && let Some(existing) =
                    tx.intent_for_idempotency_key(&staged_session.record.id, client_key)?
            {
                return Ok(CreateIntent::Existing(Box::new(existing)));
            }
            tx.update_session(&staged_session)?;
            tx.insert_intent(&staged_intent)?;
            Ok(CreateIntent::Created)
        })?;
        if outcome == CreateIntent::Created {
            session.revision = revision;
            intent.revision = 1;
        }
        Ok(outcome)
    }

    /// Writes changed records in one write: sessions and the intents a change touched
    /// (for example intents confirmed and the session usage they settle), so they never
    /// disagree on disk. Status indexes follow status changes.
    ///
    /// Every record must exist (`NotFound`) and still be at the revision its copy carries
    /// (`Conflict`); if any is not, nothing is written. On success each is stored at
    /// `revision + 1` and each copy is set to match. A record must appear once.
    pub fn save(
        &self,
        sessions: &mut [&mut Session],
        intents: &mut [&mut Intent],
    ) -> Result<(), StoreError> {
        if sessions.is_empty() && intents.is_empty() {
            return Ok(());
        }
        let staged_sessions = sessions
            .iter()
            .map(|session| {
                let revision = next_revision(&session.id, session.revision)?;
                Staged::session(session, revision)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let staged_intents = intents
            .iter()
            .map(|intent| {
                let revision = next_revision(&intent.id, intent.revision)?;
                Staged::intent(intent, revision)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.inner.trees.transact(|tx| {
            for staged in &staged_sessions {
                tx.update_session(staged)?;
            }
            for staged in &staged_intents {
                tx.update_intent(staged)?;
            }
            Ok(())
        })?;
        // Every revision was checked to have a successor before the write.
        for session in sessions.iter_mut() {
            session.revision += 1;
        }
        for intent in intents.iter_mut() {
            intent.revision += 1;
        }
        Ok(())
    }

    /// Stores a new policy at revision 1 and sets the copy's revision to match.
    pub fn create_policy(&self, policy: &mut Policy) -> Result<(), StoreError> {
        let staged = Staged::policy(policy, 1)?;
        self.inner.trees.transact(|tx| tx.insert_policy(&staged))?;
        policy.revision = 1;
        Ok(())
    }

    /// Writes a changed policy (its name or enabled flag; never its rules) under the
    /// revision check, like [`Store::save`]. A policy disabled here refuses every operation
    /// whose write comes after this one.
    pub fn save_policy(&self, policy: &mut Policy) -> Result<(), StoreError> {
        let revision = next_revision(&policy.id, policy.revision)?;
        let staged = Staged::policy(policy, revision)?;
        self.inner.trees.transact(|tx| tx.update_policy(&staged))?;
        policy.revision = revision;
        Ok(())
    }

    /// A policy as stored.
    pub fn policy(&self, id: &PolicyId) -> Result<Option<Policy>, StoreError> {
        let key = id.as_str().as_bytes();
        self.inner
            .trees
            .tree(Table::Policies)
            .get(key)?
            .map(|bytes| layout::decode(Table::Policies, key, &bytes))
            .transpose()
    }

    /// A page of policies, newest first: `tenant`'s, or every tenant's.
    pub fn list_policies(
        &self,
        tenant: Option<&TenantId>,
        page: &PageRequest,
    ) -> Result<Page<Policy>, StoreError> {
        let scope = list_scope(&("policies", tenant));
        let before = parse_token(page, PolicyId::parse, &scope)?;
        let before = before.as_ref().map(PolicyId::as_str);
        let items = walk_newest_first(
            self.inner.trees.tree(Table::Policies),
            &[],
            before,
            page.size,
            |key, value| {
                let policy: Policy = layout::decode(Table::Policies, key, value)?;
                Ok(tenant
                    .is_none_or(|tenant| &policy.tenant == tenant)
                    .then_some(policy))
            },
        )?;
        Ok(into_page(items, page.size, &scope, |policy: &Policy| {
            policy.id.to_string()
        }))
    }

    /// What a policy's operations have used in all: settled from receipts, and reserved by
    /// those on their way.
    pub fn policy_usage(&self, id: &PolicyId) -> Result<PolicyUsage, StoreError> {
        self.usage_at(&layout::policy_total_key(id))
    }

    /// What a policy's operations have used in one interval of one limit.
    pub fn policy_window_usage(
        &self,
        id: &PolicyId,
        window: WindowKey,
    ) -> Result<PolicyUsage, StoreError> {
        self.usage_at(&layout::policy_window_key(id, window))
    }

    fn usage_at(&self, key: &[u8]) -> Result<PolicyUsage, StoreError> {
        match self.inner.trees.tree(Table::PolicyUsage).get(key)? {
            Some(bytes) => layout::decode(Table::PolicyUsage, key, &bytes),
            None => Ok(PolicyUsage::default()),
        }
    }

    /// A session as stored: the copy to decide on and hand back to [`Store::save`], whose
    /// revision check then catches anyone who wrote in between.
    pub fn session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        let key = id.as_str().as_bytes();
        self.inner
            .trees
            .tree(Table::Sessions)
            .get(key)?
            .map(|bytes| read_session(key, &bytes))
            .transpose()
    }

    /// An intent as stored: the copy to decide on and hand back to [`Store::save`], whose
    /// revision check then catches anyone who wrote in between.
    pub fn intent(&self, id: &IntentId) -> Result<Option<Intent>, StoreError> {
        let key = id.as_str().as_bytes();
        self.inner
            .trees
            .tree(Table::Intents)
            .get(key)?
            .map(|bytes| read_intent(key, &bytes))
            .transpose()
    }

    /// The intent a client created in `session` under idempotency key `client_key`, so the
    /// API can answer a retried request before doing any work for it.
    pub fn intent_by_idempotency_key(
        &self,
        session: &SessionId,
        client_key: &str,
    ) -> Result<Option<Intent>, StoreError> {
        let key = layout::idempotency_key(session, client_key);
        let Some(id) = self.inner.trees.tree(Table::Idempotency).get(&key)? else {
            return Ok(None);
        };
        let id = layout::intent_id_at(Table::Idempotency, &id, 0)?;
        self.intent(&id)?
            .ok_or_else(|| layout::corrupt(Table::Idempotency, &key, dangling(&id)))
            .map(Some)
    }

    /// Every held key: its address and its stored bytes (sealed by the keys module), in
    /// address order.
    pub fn held_keys(&self) -> Result<Vec<(Address, Vec<u8>)>, StoreError> {
        self.inner
            .trees
            .tree(Table::HeldKeys)
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                let address = Address::try_from(key.as_ref()).map_err(|_| {
                    layout::corrupt(Table::HeldKeys, &key, "the key is not a 20-byte address")
                })?;
                Ok((address, value.to_vec()))
            })
            .collect()
    }

    /// Replaces held keys' stored bytes, all in one transaction: each `(address, expected,
    /// new)` is written only if the key still holds `expected`, and if any does not, nothing
    /// is written ([`StoreError::HeldKeyChanged`]). Durable when this returns.
    pub async fn replace_held_keys(
        &self,
        changes: &[(Address, Vec<u8>, Vec<u8>)],
    ) -> Result<(), StoreError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let result = self.inner.trees.tree(Table::HeldKeys).transaction(|tree| {
            for (address, expected, new) in changes {
                match tree.get(address.as_slice())? {
                    Some(current) if current.as_ref() == expected.as_slice() => {
                        tree.insert(address.as_slice(), new.as_slice())?;
                    }
                    _ => return Err(ConflictableTransactionError::Abort(*address)),
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => self.flush().await,
            Err(TransactionError::Abort(address)) => {
                Err(StoreError::HeldKeyChanged(RecordId::HeldKey(address)))
            }
            Err(TransactionError::Storage(error)) => Err(error.into()),
        }
    }

    /// The stored bytes of a held session key, by its address, as the keys module sealed
    /// them.
    pub fn held_key(&self, address: Address) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .inner
            .trees
            .tree(Table::HeldKeys)
            .get(address.as_slice())?
            .map(|secret| secret.to_vec()))
    }

    /// A page of sessions, newest first. Walks the account index when an account is given,
    /// else the status index, else every session; the other conditions are checked on each
    /// record.
    pub fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: &PageRequest,
    ) -> Result<Page<Session>, StoreError> {
        let scope = list_scope(filter);
        let before = parse_token(page, SessionId::parse, &scope)?;
        let trees = &self.inner.trees;
        let (tree, name, prefix) = match (filter.account, filter.status) {
            (Some(account), _) => (
                &trees.tree(Table::SessionByAccount),
                Table::SessionByAccount,
                layout::account_prefix(account),
            ),
            (None, Some(status)) => (
                &trees.tree(Table::SessionByStatus),
                Table::SessionByStatus,
                layout::status_prefix(status.code()),
            ),
            (None, None) => (&trees.tree(Table::Sessions), Table::Sessions, Vec::new()),
        };
        let before = before.as_ref().map(SessionId::as_str);
        let items = walk_newest_first(tree, &prefix, before, page.size, |key, value| {
            let session = if name == Table::Sessions {
                read_session(key, value)?
            } else {
                let id = layout::session_id_at(name, key, prefix.len())?;
                self.session(&id)?
                    .ok_or_else(|| layout::corrupt(name, key, dangling(&id)))?
            };
            Ok(filter.matches(&session).then_some(session))
        })?;
        Ok(into_page(items, page.size, &scope, |session| {
            session.id.to_string()
        }))
    }

    /// A page of intents, newest first. Walks the most selective index the filter allows
    /// (session, then account, then status, else every intent); the other conditions are
    /// checked on each record.
    pub fn list_intents(
        &self,
        filter: &IntentFilter,
        page: &PageRequest,
    ) -> Result<Page<Intent>, StoreError> {
        let scope = list_scope(filter);
        let before = parse_token(page, IntentId::parse, &scope)?;
        let trees = &self.inner.trees;
        let (tree, name, prefix) = if let Some(session) = &filter.session {
            (
                &trees.tree(Table::IntentBySession),
                Table::IntentBySession,
                layout::session_prefix(session),
            )
        } else if let Some(account) = filter.account {
            (
                &trees.tree(Table::IntentByAccount),
                Table::IntentByAccount,
                layout::account_prefix(account),
            )
        } else if let Some(status) = filter.status {
            (
                &trees.tree(Table::IntentByStatus),
                Table::IntentByStatus,
                layout::status_prefix(status.code()),
            )
        } else {
            (&trees.tree(Table::Intents), Table::Intents, Vec::new())
        };
        let before = before.as_ref().map(IntentId::as_str);
        let items = walk_newest_first(tree, &prefix, before, page.size, |key, value| {
            let intent = if name == Table::Intents {
                read_intent(key, value)?
            } else {
                self.indexed_intent(name, key, prefix.len())?
            };
            Ok(filter.matches(&intent).then_some(intent))
        })?;
        Ok(into_page(items, page.size, &scope, |intent| {
            intent.id.to_string()
        }))
    }

    /// Every intent in `status`, oldest first: on restart, the `Queued` ones go back to the
    /// relay in the order they were made and the `Submitted` ones are tracked again.
    pub fn intents_in_status(&self, status: IntentStatus) -> Result<Vec<Intent>, StoreError> {
        let prefix = layout::status_prefix(status.code());
        let mut intents = Vec::new();
        for entry in self
            .inner
            .trees
            .tree(Table::IntentByStatus)
            .scan_prefix(&prefix)
        {
            let (key, _) = entry?;
            let intent = self.indexed_intent(Table::IntentByStatus, &key, prefix.len())?;
            // The record is the truth: it may have moved on since the index was read.
            if intent.status == status {
                intents.push(intent);
            }
        }
        Ok(intents)
    }

    /// How many intents are in `status`, from the status index alone (its entries are
    /// written with their records, so the count is exact).
    pub fn count_intents_in_status(&self, status: IntentStatus) -> Result<usize, StoreError> {
        let prefix = layout::status_prefix(status.code());
        let mut count = 0;
        for entry in self
            .inner
            .trees
            .tree(Table::IntentByStatus)
            .scan_prefix(&prefix)
            .keys()
        {
            entry?;
            count += 1;
        }
        Ok(count)
    }

    /// Every session in `status`, oldest first: on restart, registrations and revocations
    /// under way are resumed, and active sessions get their expiry timers back.
    pub fn sessions_in_status(&self, status: SessionStatus) -> Result<Vec<Session>, StoreError> {
        let prefix = layout::status_prefix(status.code());
        let mut sessions = Vec::new();
        for entry in self
            .inner
            .trees
            .tree(Table::SessionByStatus)
            .scan_prefix(&prefix)
        {
            let (key, _) = entry?;
            let id = layout::session_id_at(Table::SessionByStatus, &key, prefix.len())?;
            let session = self
                .session(&id)?
                .ok_or_else(|| layout::corrupt(Table::SessionByStatus, &key, dangling(&id)))?;
            if session.status == status {
                sessions.push(session);
            }
        }
        Ok(sessions)
    }

    /// Makes every write that returned before this call durable (sled otherwise syncs its
    /// log every half second). Await it between a state change and a chain action that
    /// must not be repeated or lost after a crash. The fsync runs on tokio's blocking pool,
    /// so the calling task's thread is not blocked.
    ///
    /// The operator's pause of the relay, if it is paused.
    pub fn relay_pause(&self) -> Result<Option<RelayPause>, StoreError> {
        self.inner
            .meta
            .get(layout::RELAY_PAUSE_KEY)?
            .map(|bytes| layout::decode(layout::META, layout::RELAY_PAUSE_KEY, &bytes))
            .transpose()
    }

    /// Pauses the relay (`Some`) or lets it run (`None`), durably: the change is flushed
    /// before this returns, so a pause acknowledged to the operator survives a crash.
    pub async fn set_relay_pause(&self, pause: Option<&RelayPause>) -> Result<(), StoreError> {
        let meta = &self.inner.meta;
        match pause {
            Some(pause) => {
                meta.insert(
                    layout::RELAY_PAUSE_KEY,
                    layout::encode(RecordId::RelayPause, pause)?,
                )?;
            }
            None => {
                meta.remove(layout::RELAY_PAUSE_KEY)?;
            }
        }
        self.flush().await
    }

    /// Stores a new API key and flushes it, so a key shown to its holder is never lost.
    pub async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let record = RecordId::ApiKey(key.id.clone());
        let bytes = layout::encode(record.clone(), key)?;
        self.inner
            .trees
            .tree(Table::ApiKeys)
            .compare_and_swap(key.id.as_str().as_bytes(), None::<&[u8]>, Some(bytes))?
            .map_err(|_| StoreError::AlreadyExists { record })?;
        self.flush().await
    }

    /// An API key as stored.
    pub fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        let key = id.as_str().as_bytes();
        self.inner
            .trees
            .tree(Table::ApiKeys)
            .get(key)?
            .map(|bytes| layout::decode(Table::ApiKeys, key, &bytes))
            .transpose()
    }

    /// Every API key, revoked ones included, oldest first.
    pub fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.inner
            .trees
            .tree(Table::ApiKeys)
            .iter()
            .map(|entry| {
                let (key, bytes) = entry?;
                layout::decode(Table::ApiKeys, &key, &bytes)
            })
            .collect()
    }

    /// Marks an API key revoked at `now_ms` and flushes, so a revocation the operator saw
    /// succeed holds after a crash. A key revoked already keeps its first revocation time.
    /// The write is a compare-and-swap on the bytes read, retried if the key changed
    /// in between.
    pub async fn revoke_api_key(&self, id: &ApiKeyId, now_ms: u64) -> Result<ApiKey, StoreError> {
        let record = RecordId::ApiKey(id.clone());
        let name = id.as_str().as_bytes();
        loop {
            let stored = self
                .inner
                .trees
                .tree(Table::ApiKeys)
                .get(name)?
                .ok_or_else(|| StoreError::NotFound {
                    record: record.clone(),
                })?;
            let mut key: ApiKey = layout::decode(Table::ApiKeys, name, &stored)?;
            if key.revoked_at_ms.is_some() {
                return Ok(key);
            }
            key.revoked_at_ms = Some(now_ms);
            let bytes = layout::encode(record.clone(), &key)?;
            if self
                .inner
                .trees
                .tree(Table::ApiKeys)
                .compare_and_swap(name, Some(stored), Some(bytes))?
                .is_ok()
            {
                self.flush().await?;
                return Ok(key);
            }
        }
    }

    /// sled 0.34's own `flush_async` is not used: futures of concurrent calls can be left
    /// never woken (sled issues #1241 and #1308, fixed only after the last release), which
    /// froze every API call and the relay behind one lost wakeup. The blocking flush has
    /// no such bug, and concurrent calls simply share the fsync.
    ///
    /// Once the fsync is done, every change in the outbox is durable, and is told on
    /// [`Store::events`], oldest first, then taken out of the outbox. So a change is told
    /// only once no crash can undo it; a crash between the two may tell one again after the
    /// restart (at least once, never never).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|error| StoreError::Flush(error.to_string()))??;
        self.tell_outbox()
    }

    /// The bus every durable intent change is told on.
    pub fn events(&self) -> &Events {
        &self.inner.events
    }

    /// Tells and removes every change in the outbox, in the order they were written.
    fn tell_outbox(&self) -> Result<(), StoreError> {
        // A panic elsewhere while it was held leaves nothing half done: take it back.
        let _telling = self
            .inner
            .outbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let outbox = self.inner.trees.tree(Table::Outbox);
        for entry in outbox.scan_prefix(layout::OUTBOX_CHANGE_PREFIX) {
            let (key, bytes) = entry?;
            let intent: Intent = layout::decode(Table::Outbox, &key, &bytes)?;
            self.inner.events.publish(&intent);
            outbox.remove(key)?;
        }
        Ok(())
    }

    /// The intent an index entry `key` points at, its id starting at `offset`.
    fn indexed_intent(&self, tree: Table, key: &[u8], offset: usize) -> Result<Intent, StoreError> {
        let id = layout::intent_id_at(tree, key, offset)?;
        self.intent(&id)?
            .ok_or_else(|| layout::corrupt(tree, key, dangling(&id)))
    }
}

/// Decodes a stored session, checking it is the one its key names.
fn read_session(key: &[u8], bytes: &[u8]) -> Result<Session, StoreError> {
    let session: Session = layout::decode(Table::Sessions, key, bytes)?;
    if session.id.as_str().as_bytes() != key {
        return Err(layout::corrupt(
            Table::Sessions,
            key,
            format!("holds {}", session.id),
        ));
    }
    Ok(session)
}

/// Decodes a stored intent, checking it is the one its key names.
fn read_intent(key: &[u8], bytes: &[u8]) -> Result<Intent, StoreError> {
    let intent: Intent = layout::decode(Table::Intents, key, bytes)?;
    if intent.id.as_str().as_bytes() != key {
        return Err(layout::corrupt(
            Table::Intents,
            key,
            format!("holds {}", intent.id),
        ));
    }
    Ok(intent)
}

/// The revision a record is stored at when written over `revision`.
fn next_revision(id: &impl fmt::Display, revision: u64) -> Result<u64, StoreError> {
    revision
        .checked_add(1)
        .ok_or_else(|| invalid(format!("{id} is at the last possible revision")))
}

fn invalid(reason: String) -> StoreError {
    StoreError::InvalidWrite { reason }
}

fn dangling(id: &impl fmt::Display) -> String {
    format!("points at {id}, which does not exist")
}

/// What a page token is bound to: a short digest of the list and its filter. A token
/// carries it after the id it continues from, so a token of one list or filter cannot
/// continue another (where it would silently skip or repeat records).
fn list_scope(filter: &impl fmt::Debug) -> String {
    let digest = alloy::primitives::keccak256(format!("{filter:?}"));
    alloy::hex::encode(&digest[..6])
}

/// The id a page token names, when the token was made for `scope`; else `InvalidPageToken`.
fn parse_token<T>(
    page: &PageRequest,
    parse: impl Fn(&str) -> Option<T>,
    scope: &str,
) -> Result<Option<T>, StoreError> {
    page.token
        .as_deref()
        .map(|token| {
            token
                .split_once('.')
                .filter(|(_, bound)| *bound == scope)
                .and_then(|(id, _)| parse(id))
                .ok_or(StoreError::InvalidPageToken)
        })
        .transpose()
}

/// Up to `size + 1` matching items from the entries of `tree` under `prefix`, newest first,
/// starting below the id `before`; the extra item only says whether another page exists.
///
/// Keys under a prefix end in an id, and ids sort by creation, so the range below
/// `prefix ++ before` is exactly what the previous pages have not reached yet.
fn walk_newest_first<T>(
    tree: &Tree,
    prefix: &[u8],
    before: Option<&str>,
    size: usize,
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<Option<T>, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let size = page_size(size);
    let entries = match before {
        None => tree.scan_prefix(prefix),
        Some(id) => tree.range(prefix.to_vec()..layout::index_key(prefix.to_vec(), id)),
    };
    let mut items = Vec::new();
    for entry in entries.rev() {
        let (key, value) = entry?;
        if let Some(item) = visit(&key, &value)? {
            items.push(item);
            if items.len() > size {
                break;
            }
        }
    }
    Ok(items)
}

/// The page of `items` (as [`walk_newest_first`] found them), with a token when more exist.
fn into_page<T>(mut items: Vec<T>, size: usize, scope: &str, id: impl Fn(&T) -> String) -> Page<T> {
    let size = page_size(size);
    let more = items.len() > size;
    items.truncate(size);
    let next_token = if more {
        items.last().map(|last| format!("{}.{scope}", id(last)))
    } else {
        None
    };
    Page { items, next_token }
}

fn page_size(requested: usize) -> usize {
    requested.clamp(1, MAX_PAGE_SIZE)
}
