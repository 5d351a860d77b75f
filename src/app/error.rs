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
    /// The resource does not exist.
    #[error("{resource} not found")]
    NotFound {
        /// The resource name or id.
        resource: String,
    },
    /// The request is well-formed but the resource's state refuses it.
    #[error("{rule}: {message}")]
    FailedPrecondition {
        /// The rule or state that refused it.
        rule: String,
        /// Why, and what to do.
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
        /// The configuration field that sets the limit.
        limit: &'static str,
        /// What is in use, and what to do.
        message: String,
    },
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
            } => Self::not_found(format!("policies/{id}")),
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

    /// A missing resource.
    pub fn not_found(resource: impl std::fmt::Display) -> Self {
        Self::NotFound {
            resource: resource.to_string(),
        }
    }

    /// A refusing state.
    pub fn precondition(rule: impl Into<String>, message: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            rule: rule.into(),
            message: message.into(),
        }
    }
}
