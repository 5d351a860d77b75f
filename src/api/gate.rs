//! The gate every call passes first: who is calling (by API key, the admin token, or a
//! client session's stamp), whether they may call again this soon, and whether their scopes
//! cover the method. Which records the caller may touch is the use case's to check, by
//! tenant, and for a client by session.

use std::time::{Duration, Instant};

use alloy::primitives::{B256, keccak256};

use crate::{
    auth::{
        ADMIN_TOKEN_CALLER, ApiKeyId, Caller, ClientAccess, ClientSession, FailedAuthentications,
        Peer, RateLimit, RateLimiter, RefusalLog, Scope, Scopes, TOKEN_PREFIX, parse_token,
        stamp::{Stamp, StampError, UsedNonces},
    },
    clock::{now_ms, wall_clock_secs},
    session::{SessionId, SessionStatus},
    signer::PublicKey,
    store::{Store, StoreError},
};

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
    /// The peer failed to authenticate too often; its credential was not looked at.
    #[error(
        "authorization: too many failed authentications from this address (more than \
         {per_second} a second, bursts of {burst}); retry in {retry_ms} ms",
        per_second = .limit.per_second,
        burst = .limit.burst,
        retry_ms = .retry_after.as_millis().max(1)
    )]
    TooManyFailures {
        /// The budget each peer gets.
        limit: RateLimit,
        /// How long until the peer may try again.
        retry_after: Duration,
    },
    /// The caller is who it says, but its key lacks the method's scope.
    #[error("authorization: {method} needs the {scope} scope; API key {key} has {has}")]
    ScopeMissing {
        /// The method, as `Service/Method`.
        method: &'static str,
        /// The scope it needs.
        scope: Scope,
        /// The caller, as the audit log names it.
        key: String,
        /// What the caller's key has.
        has: Scopes,
    },
    /// A stamp that is malformed, stale, replayed or not the key's signature of the request.
    #[error(transparent)]
    Stamp(#[from] StampError),
    /// Both an API key and a stamp: a call has one credential.
    #[error("authorization: give either an API key or a latchkey-stamp, not both")]
    TwoCredentials,
    /// The stamp names no session that is open to clients and has the stamp's key. The
    /// three are told alike, so a stamp learns nothing of sessions it does not hold.
    #[error(
        "latchkey-stamp.session: no session with client access has this id and key \
         (publicKey)"
    )]
    UnknownClientSession,
    /// The stamp's session has ended, and its client access with it.
    #[error(
        "latchkey-stamp.session: {session} is {status}; its client access ended with it",
        session = .session.resource_name()
    )]
    ClientSessionEnded {
        /// The session.
        session: SessionId,
        /// Why it has ended, as the API names its status.
        status: &'static str,
    },
    /// A client's session may not call this method at all, or not with its access.
    #[error(
        "latchkey-stamp: {method} {needs}; session {session} has {has}",
        needs = match .needs {
            Some(access) => format!("needs {access}"),
            None => "is not open to client sessions (use an API key)".to_owned(),
        },
        session = .session.resource_name()
    )]
    ClientAccessMissing {
        /// The method, as `Service/Method`.
        method: &'static str,
        /// The access it needs; `None` when clients may not call it.
        needs: Option<ClientAccess>,
        /// The session.
        session: SessionId,
        /// What the session's client may do.
        has: ClientAccess,
    },
    /// The key could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AuthError {
    /// The key of a caller the gate recognised and still refused.
    pub fn known_caller(&self) -> Option<&str> {
        match self {
            Self::RateLimited { key, .. } | Self::ScopeMissing { key, .. } => Some(key),
            Self::ClientAccessMissing { session, .. } => Some(session.as_str()),
            _ => None,
        }
    }

    /// Whether the caller failed to show who it is (as opposed to being known and refused):
    /// such failures are charged to its address.
    pub fn is_failed_authentication(&self) -> bool {
        matches!(
            self,
            Self::Missing
                | Self::Malformed(_)
                | Self::UnknownKey
                | Self::Revoked(_)
                | Self::Stamp(_)
                | Self::TwoCredentials
                | Self::UnknownClientSession
                | Self::ClientSessionEnded { .. }
        )
    }
}

/// Checks credentials against the store's keys and the configured admin token, charges
/// each call to its caller's rate, and each failed authentication to its peer's budget.
#[derive(Debug)]
pub struct Gate {
    /// The admin token's hash: a presented token is hashed and the hashes compared, so the
    /// time a comparison takes says nothing about the token.
    admin_token_hash: Option<B256>,
    limiter: RateLimiter,
    failures: FailedAuthentications,
    refusals: RefusalLog,
    nonces: UsedNonces,
}

/// Most callers whose request rate is tracked at once; callers are keys, so this is far more
/// than a deployment has.
const MAX_RATED_CALLERS: usize = 100_000;

impl Gate {
    /// A gate that also lets `admin_token` into the admin service, gives each caller `limit`
    /// and each peer `failure_limit` failed authentications, and takes client stamps made
    /// within `stamps`' window, each once.
    pub fn new(
        admin_token: Option<&str>,
        limit: RateLimit,
        failure_limit: RateLimit,
        stamps: UsedNonces,
    ) -> Self {
        Self {
            admin_token_hash: admin_token.map(|token| keccak256(token.as_bytes())),
            limiter: RateLimiter::new(limit, MAX_RATED_CALLERS),
            failures: FailedAuthentications::new(failure_limit),
            refusals: RefusalLog::default(),
            nonces: stamps,
        }
    }

    /// Who the stamp in `header` says is calling `path` with `message` (the request's protobuf bytes),
    /// from `peer` at `now`: its session's client, if the stamp is the session key's
    /// signature of this request, fresh, never used before, and the session is open to
    /// clients and has not ended. A failure is charged to the peer's budget, as a bad key's
    /// is; a client is charged its session's request rate.
    pub async fn authenticate_client(
        &self,
        store: &dyn Store,
        header: &str,
        path: &str,
        message: &[u8],
        peer: Peer,
        now: Instant,
    ) -> Result<Caller, AuthError> {
        self.charged(
            peer,
            now,
            self.identify_client(store, header, path, message),
        )
        .await
    }

    async fn identify_client(
        &self,
        store: &dyn Store,
        header: &str,
        path: &str,
        message: &[u8],
    ) -> Result<Caller, AuthError> {
        let stamp = &Stamp::parse(header)?;
        let session = store
            .session(&stamp.session)
            .await?
            .filter(|session| {
                session.client_access != ClientAccess::None
                    && session.key_p256 == Some(PublicKey::P256(stamp.public_key))
            })
            .ok_or(AuthError::UnknownClientSession)?;
        // The signature first: only the key's holder learns anything more, and only a
        // verified stamp may use up a nonce.
        stamp.verify(path, message)?;
        self.nonces.window().check(stamp.timestamp_ms, now_ms())?;
        let ended = match session.status {
            SessionStatus::Expired | SessionStatus::Revoked | SessionStatus::Failed => {
                Some(session.status.api_name())
            }
            _ if session.valid_until < wall_clock_secs() => Some("past its valid_until"),
            _ => None,
        };
        if let Some(status) = ended {
            return Err(AuthError::ClientSessionEnded {
                session: session.id,
                status,
            });
        }
        self.nonces.claim(stamp, now_ms())?;
        let mut scopes = vec![Scope::Read];
        if session.client_access == ClientAccess::ReadWrite {
            scopes.push(Scope::Write);
        }
        Ok(Caller {
            key: session.id.to_string(),
            tenant: Some(session.tenant.clone()),
            scopes: scopes.into_iter().collect(),
            client_access: session.client_access,
            client: Some(ClientSession {
                tenant: session.tenant,
                session: session.id,
                account: session.account,
            }),
        })
    }

    /// When the gate's refusals were last written to the audit log, by whom they refused.
    pub fn refusals(&self) -> &RefusalLog {
        &self.refusals
    }

    /// Whether an admin token is configured.
    pub fn has_admin_token(&self) -> bool {
        self.admin_token_hash.is_some()
    }

    /// Who `peer` is, by `authorization` (the header's value, if any) on `surface`,
    /// charged one request at `now`. A peer over its budget of failures is refused before
    /// its credential is looked at; a failure is charged to its budget.
    pub async fn authenticate(
        &self,
        store: &dyn Store,
        authorization: Result<Option<&str>, AuthError>,
        surface: Surface,
        peer: Peer,
        now: Instant,
    ) -> Result<Caller, AuthError> {
        self.charged(peer, now, self.identify(store, authorization, surface))
            .await
    }

    /// Charges `caller` one more request at `now`: each call of a JSON-RPC batch after the
    /// first, which its authentication paid for.
    pub fn charge(&self, caller: &Caller, now: Instant) -> Result<(), AuthError> {
        self.limiter
            .try_acquire(&caller.key, now)
            .map_err(|retry_after| AuthError::RateLimited {
                key: caller.key.clone(),
                limit: self.limiter.limit(),
                retry_after,
            })
    }

    /// The caller `identified` names, if `peer` may still try to authenticate at `now`: a
    /// failure is charged to the peer's budget, and the caller one request of its rate.
    async fn charged(
        &self,
        peer: Peer,
        now: Instant,
        identified: impl Future<Output = Result<Caller, AuthError>>,
    ) -> Result<Caller, AuthError> {
        self.failures
            .check(peer, now)
            .map_err(|retry_after| AuthError::TooManyFailures {
                limit: self.failures.limit(),
                retry_after,
            })?;
        let caller = identified.await;
        if let Err(error) = &caller
            && error.is_failed_authentication()
        {
            self.failures.charge(peer, now);
        }
        let caller = caller?;
        self.limiter
            .try_acquire(&caller.key, now)
            .map_err(|retry_after| AuthError::RateLimited {
                key: caller.key.clone(),
                limit: self.limiter.limit(),
                retry_after,
            })?;
        Ok(caller)
    }

    /// Who `authorization` names, if anyone.
    async fn identify(
        &self,
        store: &dyn Store,
        authorization: Result<Option<&str>, AuthError>,
        surface: Surface,
    ) -> Result<Caller, AuthError> {
        let header = authorization?.ok_or(AuthError::Missing)?;
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
                    client_access: ClientAccess::None,
                    client: None,
                }
            }
            _ => {
                let (id, presented_hash) = parse_token(credential).ok_or(AuthError::Malformed(
                    "not an API key: expected `lk_` followed by the key's id and secret",
                ))?;
                let key = store
                    .api_key(&id)
                    .await?
                    .filter(|key| key.secret_hash == presented_hash)
                    .ok_or(AuthError::UnknownKey)?;
                if key.revoked_at_ms.is_some() {
                    return Err(AuthError::Revoked(id));
                }
                Caller {
                    key: key.id.to_string(),
                    tenant: Some(key.tenant),
                    scopes: key.scopes,
                    client_access: key.client_access,
                    client: None,
                }
            }
        };
        Ok(caller)
    }
}
