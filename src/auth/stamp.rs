//! Stamps: how a player's browser proves, on every request, that it holds a session's key.
//!
//! A client session's credential is its session key: a P-256 key the browser made with
//! WebCrypto and cannot export. Each request carries a stamp in the [`STAMP_HEADER`]
//! header, a JSON object naming the session and its public key, the time, a nonce, and the
//! key's signature over the [`preimage`]: the method's path, those fields, and the exact
//! bytes of the request message. So a stamp is good for one method, one message and one
//! session, within [`StampWindow`] of its time, once.
//!
//! This module is the pure part: parsing, the signed bytes, the signature and the memory of
//! nonces already used. Which session the stamp names, and whether it may still be used, is
//! the gate's to look up.

use std::{
    collections::{BTreeSet, HashSet},
    sync::Mutex,
};

use p256::ecdsa::signature::Verifier;
use serde::Deserialize;

use crate::{
    ids::SessionId,
    signer::{P256Point, p256_signature},
};

/// The request header that carries a stamp.
pub const STAMP_HEADER: &str = "latchkey-stamp";

/// What the signed bytes start with, so a stamp's signature can never be mistaken for a
/// signature of anything else the key signs (user operations are 32-byte hashes).
pub const STAMP_DOMAIN: &str = "latchkey stamp v1";

/// Shortest and longest nonce, in characters.
const NONCE_CHARS: std::ops::RangeInclusive<usize> = 16..=64;

/// A stamp as the header carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// The session it acts for.
    pub session: SessionId,
    /// The session key's public key.
    pub public_key: P256Point,
    /// When it was made, unix milliseconds.
    pub timestamp_ms: u64,
    /// Never used twice by the same session within the window.
    pub nonce: String,
    /// The key's signature of [`preimage`]: WebCrypto's ECDSA over SHA-256.
    pub signature: p256::ecdsa::Signature,
}

/// The header's JSON, before its fields are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StampJson {
    session: String,
    public_key: String,
    timestamp_ms: u64,
    nonce: String,
    signature: String,
}

/// Why a stamp is refused. Each is UNAUTHENTICATED: the caller has not shown that it holds
/// the key of a session that may make this call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StampError {
    /// The header is not a stamp.
    #[error("{STAMP_HEADER}: {0}")]
    Malformed(String),
    /// The stamp's time is too far from now.
    #[error(
        "{STAMP_HEADER}.timestampMs: {timestamp_ms} is {off_by_secs} s from the server's clock; \
         a stamp is good within {window_secs} s of its time (make a new stamp for each request)"
    )]
    Stale {
        /// The stamp's time.
        timestamp_ms: u64,
        /// How far from now it is.
        off_by_secs: u64,
        /// How far it may be.
        window_secs: u64,
    },
    /// The signature is not the key's signature of this request.
    #[error(
        "{STAMP_HEADER}.signature: not the session key's signature of this method, these \
         stamp fields and this request's message bytes"
    )]
    BadSignature,
    /// The nonce was used already.
    #[error("{STAMP_HEADER}.nonce: already used; a stamp is good for one request")]
    Replayed,
    /// Too many stamps are remembered to take another now.
    #[error("{STAMP_HEADER}: too many stamps in the last window; retry shortly")]
    Full,
}

impl Stamp {
    /// The stamp in `header`, with each field checked for its form.
    pub fn parse(header: &str) -> Result<Self, StampError> {
        let malformed = |reason: String| StampError::Malformed(reason);
        let json: StampJson = serde_json::from_str(header).map_err(|error| {
            malformed(format!(
                "not a stamp: expected a JSON object {{session, publicKey, timestampMs, nonce, \
                 signature}} ({error})"
            ))
        })?;
        let session = SessionId::parse(
            json.session
                .strip_prefix("sessions/")
                .unwrap_or(&json.session),
        )
        .ok_or_else(|| malformed("session: expected the session's name `sessions/ses_…`".into()))?;
        let public_key = hex_bytes(&json.public_key)
            .and_then(|bytes| P256Point::parse(&bytes))
            .ok_or_else(|| {
                malformed(
                    "publicKey: expected the P-256 key as 0x-prefixed hex of the uncompressed \
                     point (WebCrypto's `exportKey(\"raw\")`), on the curve"
                        .into(),
                )
            })?;
        if !NONCE_CHARS.contains(&json.nonce.len())
            || !json
                .nonce
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        {
            return Err(malformed(format!(
                "nonce: {} to {} letters, digits, `-` or `_`, random for each request",
                NONCE_CHARS.start(),
                NONCE_CHARS.end()
            )));
        }
        let signature = hex_bytes(&json.signature)
            .and_then(|bytes| p256_signature(&bytes))
            .ok_or_else(|| {
                malformed(
                    "signature: expected 0x-prefixed hex of a P-256 signature, 64 bytes r ‖ s \
                     (WebCrypto's ECDSA output) or DER"
                        .into(),
                )
            })?;
        Ok(Self {
            session,
            public_key,
            timestamp_ms: json.timestamp_ms,
            nonce: json.nonce,
            signature,
        })
    }

    /// Whether the stamp's key signed `preimage(path, self, message)`.
    pub fn verify(&self, path: &str, message: &[u8]) -> Result<(), StampError> {
        let key = self
            .public_key
            .verifying_key()
            .ok_or_else(|| StampError::Malformed("publicKey: not on the curve".into()))?;
        key.verify(
            &preimage(path, &self.session, self.timestamp_ms, &self.nonce, message),
            &self.signature,
        )
        .map_err(|_| StampError::BadSignature)
    }
}

/// What the session key signs for a request to `path` (`/latchkey.v1.Service/Method`) whose
/// message encodes to `message`: the lines `latchkey stamp v1`, the path, the session's
/// name, the time in unix milliseconds and the nonce, each ended by `\n`, then the message's
/// bytes as they are sent (the protobuf encoding, without gRPC's 5-byte frame header).
pub fn preimage(
    path: &str,
    session: &SessionId,
    timestamp_ms: u64,
    nonce: &str,
    message: &[u8],
) -> Vec<u8> {
    let head = format!(
        "{STAMP_DOMAIN}\n{path}\n{}\n{timestamp_ms}\n{nonce}\n",
        session.resource_name()
    );
    let mut bytes = Vec::with_capacity(head.len() + message.len());
    bytes.extend_from_slice(head.as_bytes());
    bytes.extend_from_slice(message);
    bytes
}

fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    alloy::hex::decode(text.strip_prefix("0x")?).ok()
}

/// How far from the server's clock a stamp's time may be, either way, and so how long its
/// nonce is remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StampWindow {
    /// The window, in milliseconds.
    pub millis: u64,
}

impl StampWindow {
    /// Whether a stamp made at `timestamp_ms` is good at `now_ms`.
    pub fn check(self, timestamp_ms: u64, now_ms: u64) -> Result<(), StampError> {
        let off_by = timestamp_ms.abs_diff(now_ms);
        if off_by > self.millis {
            return Err(StampError::Stale {
                timestamp_ms,
                off_by_secs: off_by / 1000,
                window_secs: self.millis / 1000,
            });
        }
        Ok(())
    }
}

/// Most nonces remembered at once. Each session's request rate bounds how fast they come;
/// this bounds the memory whatever the number of sessions.
const MAX_REMEMBERED: usize = 1_000_000;

/// The nonces each session used within the window. A nonce is remembered until its stamp's
/// time has left the window, after which the stamp is stale anyway: so a stamp is good
/// once. Each instance remembers the stamps it served.
#[derive(Debug)]
pub struct UsedNonces {
    window: StampWindow,
    inner: Mutex<Remembered>,
}

#[derive(Debug, Default)]
struct Remembered {
    /// (session, nonce) pairs used.
    used: HashSet<(SessionId, String)>,
    /// The same pairs by when they may be forgotten, unix ms: the oldest first.
    by_expiry: BTreeSet<(u64, SessionId, String)>,
}

impl UsedNonces {
    /// Remembers nonces for `window`.
    pub fn new(window: StampWindow) -> Self {
        Self {
            window,
            inner: Mutex::new(Remembered::default()),
        }
    }

    /// The window stamps are checked against.
    pub fn window(&self) -> StampWindow {
        self.window
    }

    /// Takes `stamp`'s nonce at `now_ms`, or says it was taken already. Call it only for a
    /// stamp whose signature verified, so nobody can use up another's nonces.
    pub fn claim(&self, stamp: &Stamp, now_ms: u64) -> Result<(), StampError> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while let Some(first) = inner.by_expiry.first()
            && first.0 < now_ms
        {
            let (_, session, nonce) = inner.by_expiry.pop_first().expect("just seen");
            inner.used.remove(&(session, nonce));
        }
        let pair = (stamp.session.clone(), stamp.nonce.clone());
        if inner.used.contains(&pair) {
            return Err(StampError::Replayed);
        }
        if inner.used.len() >= MAX_REMEMBERED {
            return Err(StampError::Full);
        }
        let forget_at = stamp.timestamp_ms.saturating_add(self.window.millis);
        inner
            .by_expiry
            .insert((forget_at, pair.0.clone(), pair.1.clone()));
        inner.used.insert(pair);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::{SigningKey, signature::Signer as _};

    use super::*;

    fn key() -> (SigningKey, String) {
        let signing = SigningKey::from_slice(&[7u8; 32]).expect("a scalar");
        let point = signing.verifying_key().to_encoded_point(false);
        (
            signing,
            format!("0x{}", alloy::hex::encode(point.as_bytes())),
        )
    }

    fn header(session: &SessionId, public_key: &str, time: u64, nonce: &str, sig: &str) -> String {
        serde_json::json!({
            "session": session.resource_name(),
            "publicKey": public_key,
            "timestampMs": time,
            "nonce": nonce,
            "signature": sig,
        })
        .to_string()
    }

    fn signed(
        signing: &SigningKey,
        public_key: &str,
        session: &SessionId,
        message: &[u8],
    ) -> Stamp {
        let nonce = "nonce-0123456789abcdef";
        let bytes = preimage(
            "/latchkey.v1.SessionService/GetSession",
            session,
            1_000,
            nonce,
            message,
        );
        let signature: p256::ecdsa::Signature = signing.sign(&bytes);
        let text = format!("0x{}", alloy::hex::encode(signature.to_bytes()));
        Stamp::parse(&header(session, public_key, 1_000, nonce, &text)).expect("parses")
    }

    #[test]
    fn a_stamp_verifies_for_its_method_and_bytes_only() {
        let (signing, public_key) = key();
        let session = SessionId::generate();
        let stamp = signed(&signing, &public_key, &session, b"message");
        let path = "/latchkey.v1.SessionService/GetSession";
        assert_eq!(stamp.verify(path, b"message"), Ok(()));
        assert_eq!(
            stamp.verify(path, b"messagE"),
            Err(StampError::BadSignature)
        );
        assert_eq!(
            stamp.verify("/latchkey.v1.SessionService/ListSessions", b"message"),
            Err(StampError::BadSignature)
        );
        let mut other_session = stamp.clone();
        other_session.session = SessionId::generate();
        assert_eq!(
            other_session.verify(path, b"message"),
            Err(StampError::BadSignature)
        );
        let mut other_time = stamp;
        other_time.timestamp_ms += 1;
        assert_eq!(
            other_time.verify(path, b"message"),
            Err(StampError::BadSignature)
        );
    }

    #[test]
    fn malformed_stamps_name_the_field() {
        let (_, public_key) = key();
        let session = SessionId::generate();
        let good_sig = format!("0x{}", "11".repeat(64));
        for (text, field) in [
            ("not json".to_owned(), "not a stamp"),
            (r#"{"session":"x"}"#.to_owned(), "not a stamp"),
            (
                header(&session, &public_key, 1, "short", &good_sig),
                "nonce",
            ),
            (
                header(&session, &public_key, 1, &"a".repeat(65), &good_sig),
                "nonce",
            ),
            (
                header(&session, &public_key, 1, "bad nonce with spaces", &good_sig),
                "nonce",
            ),
            (
                header(&session, "0x04", 1, "nonce-0123456789abcdef", &good_sig),
                "publicKey",
            ),
            (
                header(&session, &public_key, 1, "nonce-0123456789abcdef", "0x12"),
                "signature",
            ),
            (
                header(
                    &session,
                    &public_key,
                    1,
                    "nonce-0123456789abcdef",
                    &good_sig,
                )
                .replace("sessions/ses_", "sessions/xyz_"),
                "session",
            ),
            (
                header(
                    &session,
                    &public_key,
                    1,
                    "nonce-0123456789abcdef",
                    &good_sig,
                )
                .replace('}', r#","extra":1}"#),
                "unknown field",
            ),
        ] {
            let error = Stamp::parse(&text).expect_err(&text).to_string();
            assert!(error.starts_with("latchkey-stamp: "), "{error}");
            assert!(error.contains(field), "{text}: {error}");
        }
    }

    #[test]
    fn a_nonce_is_good_once_per_session_until_its_stamp_is_stale() {
        let (signing, public_key) = key();
        let session = SessionId::generate();
        let stamp = signed(&signing, &public_key, &session, b"m");
        let nonces = UsedNonces::new(StampWindow { millis: 500 });
        assert_eq!(nonces.claim(&stamp, 1_000), Ok(()));
        assert_eq!(nonces.claim(&stamp, 1_200), Err(StampError::Replayed));
        let mut other = stamp.clone();
        other.session = SessionId::generate();
        assert_eq!(
            nonces.claim(&other, 1_200),
            Ok(()),
            "another session's nonce"
        );
        // Forgotten once the stamp's time has left the window: the window refuses it then.
        assert_eq!(nonces.claim(&stamp, 1_501), Ok(()));
        assert!(nonces.window().check(stamp.timestamp_ms, 1_501).is_err());
    }

    #[test]
    fn the_window_is_either_way_of_now() {
        let window = StampWindow { millis: 300_000 };
        assert!(window.check(1_000_000, 1_000_000).is_ok());
        assert!(window.check(700_000, 1_000_000).is_ok());
        assert!(window.check(1_300_000, 1_000_000).is_ok());
        let error = window.check(699_999, 1_000_000).unwrap_err();
        assert!(error.to_string().contains("300 s from"), "{error}");
        assert!(window.check(1_300_001, 1_000_000).is_err());
    }
}
