//! Held session keys: latchkey generates them, keeps them in the store, and uses them only to
//! sign their session's operations. A key never leaves the daemon and is never logged.

use alloy::{primitives::Address, signers::local::PrivateKeySigner};

/// A held key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The stored bytes are not a secp256k1 secret key.
    #[error("the stored key for {0} is not a valid secp256k1 secret key")]
    Invalid(Address),
    /// The stored key does not belong to the address it is stored under.
    #[error("the stored key does not match its address {0}")]
    Mismatch(Address),
}

/// A freshly generated key: its address and its 32 secret bytes, to store.
pub struct GeneratedKey {
    /// The key's address.
    pub address: Address,
    /// The secret, to hand to the store and nowhere else.
    pub secret: [u8; 32],
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
        secret: signer.to_bytes().0,
    }
}

/// The signer for the key stored under `address`, checking that the bytes are its key.
pub fn signer(address: Address, secret: &[u8]) -> Result<PrivateKeySigner, KeyError> {
    let signer = PrivateKeySigner::from_slice(secret).map_err(|_| KeyError::Invalid(address))?;
    if signer.address() != address {
        return Err(KeyError::Mismatch(address));
    }
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_signs_as_its_address_and_hides_its_secret() {
        let key = generate();
        let signer = signer(key.address, &key.secret).unwrap();
        assert_eq!(signer.address(), key.address);
        assert!(!format!("{key:?}").contains(&alloy::hex::encode(key.secret)));
    }

    #[test]
    fn wrong_or_broken_bytes_are_refused() {
        let key = generate();
        assert!(matches!(
            signer(Address::repeat_byte(1), &key.secret),
            Err(KeyError::Mismatch(_))
        ));
        assert!(matches!(
            signer(key.address, &[0u8; 32]),
            Err(KeyError::Invalid(_))
        ));
        assert!(matches!(
            signer(key.address, &[1u8; 5]),
            Err(KeyError::Invalid(_))
        ));
    }
}
