//! The protobuf codec of every latchkey service. It encodes and decodes exactly as prost
//! does; the one difference is the status a message that does not decode gets. tonic's own
//! codec answers INTERNAL, as if the server had failed; but bytes that are not a valid
//! message, a string field that is not UTF-8, or a truncated message are the caller's to
//! fix, so they get INVALID_ARGUMENT, saying what did not decode.

use std::marker::PhantomData;

use prost::Message;
use tonic::{
    Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
};
use tonic_prost::ProstEncoder;

/// The machine-readable reason of a request that is not a valid protobuf message.
pub const MALFORMED_MESSAGE: &str = "MALFORMED_MESSAGE";

/// The codec the generated services and clients use (see `build.rs`).
#[derive(Debug, Clone, Copy)]
pub struct ApiCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for ApiCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for ApiCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ApiDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ApiDecoder(PhantomData)
    }
}

/// Decodes `U`, refusing what does not decode as the caller's error.
#[derive(Debug, Clone, Copy)]
pub struct ApiDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for ApiDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        decode_message(buf).map(Some)
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// One message from `buf`, or INVALID_ARGUMENT saying why the bytes are none.
fn decode_message<U: Message + Default>(buf: impl prost::bytes::Buf) -> Result<U, Status> {
    U::decode(buf).map_err(|error| {
        super::error::refusal(
            tonic::Code::InvalidArgument,
            format!("the message is not a valid protobuf encoding of its request type: {error}"),
            MALFORMED_MESSAGE,
            [],
        )
    })
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;
    use crate::api::proto;

    fn decode(bytes: &[u8]) -> Result<Option<proto::GetSessionRequest>, Status> {
        decode_message(bytes).map(Some)
    }

    #[test]
    fn bytes_that_are_no_message_are_the_callers_error() {
        // Not a message; a string field of invalid UTF-8; a field cut short.
        for bytes in [
            &[0xff, 0xff, 0xff, 0xff, 0xff][..],
            &[0x0a, 0x02, 0xc3, 0x28][..],
            &[0x0a, 0x10, b's', b'e'][..],
        ] {
            let status = decode(bytes).expect_err("refused");
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{bytes:?}: {status:?}"
            );
            assert!(
                status.message().contains("not a valid protobuf"),
                "{status:?}"
            );
        }
        let valid = proto::GetSessionRequest {
            name: "sessions/x".into(),
        }
        .encode_to_vec();
        assert_eq!(
            decode(&valid).expect("decodes").expect("a message").name,
            "sessions/x"
        );
    }
}
