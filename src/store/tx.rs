//! Writes: one sled transaction over every table, and the record-level steps a write is
//! made of (create a record with its index entries, update one under the revision check).
//!
//! sled 0.34 runs transactions under a process-wide write lock and commits all their trees
//! in one atomically recovered log batch, so every write here is serializable against every
//! other write, and after a crash it is either wholly there or wholly absent.

use alloy::primitives::Address;
use sled::{
    Transactional, Tree,
    transaction::{
        ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
        TransactionalTree,
    },
};

use super::{
    RecordId, StoreError,
    layout::{self, EMPTY, Table},
};
use crate::{
    intent::{Intent, IntentId},
    policy::{Charge, Policy, PolicyUsage, Refusal},
    session::{Session, SessionId},
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
/// the write is based on) and its encoding as it will be stored.
pub(super) struct Staged<'a, T> {
    pub(super) record: &'a T,
    pub(super) bytes: Vec<u8>,
}

impl<'a> Staged<'a, Session> {
    /// A session stored with `revision`.
    pub(super) fn session(record: &'a Session, revision: u64) -> Result<Self, StoreError> {
        let stored = Session {
            revision,
            ..record.clone()
        };
        let bytes = layout::encode(RecordId::Session(record.id.clone()), &stored)?;
        Ok(Self { record, bytes })
    }
}

impl<'a> Staged<'a, Intent> {
    /// An intent stored with `revision`.
    pub(super) fn intent(record: &'a Intent, revision: u64) -> Result<Self, StoreError> {
        let stored = Intent {
            revision,
            ..record.clone()
        };
        let bytes = layout::encode(RecordId::Intent(record.id.clone()), &stored)?;
        Ok(Self { record, bytes })
    }
}

impl<'a> Staged<'a, Policy> {
    /// A policy stored with `revision`.
    pub(super) fn policy(record: &'a Policy, revision: u64) -> Result<Self, StoreError> {
        let stored = Policy {
            revision,
            ..record.clone()
        };
        let bytes = layout::encode(RecordId::Policy(record.id.clone()), &stored)?;
        Ok(Self { record, bytes })
    }
}

/// The tables as seen inside one transaction, in [`Table::ALL`] order.
pub(super) struct Tx<'a>(&'a [TransactionalTree]);

impl Tx<'_> {
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
    pub(super) fn insert_session(&self, staged: &Staged<'_, Session>) -> TxResult<()> {
        let session = staged.record;
        let key = session.id.as_str().as_bytes();
        if self.at(Table::Sessions).get(key)?.is_some() {
            return fail(StoreError::AlreadyExists {
                record: RecordId::Session(session.id.clone()),
            });
        }
        self.at(Table::Sessions)
            .insert(key, staged.bytes.as_slice())?;
        let id = session.id.as_str();
        self.at(Table::SessionByAccount).insert(
            layout::index_key(layout::account_prefix(session.account), id),
            EMPTY,
        )?;
        self.at(Table::SessionByStatus).insert(
            layout::index_key(layout::status_prefix(session.status.code()), id),
            EMPTY,
        )?;
        Ok(())
    }

    /// Replaces a stored session if it is still at the revision the write is based on, and
    /// moves its status index entry when its status changed.
    pub(super) fn update_session(&self, staged: &Staged<'_, Session>) -> TxResult<()> {
        let session = staged.record;
        let key = session.id.as_str().as_bytes();
        let record = || RecordId::Session(session.id.clone());
        let Some(bytes) = self.at(Table::Sessions).get(key)? else {
            return fail(StoreError::NotFound { record: record() });
        };
        let stored: Session = abort_on_err(layout::decode(Table::Sessions, key, &bytes))?;
        if stored.revision != session.revision {
            return fail(StoreError::Conflict {
                record: record(),
                stored: stored.revision,
                given: session.revision,
            });
        }
        if stored.account != session.account {
            return fail(StoreError::InvalidWrite {
                reason: format!("{} would move to another account", record()),
            });
        }
        if stored.status != session.status {
            let id = session.id.as_str();
            self.at(Table::SessionByStatus).remove(layout::index_key(
                layout::status_prefix(stored.status.code()),
                id,
            ))?;
            self.at(Table::SessionByStatus).insert(
                layout::index_key(layout::status_prefix(session.status.code()), id),
                EMPTY,
            )?;
        }
        self.at(Table::Sessions)
            .insert(key, staged.bytes.as_slice())?;
        Ok(())
    }

    /// Stores a new intent, its index entries and its idempotency mapping; `AlreadyExists`
    /// if the id is taken. The caller has checked that the idempotency key is free.
    pub(super) fn insert_intent(&self, staged: &Staged<'_, Intent>) -> TxResult<()> {
        let intent = staged.record;
        let key = intent.id.as_str().as_bytes();
        if self.at(Table::Intents).get(key)?.is_some() {
            return fail(StoreError::AlreadyExists {
                record: RecordId::Intent(intent.id.clone()),
            });
        }
        if let Some(charge) = &intent.charge {
            self.admit(charge)?;
            self.move_policy_usage(charge, PolicyUsage::default(), intent.policy_usage())?;
        }
        self.at(Table::Intents)
            .insert(key, staged.bytes.as_slice())?;
        self.record_change(&staged.bytes)?;
        let id = intent.id.as_str();
        self.at(Table::IntentBySession).insert(
            layout::index_key(layout::session_prefix(&intent.session), id),
            EMPTY,
        )?;
        self.at(Table::IntentByAccount).insert(
            layout::index_key(layout::account_prefix(intent.account), id),
            EMPTY,
        )?;
        self.at(Table::IntentByStatus).insert(
            layout::index_key(layout::status_prefix(intent.status.code()), id),
            EMPTY,
        )?;
        if let Some(client_key) = &intent.idempotency_key {
            self.at(Table::Idempotency).insert(
                layout::idempotency_key(&intent.session, client_key),
                id.as_bytes(),
            )?;
        }
        Ok(())
    }

    /// Replaces a stored intent if it is still at the revision the write is based on, and
    /// moves its status index entry when its status changed.
    pub(super) fn update_intent(&self, staged: &Staged<'_, Intent>) -> TxResult<()> {
        let intent = staged.record;
        let key = intent.id.as_str().as_bytes();
        let record = || RecordId::Intent(intent.id.clone());
        let Some(bytes) = self.at(Table::Intents).get(key)? else {
            return fail(StoreError::NotFound { record: record() });
        };
        let stored: Intent = abort_on_err(layout::decode(Table::Intents, key, &bytes))?;
        if stored.revision != intent.revision {
            return fail(StoreError::Conflict {
                record: record(),
                stored: stored.revision,
                given: intent.revision,
            });
        }
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
                reason: format!("{} would change its {field}, which is indexed", record()),
            });
        }
        if let Some(charge) = &intent.charge {
            self.move_policy_usage(charge, stored.policy_usage(), intent.policy_usage())?;
        }
        if stored.status != intent.status {
            let id = intent.id.as_str();
            self.at(Table::IntentByStatus).remove(layout::index_key(
                layout::status_prefix(stored.status.code()),
                id,
            ))?;
            self.at(Table::IntentByStatus).insert(
                layout::index_key(layout::status_prefix(intent.status.code()), id),
                EMPTY,
            )?;
        }
        self.at(Table::Intents)
            .insert(key, staged.bytes.as_slice())?;
        self.record_change(&staged.bytes)
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
    pub(super) fn insert_policy(&self, staged: &Staged<'_, Policy>) -> TxResult<()> {
        let key = staged.record.id.as_str().as_bytes();
        if self.at(Table::Policies).get(key)?.is_some() {
            return fail(StoreError::AlreadyExists {
                record: RecordId::Policy(staged.record.id.clone()),
            });
        }
        self.at(Table::Policies)
            .insert(key, staged.bytes.as_slice())?;
        Ok(())
    }

    /// Replaces a stored policy if it is still at the revision the write is based on. Its
    /// rules and creation time never change: the intervals of its limits are counted from
    /// that time, and the usage already recorded is keyed by rule index.
    pub(super) fn update_policy(&self, staged: &Staged<'_, Policy>) -> TxResult<()> {
        let policy = staged.record;
        let record = || RecordId::Policy(policy.id.clone());
        let stored = self.policy(&policy.id)?;
        if stored.revision != policy.revision {
            return fail(StoreError::Conflict {
                record: record(),
                stored: stored.revision,
                given: policy.revision,
            });
        }
        if stored.rules != policy.rules || stored.created_at_ms != policy.created_at_ms {
            return fail(StoreError::InvalidWrite {
                reason: format!("{} would change its rules or creation time", record()),
            });
        }
        self.at(Table::Policies)
            .insert(policy.id.as_str().as_bytes(), staged.bytes.as_slice())?;
        Ok(())
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
