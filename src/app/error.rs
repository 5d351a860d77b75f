//! The application's one error type: a variant for each failure a caller can act on. The API
//! maps it to gRPC codes in one place (`api::error`).

use crate::{
    chain::ChainError,
    intent::InvalidIntentTransition,
    policy::Refusal,
    session::{InvalidSessionTransition, rules::RuleError},
    store::{RecordId, StoreError},
};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A field's value is wrong in itself.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The request field.
        field: String,
        /// What is wrong, and what is expected.
        reason: String,
    },
    /// The resource does not exist (or is another tenant's, which is told the same way).
    #[error("{field}: {resource} not found")]
    NotFound {
        /// The request field that names it.
        field: &'static str,
        /// Its resource name, such as `sessions/ses_...`.
        resource: String,
    },
    /// The request is well-formed but the resource's state refuses it.
    #[error("{rule}: {message}")]
    FailedPrecondition {
        /// The stable machine-readable reason, such as `SESSION_NOT_ACTIVE`.
        reason: &'static str,
        /// The field, rule or state that refused it.
        rule: String,
        /// Why, and what to do.
        message: String,
    },
    /// The caller may not do this, whoever it is: its credential does not reach so far.
    #[error("{field}: {message}")]
    PermissionDenied {
        /// The stable machine-readable reason, such as `CLIENT_ACCESS_NOT_GRANTED`.
        reason: &'static str,
        /// The request field that asks for too much.
        field: &'static str,
        /// Why, and what would be allowed.
        message: String,
    },
    /// The intent breaks its session's rules.
    #[error("{rule}: {0}", rule = .0.rule())]
    SessionRule(#[from] RuleError),
    /// The sponsoring policy refuses the operation.
    #[error("{rule}: {0}", rule = .0.rule())]
    Sponsorship(#[from] Refusal),
    /// A limit on what one daemon serves at once is reached; the request changed nothing.
    #[error("{limit}: {message}")]
    Exhausted {
        /// The stable machine-readable reason.
        reason: &'static str,
        /// The configuration field or constant that sets the limit.
        limit: &'static str,
        /// What is in use, and what to do.
        message: String,
    },
    /// The daemon is shutting down; the call may be made again once it is back.
    #[error("latchkey is shutting down; call again once it is back")]
    ShuttingDown,
    /// Too many concurrent writers to the same session; the request changed nothing.
    #[error("the session is changing under concurrent requests; retry")]
    Busy,
    /// The chain could not be read.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// A state machine refused a transition: a bug or a race the caller may retry.
    #[error(transparent)]
    SessionTransition(#[from] InvalidSessionTransition),
    /// A state machine refused a transition.
    #[error(transparent)]
    IntentTransition(#[from] InvalidIntentTransition),
    /// Something that should never happen did.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            // Decided inside the write, but a refusal like any other.
            StoreError::Refused(refusal) => Self::Sponsorship(refusal),
            StoreError::NotFound {
                record: RecordId::Policy(id),
            } => Self::not_found("policy", id.resource_name()),
            other => Self::Store(other),
        }
    }
}

impl AppError {
    /// An invalid field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A missing resource, named by its resource name, that the request's `field` names.
    pub fn not_found(field: &'static str, resource: String) -> Self {
        Self::NotFound { field, resource }
    }

    /// A refusing state: `reason` for machines, `rule` and `message` for people.
    pub fn precondition(
        reason: &'static str,
        rule: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::FailedPrecondition {
            reason,
            rule: rule.into(),
            message: message.into(),
        }
    }

    /// The stable, machine-readable reason of the refusal: what a client branches on
    /// instead of parsing the message. The README lists them all.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidArgument { .. } => reasons::INVALID_FIELD,
            Self::NotFound { resource, .. } => match resource.split('/').next() {
                Some("sessions") => reasons::SESSION_NOT_FOUND,
                Some("transactionIntents") => reasons::TRANSACTION_INTENT_NOT_FOUND,
                Some("policies") => reasons::POLICY_NOT_FOUND,
                Some("apiKeys") => reasons::API_KEY_NOT_FOUND,
                _ => reasons::NOT_FOUND,
            },
            Self::FailedPrecondition { reason, .. } | Self::PermissionDenied { reason, .. } => {
                reason
            }
            Self::SessionRule(rule) => rule.reason(),
            Self::Sponsorship(refusal) => refusal.reason(),
            Self::Exhausted { reason, .. } => reason,
            Self::Busy | Self::SessionTransition(_) | Self::IntentTransition(_) => {
                reasons::CONCURRENT_CHANGE
            }
            Self::ShuttingDown => reasons::SHUTTING_DOWN,
            Self::Chain(_) => reasons::CHAIN_UNAVAILABLE,
            Self::Store(StoreError::InvalidPageToken) => reasons::INVALID_FIELD,
            Self::Store(_) => reasons::STORE_FAILED,
            Self::Internal(_) => reasons::INTERNAL,
        }
    }
}

/// The reasons of refusals that are not a session rule's nor a policy's (those are in
/// [`RuleError::reason`] and [`Refusal::reason`]).
pub mod reasons {
    /// A field's value is wrong in itself; the metadata's `field` names it.
    pub const INVALID_FIELD: &str = "INVALID_FIELD";
    /// No such session, or another tenant's.
    pub const SESSION_NOT_FOUND: &str = "SESSION_NOT_FOUND";
    /// No such transaction intent, or another tenant's.
    pub const TRANSACTION_INTENT_NOT_FOUND: &str = "TRANSACTION_INTENT_NOT_FOUND";
    /// No such policy, or another tenant's.
    pub const POLICY_NOT_FOUND: &str = "POLICY_NOT_FOUND";
    /// No such API key.
    pub const API_KEY_NOT_FOUND: &str = "API_KEY_NOT_FOUND";
    /// Some other resource is missing.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// The session is not ACTIVE, so it takes no intents.
    pub const SESSION_NOT_ACTIVE: &str = "SESSION_NOT_ACTIVE";
    /// Nothing waits for a signature.
    pub const NO_SIGNATURE_PENDING: &str = "NO_SIGNATURE_PENDING";
    /// The signature arrived after the request's `signature_deadline`.
    pub const SIGNATURE_DEADLINE_PASSED: &str = "SIGNATURE_DEADLINE_PASSED";
    /// The session's window has closed.
    pub const SESSION_WINDOW_CLOSED: &str = "SESSION_WINDOW_CLOSED";
    /// Only an ACTIVE session can be revoked.
    pub const SESSION_NOT_REVOCABLE: &str = "SESSION_NOT_REVOCABLE";
    /// The account is owned by another key than the request's `owner`.
    pub const OWNER_MISMATCH: &str = "OWNER_MISMATCH";
    /// Simulating the interactions reverted: they would fail on chain too.
    pub const CALL_WOULD_REVERT: &str = "CALL_WOULD_REVERT";
    /// The session has used every nonce lane it has.
    pub const SESSION_LANES_EXHAUSTED: &str = "SESSION_LANES_EXHAUSTED";
    /// A registration or revocation is signed through SubmitSessionSignature.
    pub const WRONG_SIGNATURE_METHOD: &str = "WRONG_SIGNATURE_METHOD";
    /// The idempotency key was used for another request.
    pub const IDEMPOTENCY_KEY_REUSED: &str = "IDEMPOTENCY_KEY_REUSED";
    /// The daemon has no paymaster, so it sponsors nothing.
    pub const SPONSORSHIP_OFF: &str = "SPONSORSHIP_OFF";
    /// Too many unsigned requests wait on the session.
    pub const UNSIGNED_LIMIT_REACHED: &str = "UNSIGNED_LIMIT_REACHED";
    /// A limit on what the daemon serves at once; the metadata's `limit` names it.
    pub const SERVER_LIMIT_REACHED: &str = "SERVER_LIMIT_REACHED";
    /// The caller's tenant holds its whole share of a limit the daemon divides among
    /// tenants; other tenants are not affected.
    pub const TENANT_QUOTA_REACHED: &str = "TENANT_QUOTA_REACHED";
    /// The daemon is shutting down.
    pub const SHUTTING_DOWN: &str = "SHUTTING_DOWN";
    /// The record changed under concurrent requests; retry.
    pub const CONCURRENT_CHANGE: &str = "CONCURRENT_CHANGE";
    /// The chain node did not answer as expected; retry.
    pub const CHAIN_UNAVAILABLE: &str = "CHAIN_UNAVAILABLE";
    /// The store failed; the request may be retried.
    pub const STORE_FAILED: &str = "STORE_FAILED";
    /// Something that should never happen did.
    pub const INTERNAL: &str = "INTERNAL";
    /// The API key may not open sessions to their clients this far.
    pub const CLIENT_ACCESS_NOT_GRANTED: &str = "CLIENT_ACCESS_NOT_GRANTED";
    /// A client asked for what only the backend decides, such as another policy.
    pub const CLIENT_NOT_ALLOWED: &str = "CLIENT_NOT_ALLOWED";
}
