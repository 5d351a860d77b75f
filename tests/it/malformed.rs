//! Bytes that are not a valid request message are the caller's error: INVALID_ARGUMENT with
//! the reason MALFORMED_MESSAGE, never INTERNAL. Like every other refusal, each is counted
//! in `latchkey_grpc_requests_total`, and so is a message over `api.max_request_bytes`.

use latchkey::api::proto;
use prost::{
    Message,
    bytes::{Buf, BufMut},
};
use tonic::{
    Code, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    metadata::MetadataValue,
};
use tonic_types::StatusExt;

use crate::{daemon::TestDaemon, harness::TestChain};

/// Sends its bytes as they are, as the body of one gRPC message.
#[derive(Default)]
pub(crate) struct RawCodec;

pub(crate) struct RawEncoder;
pub(crate) struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        Ok(Some(bytes.to_vec()))
    }
}

/// Calls GetSession with `body` as the request message's bytes.
async fn get_session_with(daemon: &TestDaemon, body: Vec<u8>) -> Status {
    let mut grpc =
        tonic::client::Grpc::new(daemon.channel.clone()).max_encoding_message_size(usize::MAX);
    grpc.ready().await.expect("ready");
    let mut request = tonic::Request::new(body);
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {}", daemon.api_key)).expect("header"),
    );
    grpc.unary(
        request,
        "/latchkey.v1.SessionService/GetSession"
            .parse()
            .expect("path"),
        RawCodec,
    )
    .await
    .expect_err("a malformed message is refused")
}

#[tokio::test]
async fn bytes_that_are_no_message_get_invalid_argument_and_are_counted() {
    let chain = TestChain::start().await;
    let daemon = TestDaemon::start(&chain).await;
    let before = daemon.store.content_digest().await.expect("digest");

    let valid = proto::GetSessionRequest {
        name: "sessions/ses_01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
    }
    .encode_to_vec();
    // Field 1 (name), two bytes long, that are no UTF-8.
    let invalid_utf8 = vec![0x0a, 0x02, 0xc3, 0x28];
    let truncated = valid[..valid.len() / 2].to_vec();
    for (what, body) in [
        ("five 0xff bytes", vec![0xff; 5]),
        ("a string field of invalid UTF-8", invalid_utf8),
        ("a message cut in half", truncated),
    ] {
        let status = get_session_with(&daemon, body).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert!(
            status.message().contains("not a valid protobuf"),
            "{what}: {status:?}"
        );
        let info = status.get_details_error_info().expect("an ErrorInfo");
        assert_eq!(info.reason, "MALFORMED_MESSAGE", "{what}");
    }

    // Over api.max_request_bytes: tonic refuses it before decoding.
    let oversize = get_session_with(&daemon, vec![0x0a; 2 * 1024 * 1024]).await;
    assert_eq!(oversize.code(), Code::OutOfRange, "{oversize:?}");

    // The valid message, for comparison: the gate counts it (NOT_FOUND).
    let status = get_session_with(&daemon, valid).await;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    let metrics = daemon.scrape().await;
    let count = |code: &str| {
        metrics
            .get(&format!(
                "latchkey_grpc_requests_total{{method=\"SessionService/GetSession\",code=\"{code}\"}}"
            ))
            .copied()
            .unwrap_or_default()
    };
    assert_eq!(count("INVALID_ARGUMENT"), 3.0, "{metrics:?}");
    assert_eq!(count("OUT_OF_RANGE"), 1.0, "{metrics:?}");
    assert_eq!(
        count("NOT_FOUND"),
        1.0,
        "counted once, by the gate: {metrics:?}"
    );
    assert_eq!(daemon.store.content_digest().await.expect("digest"), before);
}
