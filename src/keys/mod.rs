//! Held session keys: latchkey generates them, keeps them in the store sealed under the
//! master key, and uses them only to sign their session's operations. A key never leaves
//! the daemon and is never logged.
//!
//! # Sealing
//!
//! A held key is stored as `version (1) ++ master key id (8) ++ nonce (24) ++ ciphertext
//! (32 + 16)`: XChaCha20-Poly1305 under the master key, with the key's address as
//! associated data, so a sealed key copied under another address does not open. The master
//! key id (a hash of the master key, which says nothing about it) tells which master key a
//! record was sealed under, so a wrong master key is named as such rather than reported as
//! corruption, and a rotation can tell what it has already done. Secrets are wiped from
//! memory when dropped.

use alloy::{
    primitives::{Address, keccak256},
    signers::local::PrivateKeySigner,
};
use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
};
use zeroize::Zeroizing;

/// The format of a sealed key: bumped if the layout ever changes.
const SEALED_VERSION: u8 = 1;
const ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;
const SECRET_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// The length of a sealed key.
pub const SEALED_LEN: usize = 1 + ID_LEN + NONCE_LEN + SECRET_LEN + TAG_LEN;
/// The length of a key stored before sealing (schema 2): its bare secret.
const LEGACY_LEN: usize = SECRET_LEN;

/// A held key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The stored bytes are not a secp256k1 secret key.
    #[error("the stored key for {0} is not a valid secp256k1 secret key")]
    Invalid(Address),
    /// The stored key does not belong to the address it is stored under.
    #[error("the stored key does not match its address {0}")]
    Mismatch(Address),
    /// The key was sealed under another master key.
    #[error(
        "the key of {address} is sealed under master key {sealed_under}, not the configured \
         master key {configured}; configure the master key it was sealed under (or rotate \
         to the new one with `latchkey keys rotate-master`)"
    )]
    WrongMasterKey {
        /// The key's address.
        address: Address,
        /// The id of the master key it is sealed under.
        sealed_under: String,
        /// The id of the configured master key.
        configured: String,
    },
    /// The sealed bytes do not open: damaged, or not a sealed key.
    #[error("the sealed key of {0} is damaged: it does not open under its master key")]
    Damaged(Address),
    /// The cipher refused to seal (it never does for a 32-byte key).
    #[error("sealing the key of {0} failed")]
    Sealing(Address),
    /// A master key given as text is not 32 bytes of hex.
    #[error(
        "not a master key: expected 64 hex digits (32 bytes), such as `openssl rand -hex 32` prints"
    )]
    BadMasterKey,
}

/// The key that seals every held key. It never shows: not in `Debug`, and its bytes are
/// wiped when it is dropped.
#[derive(Clone)]
pub struct MasterKey {
    key: Zeroizing<[u8; 32]>,
    id: [u8; ID_LEN],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id_hex())
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// A master key from 64 hex digits (an optional `0x` and surrounding whitespace are
    /// allowed). The error never repeats the text.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let text = text.strip_prefix("0x").unwrap_or(text);
        let bytes = Zeroizing::new(alloy::hex::decode(text).map_err(|_| KeyError::BadMasterKey)?);
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::BadMasterKey)?;
        Ok(Self::from_bytes(key))
    }

    /// A new master key from the OS random source.
    pub fn generate() -> Self {
        Self::from_bytes(XChaCha20Poly1305::generate_key(&mut OsRng).into())
    }

    fn from_bytes(key: [u8; 32]) -> Self {
        let key = Zeroizing::new(key);
        let digest = keccak256([b"latchkey master key id".as_slice(), key.as_slice()].concat());
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&digest[..ID_LEN]);
        Self { key, id }
    }

    /// The key as 64 hex digits, to hand to the operator once (`latchkey keys generate`).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(alloy::hex::encode(self.key.as_slice()))
    }

    /// The key's id: a hash that identifies it without revealing it, and names which
    /// master key a sealed record is under.
    pub fn id(&self) -> [u8; ID_LEN] {
        self.id
    }

    /// The key's id, as hex: safe to print, it identifies the key without revealing it.
    pub fn id_hex(&self) -> String {
        alloy::hex::encode(self.id)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&(*self.key).into())
    }
}

/// A freshly generated key: its address and its 32 secret bytes, wiped when dropped.
pub struct GeneratedKey {
    /// The key's address.
    pub address: Address,
    /// The secret, to seal and nowhere else.
    pub secret: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Generates a new session key from the OS random source.
pub fn generate() -> GeneratedKey {
    let signer = PrivateKeySigner::random();
    GeneratedKey {
        address: signer.address(),
        secret: Zeroizing::new(signer.to_bytes().0),
    }
}

/// `secret`, the key of `address`, sealed under `master` with a fresh random nonce (24
/// bytes: long enough to draw at random with no fear of a repeat).
pub fn seal(master: &MasterKey, address: Address, secret: &[u8; 32]) -> Result<Vec<u8>, KeyError> {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let ciphertext = master
        .cipher()
        .encrypt(
            &nonce,
            Payload {
                msg: secret,
                aad: address.as_slice(),
            },
        )
        .map_err(|_| KeyError::Sealing(address))?;
    let mut sealed = Vec::with_capacity(SEALED_LEN);
    sealed.push(SEALED_VERSION);
    sealed.extend_from_slice(&master.id);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// The id of the master key `sealed` is sealed under, or `None` for a key stored bare by
/// an older version (schema 2), which must be sealed before use.
pub fn sealed_under(sealed: &[u8]) -> Option<[u8; ID_LEN]> {
    if sealed.len() == LEGACY_LEN {
        return None;
    }
    sealed.get(1..1 + ID_LEN).and_then(|id| id.try_into().ok())
}

/// Opens the sealed key of `address` with `master`.
pub fn unseal(
    master: &MasterKey,
    address: Address,
    sealed: &[u8],
) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    if sealed.len() != SEALED_LEN || sealed[0] != SEALED_VERSION {
        return Err(KeyError::Damaged(address));
    }
    let id = &sealed[1..1 + ID_LEN];
    if id != master.id {
        return Err(KeyError::WrongMasterKey {
            address,
            sealed_under: alloy::hex::encode(id),
            configured: master.id_hex(),
        });
    }
    let nonce: [u8; NONCE_LEN] = sealed[1 + ID_LEN..1 + ID_LEN + NONCE_LEN]
        .try_into()
        .map_err(|_| KeyError::Damaged(address))?;
    let plaintext = Zeroizing::new(
        master
            .cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &sealed[1 + ID_LEN + NONCE_LEN..],
                    aad: address.as_slice(),
                },
            )
            .map_err(|_| KeyError::Damaged(address))?,
    );
    let secret: [u8; 32] = plaintext
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::Damaged(address))?;
    Ok(Zeroizing::new(secret))
}

/// The signer for the key of `address` sealed in `sealed`, checking that it is its key.
pub fn signer(
    master: &MasterKey,
    address: Address,
    sealed: &[u8],
) -> Result<PrivateKeySigner, KeyError> {
    let secret = unseal(master, address, sealed)?;
    let signer =
        PrivateKeySigner::from_slice(secret.as_slice()).map_err(|_| KeyError::Invalid(address))?;
    if signer.address() != address {
        return Err(KeyError::Mismatch(address));
    }
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        MasterKey::from_hex(&"11".repeat(32)).unwrap()
    }

    #[test]
    fn a_sealed_key_opens_only_under_its_master_key_and_address() {
        let key = generate();
        let sealed = seal(&master(), key.address, &key.secret).unwrap();
        assert_eq!(sealed.len(), SEALED_LEN);
        assert!(
            sealed
                .windows(SECRET_LEN)
                .all(|window| window != key.secret.as_slice()),
            "the secret is not in the sealed bytes"
        );
        let signer = signer(&master(), key.address, &sealed).unwrap();
        assert_eq!(signer.address(), key.address);
        assert_eq!(sealed_under(&sealed), Some(master().id));
        assert_ne!(
            seal(&master(), key.address, &key.secret).unwrap(),
            sealed,
            "a fresh nonce every time"
        );

        let other = MasterKey::from_hex(&"22".repeat(32)).unwrap();
        assert!(matches!(
            unseal(&other, key.address, &sealed),
            Err(KeyError::WrongMasterKey { .. })
        ));
        assert!(matches!(
            unseal(&master(), Address::repeat_byte(7), &sealed),
            Err(KeyError::Damaged(_))
        ));
        for index in [0, 1, 20, SEALED_LEN - 1] {
            let mut tampered = sealed.clone();
            tampered[index] ^= 1;
            assert!(
                unseal(&master(), key.address, &tampered).is_err(),
                "byte {index}"
            );
        }
        assert!(matches!(
            unseal(&master(), key.address, &sealed[..40]),
            Err(KeyError::Damaged(_))
        ));
        assert!(matches!(
            unseal(&master(), key.address, key.secret.as_slice()),
            Err(KeyError::Damaged(_))
        ));
        assert_eq!(
            sealed_under(key.secret.as_slice()),
            None,
            "a bare legacy key"
        );
    }

    #[test]
    fn master_keys_parse_from_hex_and_never_show() {
        let hex = "ab".repeat(32);
        let key = MasterKey::from_hex(&format!(" 0x{hex}\n")).unwrap();
        assert_eq!(key.to_hex().as_str(), hex);
        assert!(!format!("{key:?}").contains(&hex));
        assert_eq!(key.id_hex().len(), 16);
        for bad in [
            "",
            "abc",
            &"ab".repeat(31),
            &"zz".repeat(32),
            &"ab".repeat(33),
        ] {
            let error = MasterKey::from_hex(bad).unwrap_err().to_string();
            assert!(!bad.is_empty() && !error.contains(bad) || bad.is_empty());
        }
        assert_ne!(MasterKey::generate().id, MasterKey::generate().id);
    }

    #[test]
    fn a_generated_key_hides_its_secret() {
        let key = generate();
        assert!(!format!("{key:?}").contains(&alloy::hex::encode(key.secret.as_slice())));
    }
}
