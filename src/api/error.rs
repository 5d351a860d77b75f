//! The one place where errors become gRPC statuses. Each message says what went wrong and
//! what to do, and never carries internals: chain and store details go to the log instead.
//! Every refusal also carries `google.rpc.ErrorInfo` with a stable reason (and its field or
//! rule in the metadata), `BadRequest` field violations for bad input, and `RetryInfo`
//! where waiting helps, so a client branches on the reason rather than on the text.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::error;

use crate::{
    api::gate::AuthError,
    app::{AppError, reasons},
    auth::stamp::{STAMP_HEADER, StampError},
    clock::now_ms,
    policy::Refusal,
    session::rules::RuleError,
    store::StoreError,
};

/// The `domain` of every ErrorInfo latchkey sends.
pub const ERROR_DOMAIN: &str = "latchkey";

/// How long to wait before retrying a request that lost a race.
const CONFLICT_RETRY: Duration = Duration::from_millis(100);

/// How long to wait before retrying when the chain or the store failed.
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(1);

/// A refusal: `code` and `message`, with an ErrorInfo of `reason` and `metadata`.
pub(crate) fn refusal(
    code: Code,
    message: impl Into<String>,
    reason: &str,
    metadata: impl IntoIterator<Item = (&'static str, String)>,
) -> Status {
    refusal_with(code, message, reason, metadata, |_| {})
}

/// [`refusal`], with more details added by `more`.
fn refusal_with(
    code: Code,
    message: impl Into<String>,
    reason: &str,
    metadata: impl IntoIterator<Item = (&'static str, String)>,
    more: impl FnOnce(&mut ErrorDetails),
) -> Status {
    let metadata: std::collections::HashMap<String, String> = metadata
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
    let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
    more(&mut details);
    Status::with_error_details(code, message, details)
}

/// RESOURCE_EXHAUSTED for a caller over the limit that `setting` configures, with when to
/// retry both in the metadata and as gRPC's own retry information (never zero, so a client
/// that sleeps for it does not spin).
fn throttled(message: String, reason: &str, setting: &str, retry_after: Duration) -> Status {
    let retry_after = retry_after.max(Duration::from_millis(1));
    refusal_with(
        Code::ResourceExhausted,
        message,
        reason,
        [
            ("limit", setting.to_owned()),
            ("retry_after_ms", retry_after.as_millis().to_string()),
        ],
        |details| {
            details.set_retry_info(Some(retry_after));
        },
    )
}

impl From<AuthError> for Status {
    fn from(error: AuthError) -> Self {
        let message = error.to_string();
        match error {
            AuthError::Missing | AuthError::Malformed(_) | AuthError::UnknownKey => {
                let reason = match error {
                    AuthError::Missing => "CREDENTIALS_MISSING",
                    AuthError::Malformed(_) => "CREDENTIALS_MALFORMED",
                    _ => "CREDENTIALS_INVALID",
                };
                refusal(
                    Code::Unauthenticated,
                    message,
                    reason,
                    [("field", "authorization".into())],
                )
            }
            AuthError::Revoked(id) => refusal(
                Code::Unauthenticated,
                message,
                "API_KEY_REVOKED",
                [("api_key", id.resource_name())],
            ),
            AuthError::RateLimited { retry_after, .. } => throttled(
                message,
                "RATE_LIMITED",
                "api.rate_limit_per_second",
                retry_after,
            ),
            AuthError::TooManyFailures { retry_after, .. } => throttled(
                message,
                "AUTHENTICATION_FAILURES_LIMITED",
                "api.auth_failures_per_second",
                retry_after,
            ),
            AuthError::ScopeMissing { method, scope, .. } => refusal(
                Code::PermissionDenied,
                message,
                "SCOPE_MISSING",
                [("method", method.to_owned()), ("scope", scope.to_string())],
            ),
            AuthError::Stamp(ref stamp) => {
                let reason = match stamp {
                    StampError::Malformed(_) => "STAMP_MALFORMED",
                    StampError::Stale { .. } => "STAMP_STALE",
                    StampError::BadSignature => "STAMP_SIGNATURE_INVALID",
                    StampError::Replayed => "STAMP_REPLAYED",
                    StampError::Full => {
                        return refusal_with(
                            Code::ResourceExhausted,
                            message,
                            "STAMPS_LIMITED",
                            [],
                            |details| {
                                details.set_retry_info(Some(UNAVAILABLE_RETRY));
                            },
                        );
                    }
                };
                refusal(
                    Code::Unauthenticated,
                    message,
                    reason,
                    [("field", STAMP_HEADER.into())],
                )
            }
            AuthError::TwoCredentials => refusal(
                Code::Unauthenticated,
                message,
                "CREDENTIALS_MALFORMED",
                [("field", "authorization".into())],
            ),
            AuthError::UnknownClientSession => refusal(
                Code::Unauthenticated,
                message,
                "CLIENT_SESSION_UNKNOWN",
                [("field", format!("{STAMP_HEADER}.session"))],
            ),
            AuthError::ClientSessionEnded { ref session, .. } => refusal(
                Code::Unauthenticated,
                message.clone(),
                "CLIENT_SESSION_ENDED",
                [("session", session.resource_name())],
            ),
            AuthError::ClientAccessMissing {
                method, needs, has, ..
            } => refusal(
                Code::PermissionDenied,
                message,
                "CLIENT_ACCESS_MISSING",
                [
                    ("method", method.to_owned()),
                    (
                        "needs",
                        needs.map_or("API_KEY".to_owned(), |access| access.to_string()),
                    ),
                    ("has", has.to_string()),
                ],
            ),
            AuthError::Store(detail) => {
                error!(target: "api", error = %detail, "reading an API key failed");
                unavailable(
                    Code::Internal,
                    "the store failed; the request may be retried",
                    reasons::STORE_FAILED,
                )
            }
        }
    }
}

impl From<AppError> for Status {
    fn from(error: AppError) -> Self {
        let reason = error.reason();
        match error {
            AppError::InvalidArgument { field, reason: why } => invalid_field(&field, &why, reason),
            // A token the client made up or took from another list: its request to fix,
            // not a store failure to retry.
            AppError::Store(StoreError::InvalidPageToken) => invalid_field(
                "page_token",
                &StoreError::InvalidPageToken.to_string(),
                reason,
            ),
            AppError::NotFound {
                field,
                ref resource,
            } => refusal(
                Code::NotFound,
                error.to_string(),
                reason,
                [("field", field.to_owned()), ("resource", resource.clone())],
            ),
            AppError::FailedPrecondition { ref rule, .. } => refusal(
                Code::FailedPrecondition,
                error.to_string(),
                reason,
                [("rule", rule.clone())],
            ),
            AppError::PermissionDenied { field, .. } => refusal(
                Code::PermissionDenied,
                error.to_string(),
                reason,
                [("field", field.to_owned())],
            ),
            AppError::SessionRule(ref rule) => refusal_with(
                Code::FailedPrecondition,
                error.to_string(),
                reason,
                rule_metadata(rule),
                |details| {
                    // A periodic allowance comes back when its period ends.
                    if let Some(wait) = rule.retry_after_secs() {
                        details.set_retry_info(Some(Duration::from_secs(wait)));
                    }
                },
            ),
            AppError::Sponsorship(ref refusal) => policy_refusal(error.to_string(), refusal),
            AppError::Exhausted { limit, .. } => refusal(
                Code::ResourceExhausted,
                error.to_string(),
                reason,
                [("limit", limit.to_owned())],
            ),
            AppError::Busy | AppError::SessionTransition(_) | AppError::IntentTransition(_) => {
                refusal_with(
                    Code::Aborted,
                    format!("{error}; nothing was changed, retry the request"),
                    reason,
                    [],
                    |details| {
                        details.set_retry_info(Some(CONFLICT_RETRY));
                    },
                )
            }
            AppError::ShuttingDown => refusal(Code::Unavailable, error.to_string(), reason, []),
            AppError::Chain(_) | AppError::Store(_) => {
                // What failed stays in the log; the caller learns only that retrying may help.
                let (code, message, failed) = match &error {
                    AppError::Chain(_) => (
                        Code::Unavailable,
                        "the chain node did not answer as expected; retry shortly",
                        "chain request failed",
                    ),
                    _ => (
                        Code::Internal,
                        "the store failed; the request may be retried",
                        "store failed",
                    ),
                };
                error!(target: "api", error = %error, "{failed}");
                unavailable(code, message, reason)
            }
            AppError::Internal(what) => {
                error!(target: "api", what, "internal error");
                refusal(Code::Internal, "internal error", reason, [])
            }
        }
    }
}

/// INVALID_ARGUMENT for `field`, with its BadRequest violation.
fn invalid_field(field: &str, why: &str, reason: &str) -> Status {
    refusal_with(
        Code::InvalidArgument,
        format!("{field}: {why}"),
        reason,
        [("field", field.to_owned())],
        |details| {
            details.add_bad_request_violation(field, why);
        },
    )
}

/// A failure of the chain or the store: worth retrying after a moment.
fn unavailable(code: Code, message: &str, reason: &str) -> Status {
    refusal_with(code, message, reason, [], |details| {
        details.set_retry_info(Some(UNAVAILABLE_RETRY));
    })
}

/// What a session rule's refusal tells a client beyond its reason: the rule, and the
/// numbers it was decided on.
fn rule_metadata(rule: &RuleError) -> Vec<(&'static str, String)> {
    let mut metadata = vec![("rule", rule.rule().to_owned())];
    match rule {
        RuleError::WindowNotOpen { valid_after, now } => {
            metadata.extend([
                ("valid_after", valid_after.to_string()),
                ("now", now.to_string()),
            ]);
        }
        RuleError::WindowClosing {
            valid_until, now, ..
        } => {
            metadata.extend([
                ("valid_until", valid_until.to_string()),
                ("now", now.to_string()),
            ]);
        }
        RuleError::NoInteractions => metadata.push(("field", "interactions".into())),
        RuleError::ForbiddenTarget { index, target } => metadata.extend([
            ("field", format!("interactions[{index}].to")),
            ("target", target.to_string()),
        ]),
        RuleError::MalformedCalldata { index, .. } => {
            metadata.push(("field", format!("interactions[{index}].calldata")));
        }
        RuleError::CallNotAllowed {
            index,
            target,
            selector,
        } => metadata.extend([
            ("field", format!("interactions[{index}]")),
            ("target", target.to_string()),
            ("selector", selector.to_string()),
        ]),
        RuleError::ArgumentNotAllowed {
            index,
            target,
            selector,
            param,
        } => metadata.extend([
            ("field", format!("interactions[{index}]")),
            ("target", target.to_string()),
            ("selector", selector.to_string()),
            ("param", param.to_string()),
        ]),
        RuleError::SpendNotCountable { index, token, .. } => metadata.extend([
            ("field", format!("interactions[{index}]")),
            ("token", token.to_string()),
        ]),
        RuleError::SpendLimitExceeded(refusal) | RuleError::PeriodAllowanceExceeded(refusal) => {
            metadata.extend([
                ("field", format!("permissions.limits[{}]", refusal.limit)),
                ("token", refusal.token.to_string()),
                ("id", refusal.id.to_string()),
                ("requested", refusal.requested.to_string()),
                ("left", refusal.left.to_string()),
            ]);
            if refusal.period_end != 0 {
                metadata.push(("period_end", refusal.period_end.to_string()));
            }
        }
        RuleError::PeriodEnding {
            limit,
            period_end,
            now,
            ..
        } => metadata.extend([
            ("field", format!("permissions.limits[{limit}]")),
            ("period_end", period_end.to_string()),
            ("now", now.to_string()),
        ]),
        RuleError::ValuePerCallExceeded {
            index,
            value,
            limit,
        } => metadata.extend([
            ("field", format!("interactions[{index}].value")),
            ("requested", value.to_string()),
            ("limit", limit.to_string()),
        ]),
        RuleError::CallLimitReached { requested, left } => {
            metadata.extend([
                ("requested", requested.to_string()),
                ("left", left.to_string()),
            ]);
        }
        RuleError::ValueBudgetExceeded { requested, left } => {
            metadata.extend([
                ("requested", requested.to_string()),
                ("left", left.to_string()),
            ]);
        }
        RuleError::GasBudgetExceeded { requested, left } => {
            metadata.extend([
                ("requested", requested.to_string()),
                ("left", left.to_string()),
            ]);
        }
    }
    metadata
}

/// A policy's refusal; one at its limit says when its interval ends, as a retry delay.
fn policy_refusal(message: String, refusal: &Refusal) -> Status {
    let mut metadata = vec![("rule", refusal.rule().to_owned())];
    let mut retry = None;
    if let Refusal::LimitReached {
        used,
        requested,
        limit,
        window_end_ms,
        ..
    } = refusal
    {
        metadata.extend([
            ("used", used.to_string()),
            ("requested", requested.to_string()),
            ("limit", limit.to_string()),
            ("left", limit.saturating_sub(*used).to_string()),
            ("window_end_ms", window_end_ms.to_string()),
        ]);
        retry = Some(Duration::from_millis(
            window_end_ms.saturating_sub(now_ms()),
        ));
    }
    refusal_with(
        Code::FailedPrecondition,
        message,
        refusal.reason(),
        metadata,
        |details| {
            if let Some(retry) = retry {
                details.set_retry_info(Some(retry));
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reason and metadata of `status`'s ErrorInfo.
    fn info(status: &Status) -> (String, std::collections::HashMap<String, String>) {
        let info = status.get_details_error_info().expect("an ErrorInfo");
        assert_eq!(info.domain, ERROR_DOMAIN);
        (info.reason, info.metadata)
    }

    #[test]
    fn each_kind_of_error_gets_its_code_names_the_field_and_carries_its_reason() {
        let status = Status::from(AppError::invalid("owner", "expected an address"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "owner: expected an address");
        let (reason, metadata) = info(&status);
        assert_eq!(reason, "INVALID_FIELD");
        assert_eq!(metadata["field"], "owner");
        let violations = status.get_details_bad_request().expect("a BadRequest");
        assert_eq!(violations.field_violations[0].field, "owner");

        let missing = Status::from(AppError::not_found("name", "sessions/ses_x".into()));
        assert_eq!(missing.code(), Code::NotFound);
        assert_eq!(missing.message(), "name: sessions/ses_x not found");
        assert_eq!(info(&missing).0, "SESSION_NOT_FOUND");

        let refused = Status::from(AppError::precondition(
            reasons::SESSION_NOT_ACTIVE,
            "session_status",
            "no",
        ));
        assert_eq!(refused.code(), Code::FailedPrecondition);
        let (reason, metadata) = info(&refused);
        assert_eq!(reason, "SESSION_NOT_ACTIVE");
        assert_eq!(metadata["rule"], "session_status");

        let busy = Status::from(AppError::Busy);
        assert_eq!(busy.code(), Code::Aborted);
        assert!(busy.get_details_retry_info().is_some());
        // Found by tests/it/hostile.rs: a forged page token came back INTERNAL.
        let token = Status::from(AppError::from(StoreError::InvalidPageToken));
        assert_eq!(token.code(), Code::InvalidArgument);
        assert!(token.message().starts_with("page_token: "), "{token:?}");
        assert_eq!(info(&token).1["field"], "page_token");
        let internal = Status::from(AppError::Internal("held key missing"));
        assert_eq!(internal.code(), Code::Internal);
        assert!(!internal.message().contains("key"));
    }

    #[test]
    fn a_rate_limited_caller_is_told_when_to_retry_in_the_details() {
        let status = Status::from(AuthError::RateLimited {
            key: "key_x".into(),
            limit: crate::auth::RateLimit {
                per_second: 5,
                burst: 5,
            },
            retry_after: Duration::from_millis(250),
        });
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(info(&status).0, "RATE_LIMITED");
        let retry = status.get_details_retry_info().expect("a RetryInfo");
        assert_eq!(retry.retry_delay, Some(Duration::from_millis(250)));
    }
}
