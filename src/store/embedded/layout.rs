//! The bytes on disk: tree names, how index keys are built and taken apart, and the JSON
//! encoding of records. Everything that knows a byte offset lives here.
//!
//! | tree                 | key                                   | value            |
//! |----------------------|---------------------------------------|------------------|
//! | `sessions`           | session id                            | JSON [`Session`] |
//! | `intents`            | intent id                             | JSON [`Intent`]  |
//! | `session_by_account` | account (20 bytes) ++ session id      | empty            |
//! | `session_by_status`  | status code (1 byte) ++ session id    | empty            |
//! | `intent_by_session`  | session id ++ `0x00` ++ intent id     | empty            |
//! | `intent_by_account`  | account (20 bytes) ++ intent id       | empty            |
//! | `intent_by_status`   | status code (1 byte) ++ intent id     | empty            |
//! | `intent_by_op_hash`  | userOpHash (32 bytes) ++ intent id    | empty            |
//! | `open_op_by_nonce_key` | sender (20 bytes) ++ nonce key (24 bytes) | intent id of the external operation on its way under it |
//! | `idempotency`        | session id ++ `0x00` ++ client key    | intent id        |
//! | `held_keys`          | key address (20 bytes)                | sealed key (see [`crate::keys`]) |
//! | `policies`           | policy id                             | JSON [`Policy`]  |
//! | `policy_usage`       | policy id ++ `0x00` ++ usage key      | JSON [`PolicyUsage`] |
//! | `api_keys`           | API key id                            | JSON [`ApiKey`] (a hash of the secret, never the secret) |
//! | `outbox`             | `next`                                | u64, big-endian: the next change's number |
//! | `outbox`             | `e` ++ change number (u64, big-endian) | JSON [`Intent`] as a write left it, until it is told |
//! | `meta`               | `schema_version`                      | u32, big-endian  |
//! | `meta`               | `relay_pause`                         | JSON [`RelayPause`], while paused |
//!
//! A usage key is `0x00` for the policy's all-time usage, or `0x01` ++ rule index (u16,
//! big-endian) ++ interval index (u64, big-endian) for one interval of one limit.
//!
//! Ids are a prefix and a ULID in Crockford base32, so their byte order is their creation
//! order, and every index is sorted by creation inside its prefix.
//!
//! [`Session`]: crate::session::Session
//! [`Intent`]: crate::intent::Intent
//! [`Policy`]: crate::policy::Policy
//! [`PolicyUsage`]: crate::policy::PolicyUsage
//! [`RelayPause`]: crate::store::RelayPause
//! [`ApiKey`]: crate::auth::ApiKey

use alloy::primitives::{Address, B256, aliases::U192};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    intent::IntentId,
    policy::{PolicyId, WindowKey},
    session::SessionId,
    store::{RecordId, StoreError},
};

/// Every tree of the store but `meta`, declared once: opening the store, its transactions
/// (every write runs over all of them), the content digest and the check that an unversioned
/// directory is empty all go by this list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Table {
    Sessions,
    Intents,
    SessionByAccount,
    SessionByStatus,
    IntentBySession,
    IntentByAccount,
    IntentByStatus,
    IntentByOpHash,
    OpenOpByNonceKey,
    Idempotency,
    HeldKeys,
    Policies,
    PolicyUsage,
    ApiKeys,
    Outbox,
}

impl Table {
    /// Every table, in the order the store holds them.
    pub(super) const ALL: [Self; 15] = [
        Self::Sessions,
        Self::Intents,
        Self::SessionByAccount,
        Self::SessionByStatus,
        Self::IntentBySession,
        Self::IntentByAccount,
        Self::IntentByStatus,
        Self::IntentByOpHash,
        Self::OpenOpByNonceKey,
        Self::Idempotency,
        Self::HeldKeys,
        Self::Policies,
        Self::PolicyUsage,
        Self::ApiKeys,
        Self::Outbox,
    ];

    /// The tree's name on disk.
    pub(super) const fn name(self) -> &'static str {
        match self {
            Self::Sessions => "sessions",
            Self::Intents => "intents",
            Self::SessionByAccount => "session_by_account",
            Self::SessionByStatus => "session_by_status",
            Self::IntentBySession => "intent_by_session",
            Self::IntentByAccount => "intent_by_account",
            Self::IntentByStatus => "intent_by_status",
            Self::IntentByOpHash => "intent_by_op_hash",
            Self::OpenOpByNonceKey => "open_op_by_nonce_key",
            Self::Idempotency => "idempotency",
            Self::HeldKeys => "held_keys",
            Self::Policies => "policies",
            Self::PolicyUsage => "policy_usage",
            Self::ApiKeys => "api_keys",
            Self::Outbox => "outbox",
        }
    }

    /// Whether it holds the store's data, which the content digest covers. The outbox holds
    /// only changes on their way to being told, and empties as they are.
    pub(super) const fn holds_data(self) -> bool {
        !matches!(self, Self::Outbox)
    }

    /// Its place in [`Table::ALL`], and in the trees of a transaction.
    pub(super) const fn index(self) -> usize {
        self as usize
    }
}

/// The tree of the schema version and the relay's pause: written on its own, never inside
/// a transaction.
pub(super) const META: &str = "meta";

/// The `meta` key of the schema version.
pub(super) const SCHEMA_VERSION_KEY: &[u8] = b"schema_version";

/// The `meta` key of the operator's pause of the relay; absent while the relay runs.
pub(super) const RELAY_PAUSE_KEY: &[u8] = b"relay_pause";

/// The `outbox` key of the next change's sequence number.
pub(super) const OUTBOX_NEXT_KEY: &[u8] = b"next";

/// The prefix of every change in the `outbox`: each is `e` ++ its sequence number (u64,
/// big-endian), so they sort in the order they were written.
pub(super) const OUTBOX_CHANGE_PREFIX: &[u8] = b"e";

/// The `outbox` key of change number `sequence`.
pub(super) fn outbox_key(sequence: u64) -> Vec<u8> {
    let mut key = OUTBOX_CHANGE_PREFIX.to_vec();
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

/// The value of an index entry: the key says everything.
pub(super) const EMPTY: &[u8] = &[];

/// Separates a session id from what follows it. Ids are ASCII, so no id contains it.
const SEPARATOR: u8 = 0x00;

/// The prefix of every index entry of `account`.
pub(super) fn account_prefix(account: Address) -> Vec<u8> {
    account.as_slice().to_vec()
}

/// The prefix of every `intent_by_op_hash` entry of a userOpHash.
pub(super) fn op_hash_prefix(hash: B256) -> Vec<u8> {
    hash.as_slice().to_vec()
}

/// The `open_op_by_nonce_key` key of `sender`'s nonce key `nonce_key`.
pub(super) fn nonce_key_key(sender: Address, nonce_key: U192) -> Vec<u8> {
    let mut key = sender.as_slice().to_vec();
    key.extend_from_slice(&nonce_key.to_be_bytes::<24>());
    key
}

/// The prefix of every index entry of a status code.
pub(super) fn status_prefix(code: u8) -> Vec<u8> {
    vec![code]
}

/// The prefix of every `intent_by_session` (and `idempotency`) entry of `session`.
pub(super) fn session_prefix(session: &SessionId) -> Vec<u8> {
    let mut key = session.as_str().as_bytes().to_vec();
    key.push(SEPARATOR);
    key
}

/// An index key: a prefix, then the id it points at.
pub(super) fn index_key(mut prefix: Vec<u8>, id: &str) -> Vec<u8> {
    prefix.extend_from_slice(id.as_bytes());
    prefix
}

/// The `idempotency` key of a client's key within a session.
pub(super) fn idempotency_key(session: &SessionId, key: &str) -> Vec<u8> {
    index_key(session_prefix(session), key)
}

/// The `policy_usage` key of a policy's all-time usage.
pub(super) fn policy_total_key(policy: &PolicyId) -> Vec<u8> {
    let mut key = index_key(Vec::new(), policy.as_str());
    key.extend_from_slice(&[SEPARATOR, 0x00]);
    key
}

/// The `policy_usage` key of one interval of one limit of a policy.
pub(super) fn policy_window_key(policy: &PolicyId, window: WindowKey) -> Vec<u8> {
    let mut key = index_key(Vec::new(), policy.as_str());
    key.extend_from_slice(&[SEPARATOR, 0x01]);
    key.extend_from_slice(&window.rule.to_be_bytes());
    key.extend_from_slice(&window.index.to_be_bytes());
    key
}

/// The intent id an `idempotency` value (or an index entry) holds after `offset` bytes.
pub(super) fn intent_id_at(
    tree: Table,
    bytes: &[u8],
    offset: usize,
) -> Result<IntentId, StoreError> {
    std::str::from_utf8(bytes.get(offset..).unwrap_or_default())
        .ok()
        .and_then(IntentId::parse)
        .ok_or_else(|| corrupt(tree, bytes, "does not hold an intent id"))
}

/// A record as stored.
pub(super) fn encode<T: Serialize>(record: RecordId, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Encode { record, source })
}

/// A record read back; undecodable bytes are [`StoreError::Corrupt`], never a panic.
pub(super) fn decode<T: DeserializeOwned>(
    tree: impl Into<TreeName>,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| corrupt(tree, key, error))
}

/// A tree's name: a [`Table`]'s, or `meta`.
pub(super) struct TreeName(&'static str);

impl From<Table> for TreeName {
    fn from(table: Table) -> Self {
        Self(table.name())
    }
}

impl From<&'static str> for TreeName {
    fn from(name: &'static str) -> Self {
        Self(name)
    }
}

/// A [`StoreError::Corrupt`] for the entry at `key`.
pub(super) fn corrupt(tree: impl Into<TreeName>, key: &[u8], reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        tree: tree.into().0,
        key: printable(key),
        reason: reason.to_string(),
    }
}

/// A key as text when it is printable ASCII (ids), else as hex (accounts, status codes).
fn printable(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_graphic()) => {
            text.to_owned()
        }
        _ => alloy::hex::encode_prefixed(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_split_back_into_their_ids() {
        let session = SessionId::generate();
        let intent = IntentId::generate();
        let by_session = index_key(session_prefix(&session), intent.as_str());
        assert_eq!(
            by_session.len(),
            session.as_str().len() + 1 + intent.as_str().len()
        );
        assert_eq!(
            intent_id_at(
                Table::IntentBySession,
                &by_session,
                session_prefix(&session).len()
            )
            .unwrap(),
            intent
        );
        let by_account = index_key(account_prefix(Address::repeat_byte(7)), session.as_str());
        assert_eq!(&by_account[20..], session.as_str().as_bytes());
    }

    #[test]
    fn policy_usage_keys_never_collide() {
        let policy = PolicyId::generate();
        let total = policy_total_key(&policy);
        let first = policy_window_key(&policy, WindowKey { rule: 0, index: 0 });
        let other_rule = policy_window_key(&policy, WindowKey { rule: 1, index: 0 });
        let later = policy_window_key(&policy, WindowKey { rule: 0, index: 1 });
        assert_ne!(total, first);
        assert_ne!(first, other_rule);
        assert_ne!(first, later);
        assert!(total.starts_with(policy.as_str().as_bytes()));
        assert_eq!(first.len(), policy.as_str().len() + 2 + 2 + 8);
    }

    #[test]
    fn later_ids_sort_after_earlier_ones_under_one_prefix() {
        let first = IntentId::generate();
        let second = IntentId::generate();
        let prefix = status_prefix(2);
        assert!(index_key(prefix.clone(), first.as_str()) < index_key(prefix, second.as_str()));
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        let error = intent_id_at(Table::IntentByStatus, &[2, 0xff, 0xfe], 1).unwrap_err();
        assert!(
            matches!(&error, StoreError::Corrupt { key, .. } if key == "0x02fffe"),
            "{error:?}"
        );
        assert!(intent_id_at(Table::IntentByStatus, &[2], 5).is_err());
        assert!(decode::<u64>(Table::Sessions, b"ses_x", b"{not json").is_err());
    }

    #[test]
    fn every_table_is_in_the_list_once_at_its_index_and_in_the_layout_table() {
        let docs = include_str!("layout.rs");
        let mut names = std::collections::BTreeSet::new();
        for (index, table) in Table::ALL.iter().enumerate() {
            assert_eq!(table.index(), index, "{table:?}");
            assert!(names.insert(table.name()), "{} twice", table.name());
            assert!(
                docs.contains(&format!("//! | `{}`", table.name())),
                "the layout table misses {}",
                table.name()
            );
        }
        assert!(!names.contains(META));
    }
}
