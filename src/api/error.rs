//! The one place where errors become gRPC statuses. Each message says what went wrong and
//! what to do, and never carries internals: chain and store details go to the log instead.

use tonic::{Code, Status};
use tracing::error;

use crate::{app::AppError, auth::AuthError, store::StoreError};

impl From<AuthError> for Status {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Missing
            | AuthError::Malformed(_)
            | AuthError::UnknownKey
            | AuthError::Revoked(_) => Status::unauthenticated(error.to_string()),
            AuthError::RateLimited { .. } => Status::resource_exhausted(error.to_string()),
            AuthError::Store(detail) => {
                error!(target: "api", error = %detail, "reading an API key failed");
                Status::internal("the store failed; the request may be retried")
            }
        }
    }
}

impl From<AppError> for Status {
    fn from(error: AppError) -> Self {
        match error {
            AppError::InvalidArgument { .. } => Status::invalid_argument(error.to_string()),
            AppError::NotFound { .. } => Status::not_found(error.to_string()),
            AppError::Exhausted { .. } => Status::resource_exhausted(error.to_string()),
            AppError::FailedPrecondition { .. }
            | AppError::SessionRule(_)
            | AppError::Sponsorship(_) => Status::failed_precondition(error.to_string()),
            AppError::Busy | AppError::SessionTransition(_) | AppError::IntentTransition(_) => {
                Status::new(
                    Code::Aborted,
                    format!("{error}; nothing was changed, retry the request"),
                )
            }
            AppError::Chain(detail) => {
                error!(target: "api", error = %detail, "chain request failed");
                Status::unavailable("the chain node did not answer as expected; retry shortly")
            }
            // A token the client made up or took from another list: its request to fix,
            // not a store failure to retry.
            AppError::Store(StoreError::InvalidPageToken) => {
                Status::invalid_argument(format!("page_token: {}", StoreError::InvalidPageToken))
            }
            AppError::Store(detail) => {
                error!(target: "api", error = %detail, "store failed");
                Status::internal("the store failed; the request may be retried")
            }
            AppError::Internal(what) => {
                error!(target: "api", what, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_error_gets_its_code_and_names_the_field() {
        let status = Status::from(AppError::invalid("owner", "expected an address"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "owner: expected an address");
        assert_eq!(
            Status::from(AppError::not_found("sessions/x")).code(),
            Code::NotFound
        );
        assert_eq!(
            Status::from(AppError::precondition("status", "no")).code(),
            Code::FailedPrecondition
        );
        assert_eq!(Status::from(AppError::Busy).code(), Code::Aborted);
        // Found by tests/it/hostile.rs: a forged page token came back INTERNAL.
        let token = Status::from(AppError::from(StoreError::InvalidPageToken));
        assert_eq!(token.code(), Code::InvalidArgument);
        assert!(token.message().starts_with("page_token: "), "{token:?}");
        let internal = Status::from(AppError::Internal("held key missing"));
        assert_eq!(internal.code(), Code::Internal);
        assert!(!internal.message().contains("key"));
    }
}
