//! The embedded store: every table a sled tree in one directory, for `make dev` and a daemon
//! that runs alone.
//!
//! One [`Batch`] is one sled transaction over every tree (`tx.rs`); sled 0.34 runs
//! transactions under a process-wide write lock and commits all their trees in one
//! atomically recovered log batch, so every write is serializable against every other, and
//! after a crash it is either wholly there or wholly absent. Reads are plain calls: sled
//! serves them from memory. Only [`Store::flush`] waits, for an fsync, on tokio's blocking
//! pool.

mod layout;
mod tx;

#[cfg(test)]
mod tests;

use std::{
    fmt,
    path::{Path, PathBuf},
};

use alloy::primitives::{Address, B256};
use async_trait::async_trait;
use sled::Tree;

use self::{
    layout::Table,
    tx::{Staged, Trees},
};
use super::{
    Batch, IntentFilter, MAX_PAGE_SIZE, Page, PageRequest, Record, RecordId, RelayPause,
    SessionFilter, Store, StoreError, Written,
};
use crate::{
    auth::{ApiKey, ApiKeyId, TenantId},
    events::Events,
    intent::{Intent, IntentId, IntentStatus},
    policy::{Policy, PolicyId, PolicyUsage, WindowKey},
    session::{Session, SessionId, SessionStatus},
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
/// - 5: adds the `intent_by_op_hash` and `open_op_by_nonce_key` trees, and the external
///   operations of the bundler JSON-RPC (intents without a session). An older store is
///   upgraded in place: its intents are indexed by userOpHash when it is opened; a version
///   4 binary refuses version 5, since it cannot read an intent without a session.
pub const SCHEMA_VERSION: u32 = 5;

/// Versions this build upgrades in place, because their data reads as the current version
/// (bare held keys are recognised by their length until the daemon seals them; records
/// without a tenant belong to `default`; intents gain their userOpHash index on opening).
const UPGRADABLE_VERSIONS: &[u32] = &[1, 2, 3, 4];

/// The first version with the `intent_by_op_hash` index: an older store is indexed on
/// opening.
const OP_HASH_INDEX_VERSION: u32 = 5;

/// The store on sled. Share it as a [`super::SharedStore`].
pub struct SledStore {
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

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the contents: the store holds key material.
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SledStore {
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
                    if found < OP_HASH_INDEX_VERSION {
                        index_op_hashes(&db)?;
                    }
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
            db,
            trees,
            meta,
            outbox: std::sync::Mutex::new(()),
            events: Events::default(),
            path: path.to_owned(),
        })
    }

    fn usage_at(&self, key: &[u8]) -> Result<PolicyUsage, StoreError> {
        match self.trees.tree(Table::PolicyUsage).get(key)? {
            Some(bytes) => layout::decode(Table::PolicyUsage, key, &bytes),
            None => Ok(PolicyUsage::default()),
        }
    }

    /// Tells and removes every change in the outbox, in the order they were written.
    fn tell_outbox(&self) -> Result<(), StoreError> {
        // A panic elsewhere while it was held leaves nothing half done: take it back.
        let _telling = self
            .outbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let outbox = self.trees.tree(Table::Outbox);
        for entry in outbox.scan_prefix(layout::OUTBOX_CHANGE_PREFIX) {
            let (key, bytes) = entry?;
            let intent: Intent = layout::decode(Table::Outbox, &key, &bytes)?;
            self.events.publish(&intent);
            outbox.remove(key)?;
        }
        Ok(())
    }

    /// The record `table` holds under the id `key`.
    fn stored<T: Record>(&self, table: Table, key: &str) -> Result<Option<T>, StoreError> {
        let key = key.as_bytes();
        self.trees
            .tree(table)
            .get(key)?
            .map(|bytes| read_record(table, key, &bytes))
            .transpose()
    }

    /// The record of `records` that the entry `key` of `index` points at, its id starting
    /// at `offset`.
    fn indexed<T: Record>(
        &self,
        index: Table,
        records: Table,
        key: &[u8],
        offset: usize,
    ) -> Result<T, StoreError> {
        let id = key.get(offset..).unwrap_or_default();
        let bytes =
            self.trees.tree(records).get(id)?.ok_or_else(|| {
                layout::corrupt(index, key, dangling(&String::from_utf8_lossy(id)))
            })?;
        read_record(records, id, &bytes)
    }

    /// Every record of `records` that the status index `index` lists under status `code`,
    /// oldest first, that is still `in_status`: the record is the truth, and it may have
    /// moved on since the index was read.
    fn in_status<T: Record>(
        &self,
        index: Table,
        records: Table,
        code: u8,
        in_status: impl Fn(&T) -> bool,
    ) -> Result<Vec<T>, StoreError> {
        let prefix = layout::status_prefix(code);
        let mut found = Vec::new();
        for entry in self.trees.tree(index).scan_prefix(&prefix) {
            let (key, _) = entry?;
            let record = self.indexed(index, records, &key, prefix.len())?;
            if in_status(&record) {
                found.push(record);
            }
        }
        Ok(found)
    }

    /// A page of records, newest first: the walk's records that `matches` passes, after the
    /// record the page token names.
    fn list<T: Record>(
        &self,
        walk: Walk,
        scope: &str,
        page: &PageRequest,
        matches: impl Fn(&T) -> bool,
    ) -> Result<Page<T>, StoreError> {
        let before = parse_token(page, |id| T::is_id(id).then(|| id.to_owned()), scope)?;
        let (tree, prefix) = match &walk {
            Walk::Records(records) => (*records, &[][..]),
            Walk::Index(index, prefix, _) => (*index, prefix.as_slice()),
        };
        let items = walk_newest_first(
            self.trees.tree(tree),
            prefix,
            before.as_deref(),
            page.size,
            |key, value| {
                let record: T = match &walk {
                    Walk::Records(records) => read_record(*records, key, value)?,
                    Walk::Index(index, prefix, records) => {
                        self.indexed(*index, *records, key, prefix.len())?
                    }
                };
                Ok(matches(&record).then_some(record))
            },
        )?;
        Ok(into_page(items, page.size, scope, |record| {
            record.key().to_owned()
        }))
    }
}

/// What a list walks: a table of records in key order, or an index (its table and the
/// prefix of its entries that the filter selects) over a table of records.
enum Walk {
    Records(Table),
    Index(Table, Vec<u8>, Table),
}

impl Walk {
    /// The entries of a session index under `prefix`.
    fn sessions_in(index: Table, prefix: Vec<u8>) -> Self {
        Self::Index(index, prefix, Table::Sessions)
    }

    /// The entries of an intent index under `prefix`.
    fn intents_in(index: Table, prefix: Vec<u8>) -> Self {
        Self::Index(index, prefix, Table::Intents)
    }
}

/// Indexes every stored intent by its userOpHash: the upgrade of a store older than
/// [`OP_HASH_INDEX_VERSION`]. Idempotent, so an upgrade cut short is redone whole at the
/// next opening, before the version is restamped.
fn index_op_hashes(db: &sled::Db) -> Result<(), StoreError> {
    let intents = db.open_tree(Table::Intents.name())?;
    let index = db.open_tree(Table::IntentByOpHash.name())?;
    for entry in intents.iter() {
        let (key, bytes) = entry?;
        let intent: Intent = layout::decode(Table::Intents, &key, &bytes)?;
        index.insert(
            layout::index_key(
                layout::op_hash_prefix(intent.user_op_hash),
                intent.id.as_str(),
            ),
            layout::EMPTY,
        )?;
    }
    Ok(())
}

#[async_trait]
impl Store for SledStore {
    async fn write(&self, batch: &Batch<'_>) -> Result<Written, StoreError> {
        let sessions = Staged::all(&batch.sessions)?;
        let intents = Staged::all(&batch.intents)?;
        let policies = Staged::all(&batch.policies)?;
        self.trees.transact(|tx| {
            for intent in intents.iter().filter(|staged| staged.create) {
                if let Some(client_key) = &intent.record.idempotency_key
                    && let Some(session) = &intent.record.session
                    && let Some(existing) = tx.intent_for_idempotency_key(session, client_key)?
                {
                    return Ok(Written::Existing(Box::new(existing)));
                }
            }
            for session in &sessions {
                tx.write_session(session)?;
            }
            for intent in &intents {
                tx.write_intent(intent)?;
            }
            for policy in &policies {
                tx.write_policy(policy)?;
            }
            if let Some((address, secret)) = batch.held_key {
                tx.insert_held_key(address, secret)?;
            }
            Ok(Written::Stored)
        })
    }

    async fn content_digest(&self) -> Result<B256, StoreError> {
        let mut hasher = alloy::primitives::Keccak256::new();
        for table in Table::ALL.into_iter().filter(|table| table.holds_data()) {
            let tree = self.trees.tree(table);
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

    async fn policy(&self, id: &PolicyId) -> Result<Option<Policy>, StoreError> {
        self.stored(Table::Policies, id.as_str())
    }

    async fn list_policies(
        &self,
        tenant: Option<&TenantId>,
        page: &PageRequest,
    ) -> Result<Page<Policy>, StoreError> {
        let scope = list_scope(&("policies", tenant));
        self.list(
            Walk::Records(Table::Policies),
            &scope,
            page,
            |policy: &Policy| tenant.is_none_or(|tenant| &policy.tenant == tenant),
        )
    }

    async fn policy_usage(&self, id: &PolicyId) -> Result<PolicyUsage, StoreError> {
        self.usage_at(&layout::policy_total_key(id))
    }

    async fn policy_window_usage(
        &self,
        id: &PolicyId,
        window: WindowKey,
    ) -> Result<PolicyUsage, StoreError> {
        self.usage_at(&layout::policy_window_key(id, window))
    }

    async fn session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        self.stored(Table::Sessions, id.as_str())
    }

    async fn intent(&self, id: &IntentId) -> Result<Option<Intent>, StoreError> {
        self.stored(Table::Intents, id.as_str())
    }

    async fn intent_by_idempotency_key(
        &self,
        session: &SessionId,
        client_key: &str,
    ) -> Result<Option<Intent>, StoreError> {
        let key = layout::idempotency_key(session, client_key);
        let Some(id) = self.trees.tree(Table::Idempotency).get(&key)? else {
            return Ok(None);
        };
        let id = layout::intent_id_at(Table::Idempotency, &id, 0)?;
        self.stored(Table::Intents, id.as_str())?
            .ok_or_else(|| layout::corrupt(Table::Idempotency, &key, dangling(&id)))
            .map(Some)
    }

    async fn intents_by_user_op_hash(&self, hash: B256) -> Result<Vec<Intent>, StoreError> {
        let prefix = layout::op_hash_prefix(hash);
        let mut found = Vec::new();
        for key in self
            .trees
            .tree(Table::IntentByOpHash)
            .scan_prefix(&prefix)
            .keys()
            .rev()
        {
            let key = key?;
            let id = layout::intent_id_at(Table::IntentByOpHash, &key, prefix.len())?;
            let intent = self
                .stored::<Intent>(Table::Intents, id.as_str())?
                .ok_or_else(|| layout::corrupt(Table::IntentByOpHash, &key, dangling(&id)))?;
            // A rebuilt operation keeps its old entry; only its current hash finds it.
            if intent.user_op_hash == hash {
                found.push(intent);
            }
        }
        Ok(found)
    }

    async fn open_external_operations(&self, sender: Address) -> Result<usize, StoreError> {
        let mut count = 0;
        for entry in self
            .trees
            .tree(Table::OpenOpByNonceKey)
            .scan_prefix(layout::account_prefix(sender))
            .keys()
        {
            entry?;
            count += 1;
        }
        Ok(count)
    }

    async fn held_keys(&self) -> Result<Vec<(Address, Vec<u8>)>, StoreError> {
        self.trees
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

    async fn replace_held_keys(
        &self,
        changes: &[(Address, Vec<u8>, Vec<u8>)],
    ) -> Result<(), StoreError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let result = self.trees.tree(Table::HeldKeys).transaction(|tree| {
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

    async fn held_key(&self, address: Address) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .trees
            .tree(Table::HeldKeys)
            .get(address.as_slice())?
            .map(|secret| secret.to_vec()))
    }

    async fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: &PageRequest,
    ) -> Result<Page<Session>, StoreError> {
        let walk = match (filter.account, filter.status) {
            (Some(account), _) => {
                Walk::sessions_in(Table::SessionByAccount, layout::account_prefix(account))
            }
            (None, Some(status)) => {
                Walk::sessions_in(Table::SessionByStatus, layout::status_prefix(status.code()))
            }
            (None, None) => Walk::Records(Table::Sessions),
        };
        self.list(walk, &list_scope(filter), page, |session| {
            filter.matches(session)
        })
    }

    async fn list_intents(
        &self,
        filter: &IntentFilter,
        page: &PageRequest,
    ) -> Result<Page<Intent>, StoreError> {
        let walk = if let Some(session) = &filter.session {
            Walk::intents_in(Table::IntentBySession, layout::session_prefix(session))
        } else if let Some(account) = filter.account {
            Walk::intents_in(Table::IntentByAccount, layout::account_prefix(account))
        } else if let Some(status) = filter.status {
            Walk::intents_in(Table::IntentByStatus, layout::status_prefix(status.code()))
        } else {
            Walk::Records(Table::Intents)
        };
        self.list(walk, &list_scope(filter), page, |intent| {
            filter.matches(intent)
        })
    }

    async fn intents_in_status(&self, status: IntentStatus) -> Result<Vec<Intent>, StoreError> {
        self.in_status(
            Table::IntentByStatus,
            Table::Intents,
            status.code(),
            |intent: &Intent| intent.status == status,
        )
    }

    async fn count_intents_in_status(&self, status: IntentStatus) -> Result<usize, StoreError> {
        let prefix = layout::status_prefix(status.code());
        let mut count = 0;
        for entry in self
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

    async fn sessions_in_status(&self, status: SessionStatus) -> Result<Vec<Session>, StoreError> {
        self.in_status(
            Table::SessionByStatus,
            Table::Sessions,
            status.code(),
            |session: &Session| session.status == status,
        )
    }

    async fn relay_pause(&self) -> Result<Option<RelayPause>, StoreError> {
        self.meta
            .get(layout::RELAY_PAUSE_KEY)?
            .map(|bytes| layout::decode(layout::META, layout::RELAY_PAUSE_KEY, &bytes))
            .transpose()
    }

    async fn set_relay_pause(&self, pause: Option<&RelayPause>) -> Result<(), StoreError> {
        let meta = &self.meta;
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

    async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let record = RecordId::ApiKey(key.id.clone());
        let bytes = layout::encode(record.clone(), key)?;
        self.trees
            .tree(Table::ApiKeys)
            .compare_and_swap(key.id.as_str().as_bytes(), None::<&[u8]>, Some(bytes))?
            .map_err(|_| StoreError::AlreadyExists { record })?;
        self.flush().await
    }

    async fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        let key = id.as_str().as_bytes();
        self.trees
            .tree(Table::ApiKeys)
            .get(key)?
            .map(|bytes| layout::decode(Table::ApiKeys, key, &bytes))
            .transpose()
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.trees
            .tree(Table::ApiKeys)
            .iter()
            .map(|entry| {
                let (key, bytes) = entry?;
                layout::decode(Table::ApiKeys, &key, &bytes)
            })
            .collect()
    }

    async fn revoke_api_key(&self, id: &ApiKeyId, now_ms: u64) -> Result<ApiKey, StoreError> {
        let record = RecordId::ApiKey(id.clone());
        let name = id.as_str().as_bytes();
        loop {
            let stored =
                self.trees
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
    async fn flush(&self) -> Result<(), StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|error| StoreError::Flush(error.to_string()))??;
        self.tell_outbox()
    }

    fn events(&self) -> &Events {
        &self.events
    }
}

/// Decodes a record stored in `table`, checking it is the one its key names.
fn read_record<T: Record>(table: Table, key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    let record: T = layout::decode(table, key, bytes)?;
    if record.key().as_bytes() != key {
        return Err(layout::corrupt(
            table,
            key,
            format!("holds {}", record.record_id()),
        ));
    }
    Ok(record)
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
