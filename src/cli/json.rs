//! How the generated API types read in the CLI's `--json` output: the serializers that
//! `build.rs` names on their fields, for wei and gas as decimal strings, `null` for what the
//! daemon leaves empty, times in RFC 3339 and statuses by name.

use serde::{Serialize, Serializer};

use super::{ProtoName, enum_name};
use crate::api::proto;

/// A decimal the daemon leaves empty to mean zero, as `"0"`.
pub fn zero_if_empty<S: Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(if text.is_empty() { "0" } else { text })
}

/// Text the daemon leaves empty when there is nothing to say, as `null`.
pub fn null_if_empty<S: Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    if text.is_empty() {
        serializer.serialize_none()
    } else {
        serializer.serialize_str(text)
    }
}

/// A timestamp in RFC 3339, as precise as the daemon stored it; `null` when unset.
pub fn time<S: Serializer>(
    time: &Option<prost_types::Timestamp>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    time.as_ref().map(ToString::to_string).serialize(serializer)
}

/// A timestamp in RFC 3339 to the second; `null` when unset.
pub fn time_to_the_second<S: Serializer>(
    time: &Option<prost_types::Timestamp>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    time.as_ref()
        .map(super::status::rfc3339)
        .serialize(serializer)
}

/// A message the daemon may leave out, as its default (zeros) when it does.
pub fn or_default<T, S>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error>
where
    T: Default + Serialize,
    S: Serializer,
{
    match value {
        Some(value) => value.serialize(serializer),
        None => T::default().serialize(serializer),
    }
}

/// An intent status by name: `confirmed`.
pub fn intent_status<S: Serializer>(status: &i32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&enum_name::<proto::TransactionIntentStatus>(*status))
}

/// Each enum the CLI names, with the prefix its protobuf values carry.
macro_rules! proto_names {
    ($($enum:ident => $prefix:literal),* $(,)?) => {$(
        impl ProtoName for proto::$enum {
            const PREFIX: &'static str = $prefix;
            fn proto_name(&self) -> &'static str {
                self.as_str_name()
            }
            fn from_proto_name(name: &str) -> Option<Self> {
                Self::from_str_name(name)
            }
        }
    )*};
}

/// An argument rule's condition by its name: `EQUAL`, `IS_ACCOUNT`.
pub fn argument_condition<S: Serializer>(value: &i32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&enum_name::<proto::ArgumentCondition>(*value))
}

/// A spend limit's asset kind by its name: `ERC20`, `NATIVE`.
pub fn asset_kind<S: Serializer>(value: &i32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&enum_name::<proto::AssetKind>(*value))
}

proto_names! {
    ApiKeyScope => "API_KEY_SCOPE_",
    ArgumentCondition => "ARGUMENT_CONDITION_",
    AssetKind => "ASSET_KIND_",
    ClientAccess => "CLIENT_ACCESS_",
    KeyCustody => "KEY_CUSTODY_",
    SessionStatus => "SESSION_STATUS_",
    SponsorStrategy => "SPONSOR_STRATEGY_",
    TransactionIntentKind => "TRANSACTION_INTENT_KIND_",
    TransactionIntentStatus => "TRANSACTION_INTENT_STATUS_",
}
