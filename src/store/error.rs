//! What can go wrong in the store, one variant for each failure a caller can act on.

use std::fmt;

use alloy::primitives::Address;

use crate::{
    auth::ApiKeyId,
    intent::IntentId,
    policy::{PolicyId, Refusal},
    session::SessionId,
};

/// Which record an error is about, so the API can name it (and pick NOT_FOUND, ABORTED or
/// ALREADY_EXISTS) without parsing a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordId {
    /// A session record.
    Session(SessionId),
    /// An intent record.
    Intent(IntentId),
    /// A held session key, named by its public address (never by its secret).
    HeldKey(Address),
    /// A sponsorship policy.
    Policy(PolicyId),
    /// The operator's pause of the relay.
    RelayPause,
    /// An API key, named by its id (never by its secret).
    ApiKey(ApiKeyId),
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Session(id) => write!(f, "session {id}"),
            Self::Intent(id) => write!(f, "intent {id}"),
            Self::HeldKey(address) => write!(f, "held key {address}"),
            Self::Policy(id) => write!(f, "policy {id}"),
            Self::RelayPause => f.write_str("the relay's pause"),
            Self::ApiKey(id) => write!(f, "API key {id}"),
        }
    }
}

/// A store operation that failed. A failed write has written nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else wrote the record after the caller read it: the write was based on an old
    /// revision. Re-read the record, apply the change again, and retry.
    #[error(
        "{record} changed since it was read (stored revision {stored}, write based on \
         {given}); re-read it and retry"
    )]
    Conflict {
        /// The record that changed.
        record: RecordId,
        /// The revision in the store.
        stored: u64,
        /// The revision the write was based on.
        given: u64,
    },

    /// A write updates a record that does not exist; create it first.
    #[error("{record} does not exist")]
    NotFound {
        /// The missing record.
        record: RecordId,
    },

    /// A held key changed between the read and a write that replaces it (another rotation
    /// ran at the same time). Nothing was written; read the keys again.
    #[error("{0} changed while it was being replaced; nothing was written")]
    HeldKeyChanged(RecordId),

    /// A create found the id (or, for a held key, the key address) already taken.
    #[error("{record} already exists")]
    AlreadyExists {
        /// The record that exists.
        record: RecordId,
    },

    /// An external operation's sender already has an operation on its way under the same
    /// nonce key: two can never both execute. Nothing was written.
    #[error(
        "sender {sender} already has operation {existing} on its way under nonce key {nonce_key:#x}"
    )]
    NonceKeyInUse {
        /// The account.
        sender: Address,
        /// The 192-bit nonce key.
        nonce_key: alloy::primitives::aliases::U192,
        /// The operation that holds it.
        existing: IntentId,
    },

    /// The policy that would sponsor a new operation refuses it (disabled, or a limit over
    /// time is reached). Decided inside the write, so concurrent operations never overrun a
    /// limit together.
    #[error("{0}")]
    Refused(Refusal),

    /// The database was written by a different version of latchkey's storage layout.
    /// Migrate it, or point the daemon at another directory.
    #[error(
        "the store's schema version is {found}, this latchkey reads version {expected}; \
         migrate the data or use another directory"
    )]
    SchemaMismatch {
        /// The version on disk (0 when a database holds data but no version).
        found: u32,
        /// The version this build reads and writes.
        expected: u32,
    },

    /// A page token that this store never handed out (or one for another list). Start the
    /// listing again without a token.
    #[error(
        "the page token is not valid for this list and its filters; start again without one, \
         or keep the filters of the page it came from"
    )]
    InvalidPageToken,

    /// The records handed to a write do not belong together, or a write changes a field the
    /// indexes are keyed on (a record's account, session or idempotency key). This is a bug
    /// in the caller, refused so that the indexes never disagree with the records.
    #[error("refused an inconsistent write: {reason}")]
    InvalidWrite {
        /// What does not fit.
        reason: String,
    },

    /// Bytes on disk that do not decode: a damaged database or a bug in the store. Never
    /// retried; an operator has to look.
    #[error("corrupt entry in tree `{tree}` at key {key}: {reason}")]
    Corrupt {
        /// The sled tree.
        tree: &'static str,
        /// The entry's key, as text when printable, else hex. Never key material: held keys
        /// are stored under their public address.
        key: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A record could not be encoded. Today's record types always encode; the variant
    /// exists so that a future type that cannot fails loudly instead of panicking.
    #[error("{record} could not be encoded: {source}")]
    Encode {
        /// The record.
        record: RecordId,
        /// Why.
        source: serde_json::Error,
    },

    /// sled failed: I/O, or its own corruption checks. Usually not retryable.
    #[error("database error: {0}")]
    Db(#[from] sled::Error),

    /// The task that flushes the log to disk did not finish (the runtime is shutting down).
    /// Nothing is known to be durable; retry on a running daemon.
    #[error("flushing the store did not finish: {0}")]
    Flush(String),
}
