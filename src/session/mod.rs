//! Sessions: a session key registered on a player's account, what it may do (its allowlist,
//! argument rules and spend limits) and what it has used, and the pure state machine of its
//! life. Storage and the chain only carry out what [`transition`] decides.

mod permissions;
pub mod rules;
pub mod spend;

use alloy::primitives::{Address, U256};
use serde::{Deserialize, Serialize};

pub use self::permissions::{
    ArgumentRule, Asset, CallPermission, Condition, LimitUsage, Permissions, Refusal, SelectorRule,
    SpendLimit, Usage, argument, fits,
};
pub use crate::ids::SessionId;
use crate::{
    auth::{ClientAccess, TenantId},
    ids::{IntentId, PolicyId},
    signer::PublicKey,
};

/// How long a session lasts when its creator gives no `valid_until`: 15 minutes, as long as
/// a player's sitting, and short enough that a key left in a browser soon stops working.
pub const DEFAULT_LIFETIME_SECS: u64 = 900;

/// Who holds a session key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyCustody {
    /// latchkey generated the key and signs with it; it never leaves the daemon.
    Held,
    /// The client holds the key and signs each intent itself.
    External,
}

/// Where a session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SessionStatus {
    /// Waiting for the owner's signature of the registration operation.
    PendingSignature,
    /// The registration operation is being relayed.
    Registering,
    /// Registered on chain; intents may use it inside its window.
    Active,
    /// Past its window, or its registration was never signed in time (final).
    Expired,
    /// Revocation requested: waiting for the owner's signature, or being relayed.
    Revoking,
    /// Revoked on chain (final).
    Revoked,
    /// Registration failed (final).
    Failed,
}

impl SessionStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 7] = [
        Self::PendingSignature,
        Self::Registering,
        Self::Active,
        Self::Expired,
        Self::Revoking,
        Self::Revoked,
        Self::Failed,
    ];

    /// Whether the session can change no more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Expired | Self::Revoked | Self::Failed)
    }

    /// The status as the API names it, such as `SESSION_STATUS_ACTIVE`: the name every
    /// message shows a client.
    pub fn api_name(self) -> &'static str {
        match self {
            Self::PendingSignature => "SESSION_STATUS_PENDING_SIGNATURE",
            Self::Registering => "SESSION_STATUS_REGISTERING",
            Self::Active => "SESSION_STATUS_ACTIVE",
            Self::Expired => "SESSION_STATUS_EXPIRED",
            Self::Revoking => "SESSION_STATUS_REVOKING",
            Self::Revoked => "SESSION_STATUS_REVOKED",
            Self::Failed => "SESSION_STATUS_FAILED",
        }
    }

    /// A stable one-byte code, used as a store index prefix.
    pub fn code(self) -> u8 {
        match self {
            Self::PendingSignature => 1,
            Self::Registering => 2,
            Self::Active => 3,
            Self::Expired => 4,
            Self::Revoking => 5,
            Self::Revoked => 6,
            Self::Failed => 7,
        }
    }
}

/// Something that happened to a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// The owner signed the registration operation; it is queued for relay.
    RegistrationSigned,
    /// The registration operation executed successfully.
    RegistrationConfirmed,
    /// The registration operation was refused or reverted.
    RegistrationFailed,
    /// The registration operation was never signed before its deadline.
    RegistrationExpired,
    /// Someone else deployed the account before the registration landed; the operation was
    /// rebuilt without its initCode and waits for the owner's signature again.
    RegistrationRebuilt,
    /// The client asked to revoke the session.
    RevocationRequested,
    /// The revocation operation executed successfully.
    RevocationConfirmed,
    /// The revocation operation failed; the key is still registered.
    RevocationFailed,
    /// `valid_until` has passed.
    WindowClosed,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a session in status {from:?} cannot take the event {event:?}")]
pub struct InvalidSessionTransition {
    /// The status the session was in.
    pub from: SessionStatus,
    /// The event it could not take.
    pub event: SessionEvent,
}

/// The session state machine: the status that `event` leads to from `from`.
pub fn transition(
    from: SessionStatus,
    event: &SessionEvent,
) -> Result<SessionStatus, InvalidSessionTransition> {
    use SessionEvent as E;
    use SessionStatus as S;
    let to = match (from, event) {
        (S::PendingSignature, E::RegistrationSigned) => S::Registering,
        (S::Registering, E::RegistrationRebuilt) => S::PendingSignature,
        (S::PendingSignature | S::Registering, E::RegistrationFailed) => S::Failed,
        (S::PendingSignature, E::RegistrationExpired) => S::Expired,
        (S::Registering, E::RegistrationConfirmed) => S::Active,
        (S::Active, E::RevocationRequested) => S::Revoking,
        (S::Revoking, E::RevocationConfirmed) => S::Revoked,
        (S::Revoking, E::RevocationFailed) => S::Active,
        // A registration still waiting for its signature, or an active key, lapses with its
        // window. A revocation under way goes on: it is the owner's explicit wish.
        (S::PendingSignature | S::Active, E::WindowClosed) => S::Expired,
        _ => {
            return Err(InvalidSessionTransition {
                from,
                event: event.clone(),
            });
        }
    };
    Ok(to)
}

/// A session key registered, or being registered, on an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The tenant whose keys see and act on it; `default` for sessions made before tenants.
    #[serde(default)]
    pub tenant: TenantId,
    /// The session id.
    pub id: SessionId,
    /// The smart account.
    pub account: Address,
    /// The id of the account's owner, who signs registration and revocation: an Ethereum
    /// owner's address, or a passkey's id (see [`Session::owner_key`]).
    pub owner: Address,
    /// A passkey owner's public key; `None` for an Ethereum owner, whose address is all
    /// there is to know.
    #[serde(default)]
    pub owner_p256: Option<PublicKey>,
    /// The account's CREATE2 salt.
    pub salt: U256,
    /// The chain the session lives on.
    pub chain_id: u64,
    /// The session key's id: a secp256k1 key's address, or a P-256 key's id (see
    /// [`Session::session_key`]). Its nonce lanes carry it.
    pub key: Address,
    /// A P-256 session key's public key; `None` for a secp256k1 key.
    #[serde(default)]
    pub key_p256: Option<PublicKey>,
    /// Who holds the key.
    pub custody: KeyCustody,
    /// Operations are valid when `valid_after < block time`.
    pub valid_after: u64,
    /// ... and `block time <= valid_until` (unix seconds).
    pub valid_until: u64,
    /// What the key may do.
    pub permissions: Permissions,
    /// The policy that sponsors the session's operations, unless an intent names another.
    #[serde(default)]
    pub policy: Option<PolicyId>,
    /// What the session's own client may do, calling with stamps of the session key.
    #[serde(default)]
    pub client_access: ClientAccess,
    /// Where the session is in its life.
    pub status: SessionStatus,
    /// The internal intent that registers the key.
    pub registration_intent: IntentId,
    /// The internal intent that revokes the key, once requested.
    pub revocation_intent: Option<IntentId>,
    /// Why the session failed, or why its last revocation failed.
    pub failure_reason: Option<String>,
    /// What the session's intents have spent or reserved so far, for the off-chain check.
    pub usage: Usage,
    /// The next nonce sub-lane for an intent of this session: each intent gets its own lane
    /// and sequence 0, so an intent that never executes leaves no gap behind it.
    pub next_intent_lane: u32,
    /// Bumped by the store on every write: a write based on an older revision is refused,
    /// so concurrent writers never overwrite each other's changes.
    pub revision: u64,
    /// Creation time, unix milliseconds.
    pub created_at_ms: u64,
    /// Last change, unix milliseconds.
    pub updated_at_ms: u64,
}

impl Session {
    /// The owner's public key, of its kind.
    pub fn owner_key(&self) -> PublicKey {
        self.owner_p256.unwrap_or(PublicKey::Secp256k1(self.owner))
    }

    /// The session key's public key, of its kind.
    pub fn session_key(&self) -> PublicKey {
        self.key_p256.unwrap_or(PublicKey::Secp256k1(self.key))
    }

    /// Applies `event`: the new status, and the update time.
    pub fn apply(
        &mut self,
        event: &SessionEvent,
        now_ms: u64,
    ) -> Result<(), InvalidSessionTransition> {
        self.status = transition(self.status, event)?;
        self.updated_at_ms = now_ms;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{SessionEvent as E, SessionStatus as S, *};

    #[test]
    fn the_happy_path_registers_then_revokes() {
        let mut status = S::PendingSignature;
        for (event, expected) in [
            (E::RegistrationSigned, S::Registering),
            (E::RegistrationConfirmed, S::Active),
            (E::RevocationRequested, S::Revoking),
            (E::RevocationConfirmed, S::Revoked),
        ] {
            status = transition(status, &event).unwrap();
            assert_eq!(status, expected);
        }
        assert!(status.is_final());
    }

    #[test]
    fn failures_and_expiry_lead_where_they_should() {
        assert_eq!(
            transition(S::PendingSignature, &E::RegistrationFailed),
            Ok(S::Failed)
        );
        assert_eq!(
            transition(S::Registering, &E::RegistrationFailed),
            Ok(S::Failed)
        );
        assert_eq!(transition(S::Revoking, &E::RevocationFailed), Ok(S::Active));
        assert_eq!(transition(S::Active, &E::WindowClosed), Ok(S::Expired));
        assert_eq!(
            transition(S::PendingSignature, &E::RegistrationExpired),
            Ok(S::Expired),
            "an unsigned registration ends as an intent does"
        );
        assert!(transition(S::Registering, &E::RegistrationExpired).is_err());
        assert_eq!(
            transition(S::PendingSignature, &E::WindowClosed),
            Ok(S::Expired)
        );
    }

    #[test]
    fn final_statuses_take_no_event() {
        let events = [
            E::RegistrationSigned,
            E::RegistrationConfirmed,
            E::RegistrationFailed,
            E::RegistrationExpired,
            E::RevocationRequested,
            E::RevocationConfirmed,
            E::RevocationFailed,
            E::WindowClosed,
        ];
        for status in S::ALL.into_iter().filter(|status| status.is_final()) {
            for event in &events {
                assert!(
                    transition(status, event).is_err(),
                    "{status:?} took {event:?}"
                );
            }
        }
    }

    #[test]
    fn an_active_session_cannot_be_registered_again_nor_a_pending_one_revoked() {
        assert!(transition(S::Active, &E::RegistrationSigned).is_err());
        assert!(transition(S::PendingSignature, &E::RevocationRequested).is_err());
        assert!(transition(S::Registering, &E::RevocationRequested).is_err());
        assert!(transition(S::Revoking, &E::WindowClosed).is_err());
    }

    #[test]
    fn status_codes_are_distinct() {
        let mut codes: Vec<u8> = S::ALL.iter().map(|status| status.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), S::ALL.len());
    }

    #[test]
    fn ids_parse_back_and_sort_by_creation() {
        let first = SessionId::generate();
        let second = SessionId::generate();
        assert!(first < second);
        assert_eq!(SessionId::parse(first.as_str()), Some(first));
        assert_eq!(SessionId::parse("ses_not-a-ulid"), None);
        assert_eq!(SessionId::parse("int_01J0000000000000000000000"), None);
    }
}
