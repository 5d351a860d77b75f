//! What the store needs of a record it keeps under revision checks: its name in errors and
//! its revision.

use serde::{Serialize, de::DeserializeOwned};

use super::RecordId;
use crate::{
    ids::{IntentId, PolicyId, SessionId, TenantId},
    intent::Intent,
    policy::Policy,
    session::Session,
};

/// A record written under optimistic concurrency: sessions, intents and policies.
pub trait Record: Clone + Serialize + DeserializeOwned + Send + Sync {
    /// The record's name in errors.
    fn record_id(&self) -> RecordId;
    /// The record's id as text: its key in the store, and in every index that holds it.
    fn key(&self) -> &str;
    /// The tenant the record belongs to.
    fn tenant(&self) -> &TenantId;
    /// The session the record is or belongs to, if any: what a client's view is limited to.
    fn session(&self) -> Option<&SessionId>;
    /// Whether `text` is an id of this kind of record.
    fn is_id(text: &str) -> bool;
    /// The revision this copy was read at (0 for a copy never stored).
    fn revision(&self) -> u64;
    /// Sets the copy's revision, once a write stored it at `revision`.
    fn set_revision(&mut self, revision: u64);
}

/// Implements [`Record`] for a type with `id`, `tenant` and `revision` fields, named in errors by
/// the given [`RecordId`] variant, with ids of the given type.
macro_rules! revisioned_record {
    ($($record:ty => $variant:ident($id:ty), session: |$this:ident| $session:expr);* $(;)?) => {$(
        impl Record for $record {
            fn record_id(&self) -> RecordId {
                RecordId::$variant(self.id.clone())
            }
            fn key(&self) -> &str {
                self.id.as_str()
            }
            fn tenant(&self) -> &TenantId {
                &self.tenant
            }
            fn session(&self) -> Option<&SessionId> {
                let $this = self;
                $session
            }
            fn is_id(text: &str) -> bool {
                <$id>::parse(text).is_some()
            }
            fn revision(&self) -> u64 {
                self.revision
            }
            fn set_revision(&mut self, revision: u64) {
                self.revision = revision;
            }
        }
    )*};
}

revisioned_record!(
    Session => Session(SessionId), session: |session| Some(&session.id);
    Intent => Intent(IntentId), session: |intent| intent.session.as_ref();
    Policy => Policy(PolicyId), session: |_policy| None;
);
