//! The kinds of key that own accounts and act as session keys, as SessionKeyAccount's
//! `Signers` library knows them, and the off-chain mirror of its checks:
//! - a secp256k1 key, known by its address;
//! - a raw P-256 key, signing as WebCrypto's ECDSA does (over SHA-256 of the message), as a
//!   browser's non-extractable key can;
//! - a WebAuthn credential (a passkey), signing assertions whose challenge is the message.
//!
//! A signature latchkey accepts here is one the account accepts, and one refused here is
//! refused before any gas is spent, with the field that is wrong.

pub mod webauthn;

use alloy::primitives::{Address, B256, Bytes, keccak256};
use p256::ecdsa::{Signature as P256Signature, VerifyingKey, signature::Verifier};
use serde::{Deserialize, Serialize};

pub use self::webauthn::Assertion;
use crate::chain::{
    ops::ContractSigner,
    signature::{canonical_ecdsa, is_key_ecdsa, is_owner_ecdsa},
};

/// A signer's kind, with the numbering of the contracts' `SignerKind`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignerKind {
    /// An Ethereum key.
    #[default]
    Secp256k1,
    /// A raw P-256 key (WebCrypto ECDSA over SHA-256).
    P256,
    /// A P-256 WebAuthn credential.
    WebAuthn,
}

impl SignerKind {
    /// The kind's number in the contracts' ABI.
    pub fn code(self) -> u8 {
        match self {
            Self::Secp256k1 => 0,
            Self::P256 => 1,
            Self::WebAuthn => 2,
        }
    }

    /// The kind's name in the API.
    pub fn api_name(self) -> &'static str {
        match self {
            Self::Secp256k1 => "SIGNER_KIND_SECP256K1",
            Self::P256 => "SIGNER_KIND_P256",
            Self::WebAuthn => "SIGNER_KIND_WEBAUTHN",
        }
    }
}

/// A point on P-256: a raw P-256 key's or a WebAuthn credential's public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct P256Point {
    /// The x coordinate, big-endian.
    pub x: B256,
    /// The y coordinate, big-endian.
    pub y: B256,
}

impl P256Point {
    /// Parses an uncompressed point, `x ‖ y` (64 bytes) or SEC1 `0x04 ‖ x ‖ y` (65 bytes, what
    /// WebCrypto's `exportKey("raw", key)` gives). `None` unless it is on the curve.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let raw = match bytes.len() {
            64 => bytes,
            65 if bytes[0] == 0x04 => &bytes[1..],
            _ => return None,
        };
        let sec1 = [&[0x04], raw].concat();
        VerifyingKey::from_sec1_bytes(&sec1).ok()?;
        Some(Self {
            x: B256::from_slice(&raw[..32]),
            y: B256::from_slice(&raw[32..]),
        })
    }

    /// `x ‖ y`, as the contracts take it.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(self.x.as_slice());
        bytes[32..].copy_from_slice(self.y.as_slice());
        bytes
    }

    /// The key as p256 verifies with it; `None` off the curve.
    pub(crate) fn verifying_key(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_sec1_bytes(&[&[0x04], &self.to_bytes()[..]].concat()).ok()
    }
}

/// A public key of some kind: who owns an account, or which key a session registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PublicKey {
    /// An Ethereum key, by its address.
    Secp256k1(Address),
    /// A raw P-256 key.
    P256(P256Point),
    /// A WebAuthn credential.
    WebAuthn(P256Point),
}

impl PublicKey {
    /// Its kind.
    pub fn kind(&self) -> SignerKind {
        match self {
            Self::Secp256k1(_) => SignerKind::Secp256k1,
            Self::P256(_) => SignerKind::P256,
            Self::WebAuthn(_) => SignerKind::WebAuthn,
        }
    }

    /// Its 160-bit id, as the account computes it: a secp256k1 key's address, else the low 160
    /// bits of `keccak256(uint8(kind) ‖ x ‖ y)`. A session key's nonce lanes carry it.
    pub fn id(&self) -> Address {
        match self {
            Self::Secp256k1(address) => *address,
            Self::P256(point) | Self::WebAuthn(point) => {
                let hash = keccak256([&[self.kind().code()], &point.to_bytes()[..]].concat());
                Address::from_slice(&hash[12..])
            }
        }
    }

    /// The key as the contracts take it: 20 address bytes, or 64 bytes `x ‖ y`.
    pub fn key_bytes(&self) -> Bytes {
        match self {
            Self::Secp256k1(address) => Bytes::copy_from_slice(address.as_slice()),
            Self::P256(point) | Self::WebAuthn(point) => Bytes::copy_from_slice(&point.to_bytes()),
        }
    }

    /// The key as the contracts' `Signer` struct takes it.
    pub fn to_contract(&self) -> ContractSigner {
        ContractSigner {
            kind: self.kind().code(),
            key: self.key_bytes(),
        }
    }

    /// Whether checking its signature on chain verifies a P-256 signature.
    pub fn is_p256(&self) -> bool {
        !matches!(self, Self::Secp256k1(_))
    }

    /// The point of a P-256 kind.
    pub fn point(&self) -> Option<&P256Point> {
        match self {
            Self::Secp256k1(_) => None,
            Self::P256(point) | Self::WebAuthn(point) => Some(point),
        }
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secp256k1(address) => write!(f, "{address}"),
            Self::P256(_) | Self::WebAuthn(_) => write!(
                f,
                "{} key {} (id {})",
                self.kind().api_name(),
                self.key_bytes(),
                self.id()
            ),
        }
    }
}

/// A signature as a client submits it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmittedSignature {
    /// 64 or 65 bytes: a secp256k1 signature (`r ‖ s ‖ v`) or a raw P-256 one (`r ‖ s`).
    Bytes(Bytes),
    /// A WebAuthn assertion.
    WebAuthn(Assertion),
}

/// Why a submitted signature is refused; `field()` names what is wrong, in the API's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature has the wrong form for the signer's kind.
    #[error("{0}")]
    Form(String),
    /// It is well formed, but not the signer's signature of the hash.
    #[error("{0}")]
    NotTheSigner(String),
    /// A WebAuthn assertion is refused.
    #[error(transparent)]
    Assertion(#[from] webauthn::AssertionError),
}

impl SignatureError {
    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Form(_) | Self::NotTheSigner(_) => "signature",
            Self::Assertion(error) => error.field(),
        }
    }
}

/// Who signs: the owner accepts more forms of ECDSA than a session key does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The account's owner: an Ethereum owner signs raw or EIP-191.
    Owner,
    /// A session key: signs the hash as it is.
    SessionKey,
}

/// Checks `signature` by `signer` of `hash` as the account will, and returns the bytes the
/// account takes after the signer byte: a canonical ECDSA signature, a low-s `r ‖ s`, or an
/// ABI-encoded WebAuthn assertion.
pub fn verify(
    signer: &PublicKey,
    role: Role,
    hash: B256,
    signature: &SubmittedSignature,
) -> Result<Bytes, SignatureError> {
    match (signer, signature) {
        (PublicKey::Secp256k1(address), SubmittedSignature::Bytes(bytes)) => {
            let canonical = canonical_ecdsa(bytes).ok_or_else(|| {
                SignatureError::Form("not a valid 65-byte ECDSA signature".into())
            })?;
            let valid = match role {
                Role::Owner => is_owner_ecdsa(hash, &canonical, *address),
                Role::SessionKey => is_key_ecdsa(hash, &canonical, *address),
            };
            if !valid {
                let form = match role {
                    Role::Owner => "raw or EIP-191",
                    Role::SessionKey => "signed as it is, without an EIP-191 prefix",
                };
                return Err(SignatureError::NotTheSigner(format!(
                    "not a signature of {hash} by {address} ({form})"
                )));
            }
            Ok(canonical)
        }
        (PublicKey::P256(point), SubmittedSignature::Bytes(bytes)) => {
            let signature = p256_signature(bytes).ok_or_else(|| {
                SignatureError::Form(
                    "not a P-256 signature: 64 bytes r ‖ s (WebCrypto's ECDSA output), or DER"
                        .into(),
                )
            })?;
            let key = point
                .verifying_key()
                .ok_or_else(|| SignatureError::Form("the P-256 key is not on the curve".into()))?;
            // WebCrypto hashes the message with SHA-256 and signs that; so does `verify`.
            if key.verify(hash.as_slice(), &signature).is_err() {
                return Err(SignatureError::NotTheSigner(format!(
                    "not a signature of {hash} by the P-256 key (ECDSA over SHA-256 of its 32 \
                     bytes)"
                )));
            }
            Ok(Bytes::copy_from_slice(&signature.to_bytes()))
        }
        (PublicKey::WebAuthn(point), SubmittedSignature::WebAuthn(assertion)) => {
            Ok(webauthn::verify(assertion, hash, point)?)
        }
        (PublicKey::WebAuthn(_), SubmittedSignature::Bytes(_)) => Err(SignatureError::Form(
            "the signer is a WebAuthn credential: submit its assertion (webauthn), not \
             signature bytes"
                .into(),
        )),
        (_, SubmittedSignature::WebAuthn(_)) => Err(SignatureError::Form(format!(
            "the signer is a {} key: submit signature bytes, not a WebAuthn assertion",
            signer.kind().api_name()
        ))),
    }
}

/// A P-256 signature from 64 bytes `r ‖ s` or DER, with s made low (the account does the
/// same, so both forms of a signature count alike).
pub(crate) fn p256_signature(bytes: &[u8]) -> Option<P256Signature> {
    let signature = P256Signature::from_slice(bytes)
        .or_else(|_| P256Signature::from_der(bytes))
        .ok()?;
    Some(signature.normalize_s().unwrap_or(signature))
}

#[cfg(test)]
mod tests {
    use alloy::{primitives::b256, signers::local::PrivateKeySigner};
    use p256::ecdsa::{SigningKey, signature::Signer as _};

    use super::*;
    use crate::chain::signature::{sign_hash, sign_personal};

    pub(crate) fn p256_key() -> (SigningKey, P256Point) {
        // Almost every 32 random bytes are a valid scalar; the loop takes the first that is.
        let signing = std::iter::repeat_with(rand::random::<[u8; 32]>)
            .find_map(|bytes| SigningKey::from_slice(&bytes).ok())
            .expect("a scalar");
        let encoded = signing.verifying_key().to_encoded_point(false);
        let point = P256Point::parse(encoded.as_bytes()).expect("on the curve");
        (signing, point)
    }

    #[test]
    fn ids_follow_the_contracts_rule() {
        let address = Address::repeat_byte(7);
        assert_eq!(PublicKey::Secp256k1(address).id(), address);
        let (_, point) = p256_key();
        let raw = PublicKey::P256(point);
        let passkey = PublicKey::WebAuthn(point);
        let expected = keccak256([&[1u8], &point.to_bytes()[..]].concat());
        assert_eq!(raw.id(), Address::from_slice(&expected[12..]));
        assert_ne!(raw.id(), passkey.id(), "the kind is part of the id");
    }

    #[test]
    fn points_parse_in_both_uncompressed_forms_and_only_on_the_curve() {
        let (_, point) = p256_key();
        let bytes = point.to_bytes();
        assert_eq!(P256Point::parse(&bytes), Some(point));
        assert_eq!(
            P256Point::parse(&[&[0x04], &bytes[..]].concat()),
            Some(point)
        );
        let mut off = bytes;
        off[63] ^= 1;
        assert_eq!(P256Point::parse(&off), None);
        assert_eq!(P256Point::parse(&bytes[..63]), None);
    }

    #[test]
    fn a_raw_p256_key_signs_as_webcrypto_does_and_high_s_counts_the_same() {
        let (signing, point) = p256_key();
        let key = PublicKey::P256(point);
        let hash = b256!("4444444444444444444444444444444444444444444444444444444444444444");
        // WebCrypto: ECDSA with SHA-256 over the 32 bytes.
        let signature: P256Signature = signing.sign(hash.as_slice());
        let submitted = SubmittedSignature::Bytes(Bytes::copy_from_slice(&signature.to_bytes()));
        let accepted = verify(&key, Role::SessionKey, hash, &submitted).unwrap();
        assert_eq!(accepted.len(), 64);

        // The same signature with s flipped high: accepted, and sent low.
        let (r, s) = signature.split_scalars();
        let high = P256Signature::from_scalars(r, -*s).unwrap();
        let as_high = SubmittedSignature::Bytes(Bytes::copy_from_slice(&high.to_bytes()));
        assert_eq!(
            verify(&key, Role::SessionKey, hash, &as_high).unwrap(),
            accepted
        );
        let der = SubmittedSignature::Bytes(Bytes::copy_from_slice(signature.to_der().as_bytes()));
        assert_eq!(
            verify(&key, Role::SessionKey, hash, &der).unwrap(),
            accepted
        );

        let other = b256!("5555555555555555555555555555555555555555555555555555555555555555");
        assert!(matches!(
            verify(&key, Role::SessionKey, other, &submitted),
            Err(SignatureError::NotTheSigner(_))
        ));
        assert!(matches!(
            verify(
                &key,
                Role::SessionKey,
                hash,
                &SubmittedSignature::Bytes(Bytes::from(vec![1; 10]))
            ),
            Err(SignatureError::Form(_))
        ));
    }

    #[test]
    fn a_secp256k1_key_signs_raw_and_an_owner_either_way() {
        let signer = PrivateKeySigner::random();
        let key = PublicKey::Secp256k1(signer.address());
        let hash = b256!("6666666666666666666666666666666666666666666666666666666666666666");
        let raw = SubmittedSignature::Bytes(sign_hash(&signer, hash).unwrap());
        let personal = SubmittedSignature::Bytes(sign_personal(&signer, hash).unwrap());
        assert!(verify(&key, Role::SessionKey, hash, &raw).is_ok());
        assert!(verify(&key, Role::SessionKey, hash, &personal).is_err());
        assert!(verify(&key, Role::Owner, hash, &personal).is_ok());
        assert!(verify(&key, Role::Owner, hash, &raw).is_ok());
    }
}
