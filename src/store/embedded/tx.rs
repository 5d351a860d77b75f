//! Writes: one sled transaction over every table, and the record-level steps a batch is
//! made of (create a record with its index entries, update one under the revision check).

use alloy::primitives::Address;
use sled::{
    Transactional, Tree,
    transaction::{
        ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
        TransactionalTree,
    },
};

use super::layout::{self, EMPTY, Table};
use crate::{
    chain::ops::nonce_key,
    intent::{Intent, IntentId, IntentKind},
    policy::{Charge, Policy, PolicyUsage, Refusal},
    session::{Session, SessionId},
    store::{Change, Record, RecordId, StoreError},
};

/// The result of one step inside a transaction.
pub(super) type TxResult<T> = ConflictableTransactionResult<T, StoreError>;

/// Aborts the transaction with `error`: nothing of it is written.
pub(super) fn fail<T>(error: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(error))
}

/// The trees of every [`Table`], open, in [`Table::ALL`] order.
pub(super) struct Trees(Vec<Tree>);

impl Trees {
    /// Opens (creating when missing) every table of `db`.
    pub(super) fn open(db: &sled::Db) -> Result<Self, sled::Error> {
        Table::ALL
            .iter()
            .map(|table| db.open_tree(table.name()))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The tree of `table`.
    pub(super) fn tree(&self, table: Table) -> &Tree {
        &self.0[table.index()]
    }

    /// Runs `body` as one transaction over every table. Whatever `body` aborts with is
    /// returned as is, and nothing it wrote is kept. `body` may run more than once (sled
    /// retries on internal conflicts), so it must only read and write through the [`Tx`].
    pub(super) fn transact<A>(
        &self,
        body: impl Fn(&Tx<'_>) -> TxResult<A>,
    ) -> Result<A, StoreError> {
        self.0
            .as_slice()
            .transaction(|views| body(&Tx(views)))
            .map_err(|error| match error {
                TransactionError::Abort(error) => error,
                TransactionError::Storage(error) => StoreError::Db(error),
            })
    }
}

/// A record about to be written: the record as the caller has it (its `revision` is the one
/// an update is based on), whether it is new, and its encoding as it will be stored.
pub(super) struct Staged<'a, T> {
    pub(super) record: &'a T,
    pub(super) create: bool,
    pub(super) bytes: Vec<u8>,
}

impl<'a, T: Record> Staged<'a, T> {
    /// Every change encoded at the revision it is stored at, before the transaction: the
    /// transaction body may run more than once and should only touch the trees.
    pub(super) fn all(changes: &[Change<'a, T>]) -> Result<Vec<Self>, StoreError> {
        changes
            .iter()
            .map(|change| {
                let record = change.record();
                let mut stored = record.clone();
                stored.set_revision(change.stored_revision()?);
                Ok(Self {
                    record,
                    create: matches!(change, Change::Create(_)),
                    bytes: layout::encode(record.record_id(), &stored)?,
                })
            })
            .collect()
    }
}

/// The tables as seen inside one transaction, in [`Table::ALL`] order.
pub(super) struct Tx<'a>(&'a [TransactionalTree]);

impl Tx<'_> {
    /// Stores a session: new, or over the revision it was read at.
    pub(super) fn write_session(&self, staged: &Staged<'_, Session>) -> TxResult<()> {
        if staged.create {
            self.insert_session(staged)
        } else {
            self.update_session(staged)
        }
    }

    /// Stores an intent: new, or over the revision it was read at.
    pub(super) fn write_intent(&self, staged: &Staged<'_, Intent>) -> TxResult<()> {
        if staged.create {
            self.insert_intent(staged)
        } else {
            self.update_intent(staged)
        }
    }

    /// Stores a policy: new, or over the revision it was read at.
    pub(super) fn write_policy(&self, staged: &Staged<'_, Policy>) -> TxResult<()> {
        if staged.create {
            self.insert_policy(staged)
        } else {
            self.update_policy(staged)
        }
    }

    /// The tree of `table`.
    fn at(&self, table: Table) -> &TransactionalTree {
        &self.0[table.index()]
    }

    /// Writes `intent`, whose stored bytes are `bytes`, to the outbox as the next change,
    /// so it is told once the write is durable (see [`super::Store::flush`]).
    fn record_change(&self, bytes: &[u8]) -> TxResult<()> {
        let outbox = self.at(Table::Outbox);
        let next = match outbox.get(layout::OUTBOX_NEXT_KEY)? {
            Some(stored) => abort_on_err(
                <[u8; 8]>::try_from(stored.as_ref())
                    .map(u64::from_be_bytes)
                    .map_err(|_| {
                        layout::corrupt(Table::Outbox, layout::OUTBOX_NEXT_KEY, "not 8 bytes")
                    }),
            )?,
            None => 0,
        };
        outbox.insert(layout::outbox_key(next), bytes)?;
        outbox.insert(layout::OUTBOX_NEXT_KEY, &next.wrapping_add(1).to_be_bytes())?;
        Ok(())
    }

    /// Stores a new session and its index entries; `AlreadyExists` if the id is taken.
    fn insert_session(&self, staged: &Staged<'_, Session>) -> TxResult<()> {
        let session = staged.record;
        self.insert_new(Table::Sessions, staged)?;
        self.index(
            session,
            [
                (
                    Table::SessionByAccount,
                    layout::account_prefix(session.account),
                ),
                (
                    Table::SessionByStatus,
                    layout::status_prefix(session.status.code()),
                ),
            ],
        )
    }

    /// Replaces a stored session if it is still at the revision the write is based on, and
    /// moves its status index entry when its status changed.
    fn update_session(&self, staged: &Staged<'_, Session>) -> TxResult<()> {
        let session = staged.record;
        let stored = self.stored_at_revision(Table::Sessions, staged)?;
        if stored.account != session.account {
            return fail(StoreError::InvalidWrite {
                reason: format!("{} would move to another account", session.record_id()),
            });
        }
        let status = (stored.status.code(), session.status.code());
        self.move_status(Table::SessionByStatus, session, status)?;
        self.replace(Table::Sessions, staged)
    }

    /// Stores a new intent, its index entries and its idempotency mapping; `AlreadyExists`
    /// if the id is taken. The caller has checked that the idempotency key is free.
    fn insert_intent(&self, staged: &Staged<'_, Intent>) -> TxResult<()> {
        let intent = staged.record;
        self.insert_new(Table::Intents, staged)?;
        if let Some(charge) = &intent.charge {
            self.admit(charge)?;
            self.move_policy_usage(charge, PolicyUsage::default(), intent.policy_usage())?;
        }
        self.record_change(&staged.bytes)?;
        self.index(
            intent,
            [
                (
                    Table::IntentByAccount,
                    layout::account_prefix(intent.account),
                ),
                (
                    Table::IntentByStatus,
                    layout::status_prefix(intent.status.code()),
                ),
                (
                    Table::IntentByOpHash,
                    layout::op_hash_prefix(intent.user_op_hash),
                ),
            ],
        )?;
        if let Some(session) = &intent.session {
            self.index(
                intent,
                [(Table::IntentBySession, layout::session_prefix(session))],
            )?;
            if let Some(client_key) = &intent.idempotency_key {
                self.at(Table::Idempotency).insert(
                    layout::idempotency_key(session, client_key),
                    intent.key().as_bytes(),
                )?;
            }
        }
        if intent.kind == IntentKind::External && !intent.status.is_final() {
            self.hold_nonce_key(intent)?;
        }
        Ok(())
    }

    /// Marks `intent`'s nonce key as held by it while it is on its way; `NonceKeyInUse`
    /// when another external operation of its sender holds the key.
    fn hold_nonce_key(&self, intent: &Intent) -> TxResult<()> {
        let nonce_key = nonce_key(intent.user_op.nonce);
        let key = layout::nonce_key_key(intent.account, nonce_key);
        let table = self.at(Table::OpenOpByNonceKey);
        if let Some(existing) = table.get(&key)? {
            return fail(StoreError::NonceKeyInUse {
                sender: intent.account,
                nonce_key,
                existing: abort_on_err(layout::intent_id_at(
                    Table::OpenOpByNonceKey,
                    &existing,
                    0,
                ))?,
            });
        }
        table.insert(key, intent.key().as_bytes())?;
        Ok(())
    }

    /// Frees the nonce key an external operation held, once it is final.
    fn release_nonce_key(&self, intent: &Intent) -> TxResult<()> {
        let key = layout::nonce_key_key(intent.account, nonce_key(intent.user_op.nonce));
        let table = self.at(Table::OpenOpByNonceKey);
        if table
            .get(&key)?
            .is_some_and(|holder| holder.as_ref() == intent.key().as_bytes())
        {
            table.remove(key)?;
        }
        Ok(())
    }

    /// Replaces a stored intent if it is still at the revision the write is based on, and
    /// moves its status index entry when its status changed.
    fn update_intent(&self, staged: &Staged<'_, Intent>) -> TxResult<()> {
        let intent = staged.record;
        let stored = self.stored_at_revision(Table::Intents, staged)?;
        let moved = if stored.session != intent.session {
            Some("session")
        } else if stored.account != intent.account {
            Some("account")
        } else if stored.idempotency_key != intent.idempotency_key {
            Some("idempotency key")
        } else if stored.charge != intent.charge {
            Some("sponsorship charge")
        } else {
            None
        };
        if let Some(field) = moved {
            return fail(StoreError::InvalidWrite {
                reason: format!(
                    "{} would change its {field}, which is indexed",
                    intent.record_id()
                ),
            });
        }
        if let Some(charge) = &intent.charge {
            self.move_policy_usage(charge, stored.policy_usage(), intent.policy_usage())?;
        }
        let status = (stored.status.code(), intent.status.code());
        self.move_status(Table::IntentByStatus, intent, status)?;
        if stored.user_op_hash != intent.user_op_hash {
            // A rebuilt operation: found under its new hash too. The old entry stays, and a
            // lookup by the old hash checks the intent still carries it.
            self.index(
                intent,
                [(
                    Table::IntentByOpHash,
                    layout::op_hash_prefix(intent.user_op_hash),
                )],
            )?;
        }
        if intent.kind == IntentKind::External
            && intent.status.is_final()
            && !stored.status.is_final()
        {
            self.release_nonce_key(intent)?;
        }
        self.replace(Table::Intents, staged)?;
        self.record_change(&staged.bytes)
    }

    /// Stores a new record in `table`; `AlreadyExists` if its id is taken.
    fn insert_new<T: Record>(&self, table: Table, staged: &Staged<'_, T>) -> TxResult<()> {
        let key = staged.record.key().as_bytes();
        if self.at(table).get(key)?.is_some() {
            return fail(StoreError::AlreadyExists {
                record: staged.record.record_id(),
            });
        }
        self.replace(table, staged)
    }

    /// Writes a record's bytes over whatever `table` holds under its id.
    fn replace<T: Record>(&self, table: Table, staged: &Staged<'_, T>) -> TxResult<()> {
        self.at(table)
            .insert(staged.record.key().as_bytes(), staged.bytes.as_slice())?;
        Ok(())
    }

    /// The record `table` holds under the staged record's id, if it is still at the
    /// revision the write is based on: `NotFound` if there is none, `Conflict` if it moved
    /// on.
    fn stored_at_revision<T: Record>(&self, table: Table, staged: &Staged<'_, T>) -> TxResult<T> {
        let record = staged.record;
        let key = record.key().as_bytes();
        let Some(bytes) = self.at(table).get(key)? else {
            return fail(StoreError::NotFound {
                record: record.record_id(),
            });
        };
        let stored: T = abort_on_err(layout::decode(table, key, &bytes))?;
        if stored.revision() != record.revision() {
            return fail(StoreError::Conflict {
                record: record.record_id(),
                stored: stored.revision(),
                given: record.revision(),
            });
        }
        Ok(stored)
    }

    /// Adds `record` to each index `table` under its `prefix`.
    fn index<const N: usize>(
        &self,
        record: &impl Record,
        entries: [(Table, Vec<u8>); N],
    ) -> TxResult<()> {
        for (table, prefix) in entries {
            self.at(table)
                .insert(layout::index_key(prefix, record.key()), EMPTY)?;
        }
        Ok(())
    }

    /// Moves `record`'s entry in the status index `table` from the status code it was
    /// stored with to the one it is written with, when they differ.
    fn move_status(
        &self,
        table: Table,
        record: &impl Record,
        (before, after): (u8, u8),
    ) -> TxResult<()> {
        if before != after {
            self.at(table).remove(layout::index_key(
                layout::status_prefix(before),
                record.key(),
            ))?;
            self.index(record, [(table, layout::status_prefix(after))])?;
        }
        Ok(())
    }

    /// The intent a client's idempotency key of a session already maps to.
    pub(super) fn intent_for_idempotency_key(
        &self,
        session: &SessionId,
        client_key: &str,
    ) -> TxResult<Option<Intent>> {
        let Some(id) = self
            .at(Table::Idempotency)
            .get(layout::idempotency_key(session, client_key))?
        else {
            return Ok(None);
        };
        let id: IntentId = abort_on_err(layout::intent_id_at(Table::Idempotency, &id, 0))?;
        let key = id.as_str().as_bytes();
        let Some(bytes) = self.at(Table::Intents).get(key)? else {
            return fail(layout::corrupt(
                Table::Idempotency,
                &layout::idempotency_key(session, client_key),
                format!("maps to {id}, which does not exist"),
            ));
        };
        abort_on_err(layout::decode(Table::Intents, key, &bytes)).map(Some)
    }

    /// Stores a held key's secret under its address; `AlreadyExists` if the address is taken,
    /// so key material is never silently replaced.
    pub(super) fn insert_held_key(&self, address: Address, secret: &[u8]) -> TxResult<()> {
        if self.at(Table::HeldKeys).get(address.as_slice())?.is_some() {
            return fail(StoreError::AlreadyExists {
                record: RecordId::HeldKey(address),
            });
        }
        self.at(Table::HeldKeys)
            .insert(address.as_slice(), secret)?;
        Ok(())
    }
}

impl Tx<'_> {
    /// Stores a new policy; `AlreadyExists` if the id is taken.
    fn insert_policy(&self, staged: &Staged<'_, Policy>) -> TxResult<()> {
        self.insert_new(Table::Policies, staged)
    }

    /// Replaces a stored policy if it is still at the revision the write is based on. Its
    /// rules and creation time never change: the intervals of its limits are counted from
    /// that time, and the usage already recorded is keyed by rule index.
    fn update_policy(&self, staged: &Staged<'_, Policy>) -> TxResult<()> {
        let policy = staged.record;
        let stored = self.stored_at_revision(Table::Policies, staged)?;
        if stored.rules != policy.rules || stored.created_at_ms != policy.created_at_ms {
            return fail(StoreError::InvalidWrite {
                reason: format!(
                    "{} would change its rules or creation time",
                    policy.record_id()
                ),
            });
        }
        self.replace(Table::Policies, staged)
    }

    /// The stored policy; `NotFound` if there is none.
    fn policy(&self, id: &crate::policy::PolicyId) -> TxResult<Policy> {
        let key = id.as_str().as_bytes();
        let Some(bytes) = self.at(Table::Policies).get(key)? else {
            return fail(StoreError::NotFound {
                record: RecordId::Policy(id.clone()),
            });
        };
        abort_on_err(layout::decode(Table::Policies, key, &bytes))
    }

    /// Lets a new operation's `charge` in only if its policy, as stored now, is enabled
    /// and every limit over time has room for the operation's worst case; a revocation is
    /// always let in.
    fn admit(&self, charge: &Charge) -> TxResult<()> {
        let policy = self.policy(&charge.policy)?;
        if !policy.enabled && !charge.revocation {
            return fail(StoreError::Refused(Refusal::Disabled {
                policy: policy.id.clone(),
            }));
        }
        let mut used = Vec::with_capacity(charge.windows.len());
        for window in &charge.windows {
            let key = layout::policy_window_key(&charge.policy, *window);
            used.push((*window, self.usage_at(&key)?.total()));
        }
        let lookup = |window| {
            used.iter()
                .find(|(key, _)| *key == window)
                .map(|(_, amount)| *amount)
                .unwrap_or_default()
        };
        match policy.admit(charge, lookup) {
            Ok(()) => Ok(()),
            Err(refusal) => fail(StoreError::Refused(refusal)),
        }
    }

    /// Moves what an operation counts against its policy from `before` to `after`, in every
    /// interval it was admitted in and in the policy's all-time usage.
    fn move_policy_usage(
        &self,
        charge: &Charge,
        before: PolicyUsage,
        after: PolicyUsage,
    ) -> TxResult<()> {
        if before == after {
            return Ok(());
        }
        let keys = std::iter::once(layout::policy_total_key(&charge.policy)).chain(
            charge
                .windows
                .iter()
                .map(|window| layout::policy_window_key(&charge.policy, *window)),
        );
        for key in keys {
            let usage = self
                .usage_at(&key)?
                .saturating_sub(before)
                .saturating_add(after);
            let bytes = abort_on_err(layout::encode(
                RecordId::Policy(charge.policy.clone()),
                &usage,
            ))?;
            self.at(Table::PolicyUsage).insert(key, bytes)?;
        }
        Ok(())
    }

    fn usage_at(&self, key: &[u8]) -> TxResult<PolicyUsage> {
        match self.at(Table::PolicyUsage).get(key)? {
            Some(bytes) => abort_on_err(layout::decode(Table::PolicyUsage, key, &bytes)),
            None => Ok(PolicyUsage::default()),
        }
    }
}

/// A store error inside a transaction aborts it.
fn abort_on_err<T>(result: Result<T, StoreError>) -> TxResult<T> {
    result.map_err(ConflictableTransactionError::Abort)
}
