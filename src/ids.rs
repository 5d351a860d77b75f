//! Resource ids that sort by creation time, even within one millisecond.

use std::sync::Mutex;

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

pub(crate) use prefixed_id;
