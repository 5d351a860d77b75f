//! The gate every call passes first: who is calling, and whether their key may call again
//! this soon. What the caller may do with the call is the handler's to check, by scope and
//! tenant.

use std::time::{Duration, Instant};

use alloy::primitives::{B256, keccak256};

use super::{
    ADMIN_TOKEN_CALLER, ApiKeyId, Caller, RateLimit, RateLimiter, Scope, TOKEN_PREFIX, parse_token,
};
use crate::store::{Store, StoreError};

/// Which server a call came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// The application API: API keys only.
    Api,
    /// The admin service: ADMIN keys, or the configured admin token.
    Admin,
}

/// Why the gate refused a call. None of the messages repeats what the caller presented.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `authorization` header.
    #[error("authorization: missing; every call needs `authorization: Bearer <API key>`")]
    Missing,
    /// A header that is not `Bearer <credential>`, or a credential of the wrong shape.
    #[error("authorization: {0}")]
    Malformed(&'static str),
    /// No key has this id, or its secret is wrong: the two are not told apart.
    #[error("authorization: unknown API key")]
    UnknownKey,
    /// The key was revoked.
    #[error("authorization: API key {0} was revoked")]
    Revoked(ApiKeyId),
    /// The key made more requests than its rate allows.
    #[error(
        "api.rate_limit_per_second: key {key} made more than {per_second} requests a second \
         (bursts of {burst}); retry in {retry_ms} ms",
        per_second = .limit.per_second,
        burst = .limit.burst,
        retry_ms = .retry_after.as_millis().max(1)
    )]
    RateLimited {
        /// The caller, as the audit log names it.
        key: String,
        /// Its limit.
        limit: RateLimit,
        /// How long until it may call again.
        retry_after: Duration,
    },
    /// The key could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks credentials against the store's keys and the configured admin token, and
/// charges each call to its caller's rate.
#[derive(Debug)]
pub struct Gate {
    /// The admin token's hash: a presented token is hashed and the hashes compared, so the
    /// time a comparison takes says nothing about the token.
    admin_token_hash: Option<B256>,
    limiter: RateLimiter,
}

impl Gate {
    /// A gate that also lets `admin_token` into the admin service, and gives each caller
    /// `limit`.
    pub fn new(admin_token: Option<&str>, limit: RateLimit) -> Self {
        Self {
            admin_token_hash: admin_token.map(|token| keccak256(token.as_bytes())),
            limiter: RateLimiter::new(limit),
        }
    }

    /// Whether an admin token is configured.
    pub fn has_admin_token(&self) -> bool {
        self.admin_token_hash.is_some()
    }

    /// Who sent `authorization` (the header's value, if any) on `surface`, charged one
    /// request at `now`.
    pub fn authenticate(
        &self,
        store: &Store,
        authorization: Option<&str>,
        surface: Surface,
        now: Instant,
    ) -> Result<Caller, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        let credential = header
            .strip_prefix("Bearer ")
            .ok_or(AuthError::Malformed("expected `Bearer <API key>`"))?
            .trim();
        let caller = match self.admin_token_hash {
            Some(admin_hash)
                if surface == Surface::Admin && !credential.starts_with(TOKEN_PREFIX) =>
            {
                if keccak256(credential.as_bytes()) != admin_hash {
                    return Err(AuthError::Malformed(
                        "neither the admin token nor an API key (`lk_…`)",
                    ));
                }
                Caller {
                    key: ADMIN_TOKEN_CALLER.to_owned(),
                    tenant: None,
                    scopes: [Scope::Admin].into_iter().collect(),
                }
            }
            _ => {
                let (id, presented_hash) = parse_token(credential).ok_or(AuthError::Malformed(
                    "not an API key: expected `lk_` followed by the key's id and secret",
                ))?;
                let key = store
                    .api_key(&id)?
                    .filter(|key| key.secret_hash == presented_hash)
                    .ok_or(AuthError::UnknownKey)?;
                if key.revoked_at_ms.is_some() {
                    return Err(AuthError::Revoked(id));
                }
                Caller {
                    key: key.id.to_string(),
                    tenant: Some(key.tenant),
                    scopes: key.scopes,
                }
            }
        };
        self.limiter
            .try_acquire(&caller.key, now)
            .map_err(|retry_after| AuthError::RateLimited {
                key: caller.key.clone(),
                limit: self.limiter.limit(),
                retry_after,
            })?;
        Ok(caller)
    }
}
