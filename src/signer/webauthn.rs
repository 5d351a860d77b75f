//! WebAuthn assertions: checked as SessionKeyAccount checks them, and encoded as it reads them
//! (OpenZeppelin's `WebAuthnAuth`: `r, s, challengeIndex, typeIndex, authenticatorData,
//! clientDataJSON`, ABI-encoded as a parameter list).
//!
//! The account requires, and so does [`verify`]:
//! - `clientDataJSON` holding `"type":"webauthn.get"` and `"challenge":"<base64url(hash)>"`
//!   exactly so, without spaces: the account compares bytes at the two indices, it does not
//!   parse JSON (browsers serialise it this way);
//! - the user present (UP) and user verified (UV) flags, and a backed-up credential (BS) to be
//!   backup-eligible (BE);
//! - a P-256 signature over `authenticatorData ‖ sha256(clientDataJSON)`, DER as
//!   authenticators give it or 64 bytes `r ‖ s`; a high s counts as its low twin.

use alloy::{
    primitives::{B256, Bytes, U256},
    sol,
    sol_types::SolValue,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use p256::ecdsa::signature::Verifier;
use sha2::{Digest, Sha256};

use super::{P256Point, p256_signature};

/// Authenticator data flags: user present, user verified, backup eligible, backed up.
const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_BE: u8 = 0x08;
const FLAG_BS: u8 = 0x10;
/// rpIdHash (32) ‖ flags (1) ‖ signCount (4).
const MIN_AUTHENTICATOR_DATA_LEN: usize = 37;
const TYPE_ENTRY: &str = r#""type":"webauthn.get""#;

sol! {
    /// OpenZeppelin's `WebAuthn.WebAuthnAuth`, field for field.
    struct WebAuthnAuth {
        bytes32 r;
        bytes32 s;
        uint256 challengeIndex;
        uint256 typeIndex;
        bytes authenticatorData;
        string clientDataJSON;
    }
}

/// A WebAuthn assertion, as `navigator.credentials.get()` returns its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assertion {
    /// `response.authenticatorData`.
    pub authenticator_data: Bytes,
    /// `response.clientDataJSON`, as the exact bytes the browser gave.
    pub client_data_json: Bytes,
    /// `response.signature`: DER, or 64 bytes `r ‖ s`.
    pub signature: Bytes,
}

/// Why an assertion is refused, naming the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// The authenticator data is malformed, or its flags are not accepted.
    #[error("{0}")]
    AuthenticatorData(String),
    /// The client data is not what the account accepts.
    #[error("{0}")]
    ClientData(String),
    /// The signature is malformed or does not verify.
    #[error("{0}")]
    Signature(String),
}

impl AssertionError {
    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::AuthenticatorData(_) => "webauthn.authenticator_data",
            Self::ClientData(_) => "webauthn.client_data_json",
            Self::Signature(_) => "webauthn.signature",
        }
    }
}

/// The challenge text an assertion of `hash` carries: base64url without padding.
pub fn challenge(hash: B256) -> String {
    URL_SAFE_NO_PAD.encode(hash)
}

/// Checks `assertion` of `hash` by the credential `point` as the account will, and returns
/// it encoded for the account.
pub fn verify(
    assertion: &Assertion,
    hash: B256,
    point: &P256Point,
) -> Result<Bytes, AssertionError> {
    let data = &assertion.authenticator_data;
    if data.len() < MIN_AUTHENTICATOR_DATA_LEN {
        return Err(AssertionError::AuthenticatorData(format!(
            "{} bytes; it holds at least {MIN_AUTHENTICATOR_DATA_LEN} (rpIdHash, flags, signCount)",
            data.len()
        )));
    }
    let flags = data[32];
    if flags & FLAG_UP == 0 || flags & FLAG_UV == 0 {
        return Err(AssertionError::AuthenticatorData(
            "the user present (UP) and user verified (UV) flags must both be set; ask with \
             userVerification: \"required\""
                .into(),
        ));
    }
    if flags & FLAG_BS != 0 && flags & FLAG_BE == 0 {
        return Err(AssertionError::AuthenticatorData(
            "backed up (BS) without being backup-eligible (BE)".into(),
        ));
    }

    let client_data = std::str::from_utf8(&assertion.client_data_json)
        .map_err(|_| AssertionError::ClientData("not UTF-8".into()))?;
    let type_index = client_data.find(TYPE_ENTRY).ok_or_else(|| {
        AssertionError::ClientData(format!("holds no {TYPE_ENTRY}: not an assertion (get)"))
    })?;
    let expected = format!(r#""challenge":"{}""#, challenge(hash));
    let challenge_index = client_data.find(&expected).ok_or_else(|| {
        AssertionError::ClientData(format!(
            "its challenge is not {hash} (base64url {})",
            challenge(hash)
        ))
    })?;

    let signature = p256_signature(&assertion.signature).ok_or_else(|| {
        AssertionError::Signature("not a P-256 signature (DER, or 64 bytes r ‖ s)".into())
    })?;
    let key = point
        .verifying_key()
        .ok_or_else(|| AssertionError::Signature("the credential is not on the curve".into()))?;
    let client_data_hash: [u8; 32] = Sha256::digest(&assertion.client_data_json).into();
    let signed = [&data[..], &client_data_hash].concat();
    if key.verify(&signed, &signature).is_err() {
        return Err(AssertionError::Signature(
            "does not verify under the credential's public key".into(),
        ));
    }

    let (r, s) = signature.split_bytes();
    let auth = WebAuthnAuth {
        r: B256::from_slice(&r),
        s: B256::from_slice(&s),
        challengeIndex: U256::from(challenge_index),
        typeIndex: U256::from(type_index),
        authenticatorData: data.clone(),
        clientDataJSON: client_data.to_owned(),
    };
    Ok(auth.abi_encode_params().into())
}

#[cfg(test)]
pub(crate) mod tests {
    use alloy::primitives::b256;
    use p256::ecdsa::{Signature, SigningKey, signature::Signer};

    use super::*;

    /// What a platform authenticator returns for `hash`: flags as given, a DER signature.
    pub(crate) fn assert_with(
        signing: &SigningKey,
        hash: B256,
        flags: u8,
        kind: &str,
    ) -> Assertion {
        let rp_id_hash: [u8; 32] = Sha256::digest(b"localhost").into();
        let mut authenticator_data = rp_id_hash.to_vec();
        authenticator_data.push(flags);
        authenticator_data.extend_from_slice(&[0, 0, 0, 1]);
        let client_data_json = format!(
            r#"{{"type":"{kind}","challenge":"{}","origin":"http://localhost","crossOrigin":false}}"#,
            challenge(hash)
        );
        let client_data_hash: [u8; 32] = Sha256::digest(client_data_json.as_bytes()).into();
        let signed = [&authenticator_data[..], &client_data_hash].concat();
        let signature: Signature = signing.sign(&signed);
        Assertion {
            authenticator_data: authenticator_data.into(),
            client_data_json: client_data_json.into_bytes().into(),
            signature: Bytes::copy_from_slice(signature.to_der().as_bytes()),
        }
    }

    const HASH: B256 = b256!("7777777777777777777777777777777777777777777777777777777777777777");

    #[test]
    fn a_verified_assertion_is_encoded_with_the_indices_the_account_reads() {
        let (signing, point) = super::super::tests::p256_key();
        let assertion = assert_with(&signing, HASH, FLAG_UP | FLAG_UV, "webauthn.get");
        let encoded = verify(&assertion, HASH, &point).unwrap();
        let decoded = <WebAuthnAuth as SolValue>::abi_decode_params(&encoded).unwrap();
        let json = decoded.clientDataJSON.as_bytes();
        let type_at = decoded.typeIndex.to::<usize>();
        assert_eq!(
            &json[type_at..type_at + TYPE_ENTRY.len()],
            TYPE_ENTRY.as_bytes()
        );
        let challenge_at = decoded.challengeIndex.to::<usize>();
        assert!(json[challenge_at..].starts_with(br#""challenge":""#));
        let half_n = alloy::primitives::uint!(
            0x7FFFFFFF800000007FFFFFFFFFFFFFFFDE737D56D38BCF4279DCE5617E3192A8_U256
        );
        assert!(U256::from_be_bytes(decoded.s.0) <= half_n, "low s");
    }

    #[test]
    fn assertions_the_account_would_refuse_are_refused_by_name() {
        let (signing, point) = super::super::tests::p256_key();
        let refused = |assertion: &Assertion| verify(assertion, HASH, &point).unwrap_err().field();
        // No user verification.
        assert_eq!(
            refused(&assert_with(&signing, HASH, FLAG_UP, "webauthn.get")),
            "webauthn.authenticator_data"
        );
        // Backed up, not backup-eligible.
        assert_eq!(
            refused(&assert_with(
                &signing,
                HASH,
                FLAG_UP | FLAG_UV | FLAG_BS,
                "webauthn.get"
            )),
            "webauthn.authenticator_data"
        );
        // A registration, not an assertion.
        assert_eq!(
            refused(&assert_with(
                &signing,
                HASH,
                FLAG_UP | FLAG_UV,
                "webauthn.create"
            )),
            "webauthn.client_data_json"
        );
        // Another challenge.
        let other = b256!("8888888888888888888888888888888888888888888888888888888888888888");
        assert_eq!(
            refused(&assert_with(
                &signing,
                other,
                FLAG_UP | FLAG_UV,
                "webauthn.get"
            )),
            "webauthn.client_data_json"
        );
        // Another credential.
        let (stranger, _) = super::super::tests::p256_key();
        assert_eq!(
            refused(&assert_with(
                &stranger,
                HASH,
                FLAG_UP | FLAG_UV,
                "webauthn.get"
            )),
            "webauthn.signature"
        );
        // Backed up and eligible: accepted.
        assert!(
            verify(
                &assert_with(
                    &signing,
                    HASH,
                    FLAG_UP | FLAG_UV | FLAG_BE | FLAG_BS,
                    "webauthn.get"
                ),
                HASH,
                &point
            )
            .is_ok()
        );
    }
}
