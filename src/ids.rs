//! The ids every layer shares: resource ids that sort by creation time, even within one
//! millisecond, and the tenant that owns a resource.

use std::{fmt, sync::Mutex};

use serde::{Deserialize, Serialize};
use ulid::{Generator, Ulid};

static GENERATOR: Mutex<Generator> = Mutex::new(Generator::new());

/// A ULID strictly greater than every ULID this process generated before. Within one
/// millisecond the generator increments the random part; if that ever overflows, a fresh
/// random ULID still identifies the resource uniquely, only its order is lost.
pub(crate) fn next_ulid() -> Ulid {
    let mut generator = GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    generator.generate().unwrap_or_else(|_| Ulid::generate())
}

/// Defines an id type: a fixed prefix and a ULID, ordered by creation time.
macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $collection:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
        )]
        pub struct $name(String);

        impl $name {
            /// Prefix of every id of this kind.
            pub const PREFIX: &'static str = $prefix;

            /// A new id, greater than every id generated before it in this process.
            pub fn generate() -> Self {
                Self(format!("{}{}", Self::PREFIX, crate::ids::next_ulid()))
            }

            /// Parses an id, refusing anything that is not the prefix and a ULID.
            pub fn parse(text: &str) -> Option<Self> {
                let ulid = text.strip_prefix(Self::PREFIX)?;
                ulid::Ulid::from_string(ulid).ok()?;
                Some(Self(text.to_owned()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The resource name the API gives it, such as `sessions/ses_...`: the one form
            /// every message and answer names it in.
            pub fn resource_name(&self) -> String {
                format!("{}/{}", $collection, self.0)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// An API key's id: `key_` followed by a ULID. It names the key in lists, revocations
    /// and the audit log; it is not a secret.
    ApiKeyId,
    "key_",
    "apiKeys"
);

prefixed_id!(
    /// A session's id: `ses_` followed by a ULID, so ids sort by creation time.
    SessionId,
    "ses_",
    "sessions"
);

prefixed_id!(
    /// A policy's id: `pol_` followed by a ULID, so ids sort by creation time.
    PolicyId,
    "pol_",
    "policies"
);

prefixed_id!(
    /// An intent's id: `int_` followed by a ULID, so ids sort by creation time.
    IntentId,
    "int_",
    "transactionIntents"
);

/// A tenant: a studio or project whose keys share one view of sessions, intents and
/// policies. 1 to 63 characters: lowercase ASCII letters, digits and `-`, starting with a
/// letter or digit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    /// Longest tenant name.
    pub const MAX_LEN: usize = 63;

    /// The tenant of records made before the daemon had tenants (store schema 3 and
    /// older): a key of this tenant sees them.
    pub const DEFAULT: &'static str = "default";

    /// Parses a tenant name, saying what is wrong with a bad one.
    pub fn parse(text: &str) -> Result<Self, String> {
        let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if text.is_empty() || text.len() > Self::MAX_LEN {
            return Err(format!(
                "must be 1 to {} characters, got {}",
                Self::MAX_LEN,
                text.chars().count()
            ));
        }
        if !text.chars().all(valid_char) || text.starts_with('-') {
            return Err(
                "only lowercase letters, digits and `-`, starting with a letter or digit"
                    .to_owned(),
            );
        }
        Ok(Self(text.to_owned()))
    }

    /// The tenant of records that predate tenants.
    pub fn default_tenant() -> Self {
        Self(Self::DEFAULT.to_owned())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TenantId {
    fn default() -> Self {
        Self::default_tenant()
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
