//! The transaction intent: its record, and the pure state machine of its way to the chain.

use alloy::primitives::{Address, B256, Bytes, TxHash, U256};
use serde::{Deserialize, Serialize};

use crate::{
    auth::TenantId,
    chain::{
        contracts::ENTRY_POINT_V08,
        signature::{owner_signature, registration_id, session_operation_hash, session_signature},
        user_operation::{UserOperation, typed_data_v08},
    },
    policy::{Amount, Charge, PolicyUsage},
    session::{InvalidSessionTransition, Session, SessionEvent, SessionId, Usage},
    signer::{SignerKind, webauthn},
};
pub use crate::{call::Interaction, ids::IntentId};

/// What an intent's operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntentKind {
    /// Contract calls signed by the session key: what the API calls a transaction intent.
    Call,
    /// The owner-signed operation that registers the session key (and deploys the account
    /// when needed).
    Registration,
    /// The owner-signed operation that revokes the session key.
    Revocation,
    /// An operation signed outside latchkey, by any v0.8 account's own key, and sent through
    /// the bundler JSON-RPC: it belongs to no session, and latchkey only relays it.
    External,
}

impl IntentKind {
    /// Whether the intent belongs to a session, whose state its outcome settles.
    pub fn has_session(self) -> bool {
        !matches!(self, Self::External)
    }
}

/// Where an intent is on its way to the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IntentStatus {
    /// Waiting for a signature.
    PendingSignature,
    /// Signed, waiting for the relay.
    Queued,
    /// Sent in a `handleOps` transaction.
    Submitted,
    /// In a block, not yet as deep as the configured confirmations; a reorg sends it back
    /// to `Submitted`.
    Included,
    /// Included and executed successfully, at the configured depth (final).
    Confirmed,
    /// Included, but execution reverted (final).
    Reverted,
    /// Refused before execution, or never included (final).
    Dropped,
    /// Never signed in time (final).
    Expired,
}

impl IntentStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 8] = [
        Self::PendingSignature,
        Self::Queued,
        Self::Submitted,
        Self::Included,
        Self::Confirmed,
        Self::Reverted,
        Self::Dropped,
        Self::Expired,
    ];

    /// Whether the intent can change no more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Confirmed | Self::Reverted | Self::Dropped | Self::Expired
        )
    }

    /// Whether the operation executed on chain, so the account spent the session's limits.
    pub fn spent_limits(self) -> bool {
        matches!(self, Self::Confirmed | Self::Reverted)
    }

    /// The status as the API names it, such as `TRANSACTION_INTENT_STATUS_CONFIRMED`: the
    /// name every message shows a client.
    pub fn api_name(self) -> &'static str {
        match self {
            Self::PendingSignature => "TRANSACTION_INTENT_STATUS_PENDING_SIGNATURE",
            Self::Queued => "TRANSACTION_INTENT_STATUS_QUEUED",
            Self::Submitted => "TRANSACTION_INTENT_STATUS_SUBMITTED",
            Self::Included => "TRANSACTION_INTENT_STATUS_INCLUDED",
            Self::Confirmed => "TRANSACTION_INTENT_STATUS_CONFIRMED",
            Self::Reverted => "TRANSACTION_INTENT_STATUS_REVERTED",
            Self::Dropped => "TRANSACTION_INTENT_STATUS_DROPPED",
            Self::Expired => "TRANSACTION_INTENT_STATUS_EXPIRED",
        }
    }

    /// A stable one-byte code, used as a store index prefix.
    pub fn code(self) -> u8 {
        match self {
            Self::PendingSignature => 1,
            Self::Queued => 2,
            Self::Submitted => 3,
            Self::Confirmed => 4,
            Self::Reverted => 5,
            Self::Dropped => 6,
            Self::Expired => 7,
            Self::Included => 8,
        }
    }
}

/// Something that happened to an intent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntentEvent {
    /// A valid signature was attached.
    Signed,
    /// A `handleOps` transaction carrying the operation was sent (again, when resubmitted).
    Submitted,
    /// The transaction was lost before inclusion and the operation never executed: send it
    /// again.
    Requeued,
    /// The operation executed in a block (not yet final: the block may be reorged out).
    Included,
    /// The inclusion block reached the configured depth; `success` says whether the
    /// operation's execution succeeded.
    Finalized {
        /// The `success` flag of the `UserOperationEvent`.
        success: bool,
    },
    /// The inclusion block left the canonical chain: the operation is back to waiting for
    /// its transaction (or a new one).
    Reorged,
    /// The EntryPoint refused the operation, or it can never be included.
    Dropped,
    /// The signature deadline passed.
    SignatureTimedOut,
    /// The signed operation can no longer be valid as it is, but a rebuilt one can (its
    /// account was deployed by someone else's `createAccount`): the new operation waits
    /// for its signature.
    Rebuilt,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an intent in status {from:?} cannot take the event {event:?}")]
pub struct InvalidIntentTransition {
    /// The status the intent was in.
    pub from: IntentStatus,
    /// The event it could not take.
    pub event: IntentEvent,
}

/// The intent state machine: the status that `event` leads to from `from`.
pub fn transition(
    from: IntentStatus,
    event: &IntentEvent,
) -> Result<IntentStatus, InvalidIntentTransition> {
    use IntentEvent as E;
    use IntentStatus as S;
    let to = match (from, event) {
        (S::PendingSignature, E::Signed) => S::Queued,
        (S::PendingSignature, E::SignatureTimedOut) => S::Expired,
        (S::Queued, E::Rebuilt) => S::PendingSignature,
        (S::Queued | S::Submitted, E::Submitted) => S::Submitted,
        (S::Submitted, E::Requeued) => S::Queued,
        // From QUEUED too: a transaction given up as lost may still have landed.
        (S::Queued | S::Submitted, E::Included) => S::Included,
        (S::Included, E::Finalized { success: true }) => S::Confirmed,
        (S::Included, E::Finalized { success: false }) => S::Reverted,
        (S::Included, E::Reorged) => S::Submitted,
        (S::PendingSignature | S::Queued | S::Submitted, E::Dropped) => S::Dropped,
        _ => {
            return Err(InvalidIntentTransition {
                from,
                event: event.clone(),
            });
        }
    };
    Ok(to)
}

/// The `handleOps` transaction an intent was sent in: one relayer nonce, and every
/// transaction sent at it (a stuck one is replaced by another with higher fees; whichever
/// lands, the others never can).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    /// The latest transaction's hash, known before broadcast.
    pub tx_hash: TxHash,
    /// The relayer that sent it.
    pub relayer: Address,
    /// The relayer's account nonce it used.
    pub relayer_nonce: u64,
    /// The latest block when it was first sent: where a search for its inclusion starts.
    #[serde(default)]
    pub block: u64,
    /// Every transaction sent at this nonce, oldest first; the last is `tx_hash`.
    #[serde(default)]
    pub attempts: Vec<TxHash>,
    /// The latest block when the latest transaction was sent: how long it has waited.
    #[serde(default)]
    pub attempt_block: u64,
    /// The latest transaction's gas limit.
    #[serde(default)]
    pub gas_limit: u64,
    /// The latest transaction's fee cap, wei per gas.
    #[serde(default)]
    pub max_fee_per_gas: u128,
    /// The latest transaction's priority fee, wei per gas.
    #[serde(default)]
    pub max_priority_fee_per_gas: u128,
}

impl Submission {
    /// Every transaction hash sent at this nonce, newest first.
    pub fn hashes(&self) -> impl Iterator<Item = TxHash> + '_ {
        std::iter::once(self.tx_hash).chain(
            self.attempts
                .iter()
                .rev()
                .copied()
                .filter(move |hash| *hash != self.tx_hash),
        )
    }
}

/// How an included operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentResult {
    /// The transaction that included it.
    pub tx_hash: TxHash,
    /// The block that included it.
    pub block_number: u64,
    /// That block's hash.
    pub block_hash: B256,
    /// `actualGasUsed` of the `UserOperationEvent`.
    pub gas_used: U256,
    /// `actualGasCost` of the `UserOperationEvent`, wei.
    pub actual_cost: U256,
    /// Whether execution succeeded.
    pub success: bool,
    /// Why execution reverted, decoded.
    pub revert: Option<RevertDetails>,
}

/// A decoded failure, as the API reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertDetails {
    /// The EntryPoint's AA code, when the EntryPoint refused the operation.
    pub aa_code: Option<String>,
    /// What went wrong.
    pub cause: String,
    /// What to do about it.
    pub remedy: String,
    /// The decoded inner revert.
    pub reason: String,
}

fn canonical_entry_point() -> Address {
    ENTRY_POINT_V08
}

/// A request to act through a session key (or, internally, the owner's registration or
/// revocation of it), and its way to the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The intent id.
    pub id: IntentId,
    /// What its operation does.
    pub kind: IntentKind,
    /// The session it belongs to; `None` for an [`IntentKind::External`] operation.
    #[serde(default)]
    pub session: Option<SessionId>,
    /// Its session's tenant, kept here so lists filter without reading each session.
    #[serde(default)]
    pub tenant: TenantId,
    /// The account that executes it.
    pub account: Address,
    /// The chain it lives on.
    pub chain_id: u64,
    /// The EntryPoint its userOpHash is for.
    #[serde(default = "canonical_entry_point")]
    pub entry_point: Address,
    /// The kind of key that signs it: its session's owner for a registration or revocation,
    /// its session key for a call.
    #[serde(default)]
    pub signer: SignerKind,
    /// The calls (for [`IntentKind::Call`]).
    pub interactions: Vec<Interaction>,
    /// The user operation, signed once the intent leaves `PendingSignature`.
    pub user_op: UserOperation,
    /// Its v0.8 userOpHash: what the owner signs, and what a session key's signature binds
    /// (see [`Intent::signable_hash`]).
    pub user_op_hash: B256,
    /// The deadline a session key's signature carries (unix seconds): the account refuses
    /// the operation after it, so once it has passed, the operation can never execute.
    /// For an external operation, the `validUntil` its account's validation returned.
    /// `None` for the owner's operations, whose signature carries none.
    #[serde(default)]
    pub valid_until: Option<u64>,
    /// Where the intent is.
    pub status: IntentStatus,
    /// Every status it entered, with the time (unix ms), in order.
    pub history: Vec<(IntentStatus, u64)>,
    /// The transaction it was last sent in.
    pub submission: Option<Submission>,
    /// How it ended, once included.
    pub result: Option<IntentResult>,
    /// Why it was dropped or expired.
    pub failure_reason: Option<String>,
    /// Why the EntryPoint refused it, decoded, when it did.
    pub refusal: Option<RevertDetails>,
    /// The client's idempotency key.
    pub idempotency_key: Option<String>,
    /// When a `PendingSignature` intent expires (unix ms).
    pub signature_deadline_ms: Option<u64>,
    /// What it reserved of its session's limits.
    pub reserved: Usage,
    /// What it is charged to the policy that sponsors it, when one does.
    #[serde(default)]
    pub charge: Option<Charge>,
    /// Bumped by the store on every write: a write based on an older revision is refused,
    /// so concurrent writers never overwrite each other's changes.
    pub revision: u64,
    /// Creation time, unix ms.
    pub created_at_ms: u64,
    /// Last change, unix ms.
    pub updated_at_ms: u64,
}

impl Intent {
    /// A new intent `id` of `session` (on its account and chain) carrying `user_op`, in
    /// `status` since `now_ms`, with
    /// nothing yet submitted, reserved or decided; the caller sets what else applies.
    pub fn new(
        id: IntentId,
        kind: IntentKind,
        session: &Session,
        (user_op, user_op_hash): (UserOperation, B256),
        entry_point: Address,
        status: IntentStatus,
        now_ms: u64,
    ) -> Self {
        Self {
            id,
            kind,
            session: Some(session.id.clone()),
            tenant: session.tenant.clone(),
            account: session.account,
            chain_id: session.chain_id,
            entry_point,
            signer: match kind {
                IntentKind::Call => session.session_key().kind(),
                IntentKind::Registration | IntentKind::Revocation | IntentKind::External => {
                    session.owner_key().kind()
                }
            },
            interactions: Vec::new(),
            user_op,
            user_op_hash,
            valid_until: None,
            status,
            history: vec![(status, now_ms)],
            submission: None,
            result: None,
            failure_reason: None,
            refusal: None,
            idempotency_key: None,
            signature_deadline_ms: None,
            reserved: Usage::default(),
            charge: None,
            revision: 0,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }
    }

    /// An external operation, signed by its account's own key and accepted by the bundler
    /// JSON-RPC for `tenant`: QUEUED at once, for the relay. `valid_until` is the end of the
    /// window its validation returned, when it returned one.
    pub fn external(
        id: IntentId,
        tenant: TenantId,
        chain_id: u64,
        (user_op, user_op_hash): (UserOperation, B256),
        entry_point: Address,
        valid_until: Option<u64>,
        now_ms: u64,
    ) -> Self {
        Self {
            id,
            kind: IntentKind::External,
            session: None,
            tenant,
            account: user_op.sender,
            chain_id,
            entry_point,
            signer: SignerKind::default(),
            interactions: Vec::new(),
            user_op,
            user_op_hash,
            valid_until,
            status: IntentStatus::Queued,
            history: vec![(IntentStatus::Queued, now_ms)],
            submission: None,
            result: None,
            failure_reason: None,
            refusal: None,
            idempotency_key: None,
            signature_deadline_ms: None,
            reserved: Usage::default(),
            charge: None,
            revision: 0,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }
    }

    /// The hash its signer signs: the userOpHash for the owner, the session operation hash
    /// (bound to the session's registration and the deadline) for a session key.
    pub fn signable_hash(&self) -> B256 {
        match (self.session_key_deadline(), &self.session) {
            (Some(valid_until), Some(session)) => session_operation_hash(
                self.user_op_hash,
                registration_id(session.as_str()),
                valid_until,
            ),
            _ => self.user_op_hash,
        }
    }

    /// The deadline a session key signs into its operation: only a call's carries one.
    fn session_key_deadline(&self) -> Option<u64> {
        self.valid_until.filter(|_| self.kind == IntentKind::Call)
    }

    /// The EIP-712 typed data a wallet signs for the owner's operation (see
    /// [`typed_data_v08`]); `None` for a session key's, which signs the bare hash.
    pub fn typed_data(&self) -> Option<serde_json::Value> {
        (self.session_key_deadline().is_none() && self.signer == SignerKind::Secp256k1)
            .then(|| typed_data_v08(&self.user_op, self.entry_point, self.chain_id))
    }

    /// The challenge a WebAuthn signer's assertion carries (base64url of the signable hash);
    /// `None` for the other kinds.
    pub fn webauthn_challenge(&self) -> Option<String> {
        (self.signer == SignerKind::WebAuthn).then(|| webauthn::challenge(self.signable_hash()))
    }

    /// The user operation's signature field for `signature`, framed for its signer.
    pub fn framed_signature(&self, signature: &[u8]) -> Bytes {
        match (self.session_key_deadline(), &self.session) {
            (Some(valid_until), Some(session)) => {
                session_signature(registration_id(session.as_str()), valid_until, signature)
            }
            _ => owner_signature(signature),
        }
    }

    /// What the intent counts against its sponsoring policy now (nothing when unsponsored).
    pub fn policy_usage(&self) -> PolicyUsage {
        self.charge
            .as_ref()
            .map(|charge| charge.usage(self.status, self.result.as_ref()))
            .unwrap_or_default()
    }

    /// Carries the outcome of this intent, just settled in its status, over to its
    /// `session`: registration and revocation move its status, and a call intent
    /// that never executed gives back the limits it had reserved. Returns whether the session
    /// changed, so the caller writes both records in one store transaction.
    pub fn settle_session(
        &self,
        session: &mut Session,
        now_ms: u64,
    ) -> Result<bool, InvalidSessionTransition> {
        let reason = || {
            self.failure_reason
                .clone()
                .unwrap_or_else(|| "reverted".to_owned())
        };
        let event = match (self.kind, self.status) {
            (IntentKind::Call, status) if status.is_final() && !status.spent_limits() => {
                session.usage = session.usage.saturating_sub(&self.reserved);
                session.updated_at_ms = now_ms;
                return Ok(true);
            }
            (IntentKind::Registration, IntentStatus::Queued) => SessionEvent::RegistrationSigned,
            (IntentKind::Registration, IntentStatus::PendingSignature) => {
                // Why the owner must sign again, beside the new next action.
                session.failure_reason = self.failure_reason.clone();
                SessionEvent::RegistrationRebuilt
            }
            (IntentKind::Registration, IntentStatus::Confirmed) => {
                SessionEvent::RegistrationConfirmed
            }
            (IntentKind::Registration, IntentStatus::Expired) => {
                session.failure_reason = Some(
                    "the owner did not sign the registration before its signature_deadline"
                        .to_owned(),
                );
                SessionEvent::RegistrationExpired
            }
            (IntentKind::Registration, status) if status.is_final() => {
                session.failure_reason = Some(format!("registration {status:?}: {}", reason()));
                SessionEvent::RegistrationFailed
            }
            (IntentKind::Revocation, IntentStatus::Confirmed) => SessionEvent::RevocationConfirmed,
            (IntentKind::Revocation, status) if status.is_final() => {
                session.failure_reason = Some(format!("revocation {status:?}: {}", reason()));
                SessionEvent::RevocationFailed
            }
            _ => return Ok(false),
        };
        // A session that already lapsed keeps its final status; the intent's own record still
        // tells what happened to it.
        if session.status.is_final() {
            return Ok(false);
        }
        session.apply(&event, now_ms)?;
        Ok(true)
    }

    /// Whether the status the relay just gave the intent changes its session: a final one,
    /// or a rebuilt registration, which the owner must sign again.
    pub fn moves_session(&self) -> bool {
        if !self.kind.has_session() {
            return false;
        }
        self.status.is_final()
            || (self.kind == IntentKind::Registration
                && self.status == IntentStatus::PendingSignature)
    }

    /// Applies `event`: the new status, recorded in the history with `now_ms`.
    pub fn apply(
        &mut self,
        event: &IntentEvent,
        now_ms: u64,
    ) -> Result<(), InvalidIntentTransition> {
        let to = transition(self.status, event)?;
        if to != self.status {
            self.history.push((to, now_ms));
        }
        self.status = to;
        self.updated_at_ms = now_ms;
        Ok(())
    }
}

// What a charge counts follows its intent's status, so it is told here, beside the status;
// the policy module then needs nothing of intents.
impl Charge {
    /// What the operation counts against its policy in `status`: its worst case while it
    /// is on its way, the receipt's actual gas and cost once it executed (whether or not
    /// its calls reverted: the paymaster paid either way), and nothing if it never executed.
    pub fn usage(&self, status: IntentStatus, result: Option<&IntentResult>) -> PolicyUsage {
        match (status, result) {
            (IntentStatus::Confirmed | IntentStatus::Reverted, Some(result)) => PolicyUsage {
                pending: Amount::default(),
                settled: Amount {
                    operations: 1,
                    gas: u128::try_from(result.gas_used).unwrap_or(u128::MAX),
                    wei: u128::try_from(result.actual_cost).unwrap_or(u128::MAX),
                },
            },
            (status, _) if status.is_final() => PolicyUsage::default(),
            _ => PolicyUsage {
                pending: self.reserved,
                settled: Amount::default(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{IntentEvent as E, IntentStatus as S, *};

    #[test]
    fn the_happy_path_reaches_confirmed() {
        let mut status = S::PendingSignature;
        for (event, expected) in [
            (E::Signed, S::Queued),
            (E::Submitted, S::Submitted),
            (E::Submitted, S::Submitted),
            (E::Included, S::Included),
            (E::Reorged, S::Submitted),
            (E::Included, S::Included),
            (E::Finalized { success: true }, S::Confirmed),
        ] {
            status = transition(status, &event).unwrap();
            assert_eq!(status, expected);
        }
    }

    #[test]
    fn failures_lead_to_the_right_final_status() {
        assert_eq!(
            transition(S::Included, &E::Finalized { success: false }),
            Ok(S::Reverted)
        );
        assert_eq!(transition(S::Queued, &E::Dropped), Ok(S::Dropped));
        assert_eq!(transition(S::Submitted, &E::Dropped), Ok(S::Dropped));
        assert_eq!(
            transition(S::PendingSignature, &E::SignatureTimedOut),
            Ok(S::Expired)
        );
        assert_eq!(transition(S::Submitted, &E::Requeued), Ok(S::Queued));
    }

    #[test]
    fn final_statuses_take_no_event_and_nothing_skips_submission() {
        let events = [
            E::Signed,
            E::Submitted,
            E::Requeued,
            E::Included,
            E::Finalized { success: true },
            E::Reorged,
            E::Dropped,
            E::SignatureTimedOut,
            E::Rebuilt,
        ];
        for status in S::ALL.into_iter().filter(|status| status.is_final()) {
            for event in &events {
                assert!(
                    transition(status, event).is_err(),
                    "{status:?} took {event:?}"
                );
            }
        }
        assert_eq!(transition(S::Queued, &E::Included), Ok(S::Included));
        assert!(transition(S::PendingSignature, &E::Included).is_err());
        assert!(transition(S::Submitted, &E::Finalized { success: true }).is_err());
        assert!(transition(S::Included, &E::Dropped).is_err());
        assert!(transition(S::PendingSignature, &E::Submitted).is_err());
        assert!(transition(S::Queued, &E::SignatureTimedOut).is_err());
        // Only an operation nobody has sent can be rebuilt: one in flight may still land.
        assert_eq!(transition(S::Queued, &E::Rebuilt), Ok(S::PendingSignature));
        assert!(transition(S::Submitted, &E::Rebuilt).is_err());
    }

    #[test]
    fn only_executed_intents_spent_limits() {
        let spent: Vec<S> = S::ALL
            .into_iter()
            .filter(|status| status.spent_limits())
            .collect();
        assert_eq!(spent, vec![S::Confirmed, S::Reverted]);
    }

    #[test]
    fn ids_parse_back_and_sort_by_creation() {
        let first = IntentId::generate();
        let second = IntentId::generate();
        assert!(first < second);
        assert_eq!(IntentId::parse(second.as_str()), Some(second));
        assert_eq!(IntentId::parse("ses_01J0000000000000000000000"), None);
    }
}
