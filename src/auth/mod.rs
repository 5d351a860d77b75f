//! Who may call the daemon: API keys, the scopes and tenant each carries, the rate at which
//! one key may call, and the budget of failed authentications of one peer address.
//!
//! # API keys
//!
//! A key is `lk_` ++ its id's ULID ++ `_` ++ 64 hex digits of secret. The store keeps the
//! key's record under its id with a keccak256 of the secret, never the secret itself, so
//! the full key exists only in the answer that created it. A presented key is looked up by
//! its id and its hash compared to the stored one.
//!
//! Each key belongs to a tenant (a studio or a project). On the application API a key sees
//! and touches only its own tenant's sessions, intents and policies; another tenant's are
//! "not found", exactly like ones that never existed. Its scopes say what it may call:
//! [`Scope::Read`] the gets, lists and watches, [`Scope::Write`] what creates, signs or
//! revokes, and [`Scope::Admin`] the operator's admin service, which sees every tenant.
//!
//! # Client sessions
//!
//! A session may also be opened to the player's own client ([`ClientAccess`]): its browser
//! then calls with a [`stamp`] made by the session key instead of an API key, and sees and
//! acts on that one session alone ([`Visibility::Client`]). An API key's `client_access`
//! is the most access the sessions it creates may grant.

mod failures;
mod rate;
pub mod stamp;

use std::{collections::BTreeSet, fmt};

use alloy::primitives::{Address, B256, keccak256};
use chacha20poly1305::aead::{OsRng, rand_core::RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use self::{
    failures::{FAILURE_LOG_INTERVAL, FailedAuthentications, Peer, RefusalLog, Refused},
    rate::{RateLimit, RateLimiter},
};
use crate::ids::SessionId;
pub use crate::ids::{ApiKeyId, TenantId};

/// What a key may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Scope {
    /// Gets, lists and watches on the application API.
    Read,
    /// Creates, signature submissions and revocations on the application API.
    Write,
    /// The admin service: every tenant's records, the relay's controls and the keys.
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Self; 3] = [Self::Read, Self::Write, Self::Admin];

    /// The scope's name as the API and the CLI spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "READ",
            Self::Write => "WRITE",
            Self::Admin => "ADMIN",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of scopes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    /// Whether `scope` is in the set.
    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    /// The scopes, in order.
    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Scope::name).collect();
        f.write_str(&names.join(","))
    }
}

/// What a session's own client (the player's browser, calling with stamps) may do.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum ClientAccess {
    /// Nothing: only API keys call on the session.
    #[default]
    None,
    /// Get, list and watch its own session, account and intents.
    ReadOnly,
    /// Also create intents on its own session and submit their signatures, and the owner's
    /// signature of its registration or revocation.
    ReadWrite,
}

impl ClientAccess {
    /// The access's name as the API spells it.
    pub fn api_name(self) -> &'static str {
        match self {
            Self::None => "CLIENT_ACCESS_UNSPECIFIED",
            Self::ReadOnly => "CLIENT_ACCESS_READ_ONLY",
            Self::ReadWrite => "CLIENT_ACCESS_READ_WRITE",
        }
    }
}

impl fmt::Display for ClientAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.api_name())
    }
}

/// An API key as stored: everything but its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// The tenant it acts for.
    pub tenant: TenantId,
    /// What it may call.
    pub scopes: Scopes,
    /// The operator's label for it (who holds it, what for).
    pub display_name: String,
    /// The most client access a session this key creates may grant; none for keys made
    /// before client sessions.
    #[serde(default)]
    pub client_access: ClientAccess,
    /// keccak256 of the secret, bound to the id (see `secret_hash`).
    pub secret_hash: B256,
    /// Creation time, unix ms.
    pub created_at_ms: u64,
    /// When it was revoked, unix ms; a revoked key lets nothing in.
    pub revoked_at_ms: Option<u64>,
}

/// A key just created: its record, and the full key, which exists nowhere else.
pub struct IssuedKey {
    /// The stored record.
    pub key: ApiKey,
    /// The bearer token to hand to its holder: `lk_<ulid>_<secret>`.
    pub token: Zeroizing<String>,
}

impl fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedKey")
            .field("key", &self.key)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Every token starts with this.
pub const TOKEN_PREFIX: &str = "lk_";
const SECRET_LEN: usize = 32;

/// A new key of `tenant` with `scopes`, that may open sessions to their clients up to
/// `client_access`, created at `now_ms`.
pub fn issue(
    tenant: TenantId,
    scopes: Scopes,
    client_access: ClientAccess,
    display_name: String,
    now_ms: u64,
) -> IssuedKey {
    let id = ApiKeyId::generate();
    let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
    OsRng.fill_bytes(secret.as_mut_slice());
    let ulid = &id.as_str()[ApiKeyId::PREFIX.len()..];
    let token = Zeroizing::new(format!(
        "{TOKEN_PREFIX}{ulid}_{}",
        alloy::hex::encode(secret.as_slice())
    ));
    IssuedKey {
        key: ApiKey {
            secret_hash: secret_hash(&id, secret.as_slice()),
            id,
            tenant,
            scopes,
            display_name,
            client_access,
            created_at_ms: now_ms,
            revoked_at_ms: None,
        },
        token,
    }
}

/// The id a token names and the hash of its secret, or `None` when the text is not shaped
/// like a latchkey key.
pub fn parse_token(token: &str) -> Option<(ApiKeyId, B256)> {
    let (ulid, secret_hex) = token.strip_prefix(TOKEN_PREFIX)?.split_once('_')?;
    let id = ApiKeyId::parse(&format!("{}{ulid}", ApiKeyId::PREFIX))?;
    if secret_hex.len() != 2 * SECRET_LEN {
        return None;
    }
    let secret = Zeroizing::new(alloy::hex::decode(secret_hex).ok()?);
    Some((id.clone(), secret_hash(&id, &secret)))
}

/// What the store keeps of a key's secret. The secret is 32 random bytes, so one hash
/// is as hard to invert as the secret is to guess; the id in the preimage keeps one
/// secret's hash from standing for another key.
fn secret_hash(id: &ApiKeyId, secret: &[u8]) -> B256 {
    let mut preimage = Zeroizing::new(b"latchkey api key\0".to_vec());
    preimage.extend_from_slice(id.as_str().as_bytes());
    preimage.push(0);
    preimage.extend_from_slice(secret);
    keccak256(preimage.as_slice())
}

/// Who made a call, once the gate has let it in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// What the audit log names the caller by: the key's id, or [`ADMIN_TOKEN_CALLER`].
    pub key: String,
    /// The key's tenant; `None` for the admin token, which belongs to no tenant.
    pub tenant: Option<TenantId>,
    /// What it may call.
    pub scopes: Scopes,
    /// For an API key, the most client access the sessions it creates may grant; for a
    /// client, its session's access.
    pub client_access: ClientAccess,
    /// The session a client's stamp acts for; `None` for API keys and the admin token.
    pub client: Option<ClientSession>,
}

/// The session a client calls for, and what it may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSession {
    /// Its tenant.
    pub tenant: TenantId,
    /// The session.
    pub session: SessionId,
    /// The session's account.
    pub account: Address,
}

/// How the audit log names a call made with the configured admin token.
pub const ADMIN_TOKEN_CALLER: &str = "admin-token";

/// Which tenants' records a call may see and touch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// One tenant's: an application call.
    Tenant(TenantId),
    /// Every tenant's: the admin service.
    All,
    /// One session's, and its intents and account: a client's.
    Client(ClientSession),
}

impl Visibility {
    /// Whether a record of `tenant` is visible, when it is (or belongs to) `session`;
    /// `None` for records of no session, which no client sees.
    pub fn sees(&self, tenant: &TenantId, session: Option<&SessionId>) -> bool {
        match self {
            Self::Tenant(mine) => mine == tenant,
            Self::All => true,
            Self::Client(client) => {
                &client.tenant == tenant && session.is_some_and(|id| id == &client.session)
            }
        }
    }

    /// The one tenant visible, if the view is limited to one.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Self::Tenant(tenant) => Some(tenant),
            Self::Client(client) => Some(&client.tenant),
            Self::All => None,
        }
    }

    /// The client's session, for a client's view.
    pub fn client(&self) -> Option<&ClientSession> {
        match self {
            Self::Client(client) => Some(client),
            Self::Tenant(_) | Self::All => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_token_parses_back_to_its_id_and_stored_hash_and_a_changed_one_does_not() {
        let issued = issue(
            TenantId::parse("studio-a").unwrap(),
            [Scope::Read, Scope::Write].into_iter().collect(),
            ClientAccess::None,
            "backend".to_owned(),
            1,
        );
        let token = issued.token.as_str();
        assert!(token.starts_with("lk_"), "{token}");
        assert_eq!(token.len(), 3 + 26 + 1 + 64);
        let (id, hash) = parse_token(token).unwrap();
        assert_eq!(id, issued.key.id);
        assert_eq!(hash, issued.key.secret_hash);
        assert!(
            !format!("{issued:?}").contains(&token[30..]),
            "Debug hides it"
        );

        // One secret digit changed: same id, another hash.
        let mut changed = token.to_owned();
        let last = changed.pop().unwrap();
        changed.push(if last == '0' { '1' } else { '0' });
        let (same_id, other_hash) = parse_token(&changed).unwrap();
        assert_eq!(same_id, issued.key.id);
        assert_ne!(other_hash, issued.key.secret_hash);

        for malformed in [
            "",
            "lk_",
            "lk__",
            &token[..token.len() - 1],
            &token[3..],
            &format!("{token}0"),
            &token.replace("lk_", "sk_"),
            &format!("lk_NOTAULID_{}", &token[30..]),
            &format!("{}zz", &token[..token.len() - 2]),
        ] {
            assert_eq!(parse_token(malformed), None, "{malformed}");
        }
    }

    #[test]
    fn tenant_names_are_short_lowercase_labels() {
        for good in ["default", "studio-a", "a", "0x1", &"a".repeat(63)] {
            assert_eq!(TenantId::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "Studio", "-a", "a b", "a_b", "ä", &"a".repeat(64)] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_tenant_view_sees_only_its_tenant_and_the_admin_view_every_one() {
        let a = TenantId::parse("a").unwrap();
        let b = TenantId::parse("b").unwrap();
        assert!(Visibility::Tenant(a.clone()).sees(&a, None));
        assert!(!Visibility::Tenant(a.clone()).sees(&b, None));
        assert!(Visibility::All.sees(&b, None));
    }

    #[test]
    fn a_client_view_sees_only_its_own_session_in_its_tenant() {
        let a = TenantId::parse("a").unwrap();
        let b = TenantId::parse("b").unwrap();
        let mine = SessionId::generate();
        let other = SessionId::generate();
        let view = Visibility::Client(ClientSession {
            tenant: a.clone(),
            session: mine.clone(),
            account: Address::repeat_byte(1),
        });
        assert!(view.sees(&a, Some(&mine)));
        assert!(!view.sees(&a, Some(&other)));
        assert!(!view.sees(&b, Some(&mine)));
        assert!(
            !view.sees(&a, None),
            "records of no session, such as policies"
        );
        assert_eq!(view.tenant(), Some(&a));
    }

    #[test]
    fn scopes_print_and_serialize_by_name_in_order() {
        let scopes: Scopes = [Scope::Admin, Scope::Read].into_iter().collect();
        assert_eq!(scopes.to_string(), "READ,ADMIN");
        assert_eq!(
            serde_json::to_string(&scopes).unwrap(),
            r#"["READ","ADMIN"]"#
        );
        assert!(scopes.contains(Scope::Admin) && !scopes.contains(Scope::Write));
    }
}
