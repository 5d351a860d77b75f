//! The gRPC API: code generated from `proto/latchkey/v1`, the proto <-> domain conversions,
//! the one error -> status mapping, and the service handlers.

pub mod convert;
mod error;
pub mod services;

/// Types and services generated from `proto/latchkey/v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("latchkey.v1");
}

/// Encoded `FileDescriptorSet` of every latchkey proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("latchkey_descriptor");
