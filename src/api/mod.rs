//! The gRPC API: code generated from `proto/latchkey/v1` (with a codec that refuses
//! malformed messages as bad input), the table of methods with their server and scope, the
//! edge layer that admits, counts and audits every call before its message is read, the
//! proto <-> domain conversions, the one error -> status mapping with machine-readable
//! details, the service handlers, the watch streams and their slots, and the operator's
//! admin service.

pub mod admin;
pub mod codec;
pub mod convert;
pub use crate::metrics::code_name;

pub mod edge;
mod error;
pub mod gate;
pub mod methods;
pub mod services;
pub mod watch;

pub use self::error::ERROR_DOMAIN;

/// Types and services generated from `proto/latchkey/v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("latchkey.v1");
}

/// Encoded `FileDescriptorSet` of every latchkey proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("latchkey_descriptor");
