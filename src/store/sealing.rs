//! Keeping the store's held keys sealed under the configured master key: sealing the keys
//! an older version stored bare, and moving every key to a new master key.

use alloy::primitives::Address;

use super::{Store, StoreError};
use crate::keys::{KeyError, MasterKey, seal, sealed_under, unseal};

/// Why the held keys could not be checked or moved.
#[derive(Debug, thiserror::Error)]
pub enum SealingError {
    /// A key does not open, or is sealed under a master key that was not given.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The store failed; nothing was written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RotationReport {
    /// Keys moved to the new master key now.
    pub resealed: usize,
    /// Keys already under the new master key (a rotation run before, or keys created
    /// since).
    pub already: usize,
}

/// Checks at start that every held key is sealed under `master`, and seals those an older
/// version stored bare, in one atomic write. Returns how many it sealed. A key under
/// another master key stops the daemon before it signs anything.
pub async fn seal_legacy_keys(
    store: &dyn Store,
    master: &MasterKey,
) -> Result<usize, SealingError> {
    let mut changes = Vec::new();
    for (address, stored) in store.held_keys().await? {
        match sealed_under(&stored) {
            Some(id) if id == master.id() => {}
            Some(id) => return Err(wrong_master(address, &id, master).into()),
            None => changes.push(reseal(address, stored, None, master)?),
        }
    }
    store.replace_held_keys(&changes).await?;
    Ok(changes.len())
}

/// Moves every held key from `old` to `new`, in one atomic write: if it fails, every key
/// stays under `old`. Keys already under `new` are left alone, so running it again after
/// an interruption finishes the job; keys stored bare by an older version are sealed under
/// `new` too.
pub async fn rotate_master_key(
    store: &dyn Store,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<RotationReport, SealingError> {
    let mut changes = Vec::new();
    let mut already = 0;
    for (address, stored) in store.held_keys().await? {
        match sealed_under(&stored) {
            Some(id) if id == new.id() => already += 1,
            Some(id) if id == old.id() => changes.push(reseal(address, stored, Some(old), new)?),
            Some(id) => return Err(wrong_master(address, &id, old).into()),
            None => changes.push(reseal(address, stored, None, new)?),
        }
    }
    store.replace_held_keys(&changes).await?;
    Ok(RotationReport {
        resealed: changes.len(),
        already,
    })
}

/// The change that reseals `stored` (sealed under `from`, or bare when `None`) under `to`.
fn reseal(
    address: Address,
    stored: Vec<u8>,
    from: Option<&MasterKey>,
    to: &MasterKey,
) -> Result<(Address, Vec<u8>, Vec<u8>), KeyError> {
    let secret = match from {
        Some(from) => unseal(from, address, &stored)?,
        None => zeroize::Zeroizing::new(
            stored
                .as_slice()
                .try_into()
                .map_err(|_| KeyError::Damaged(address))?,
        ),
    };
    let sealed = seal(to, address, &secret)?;
    Ok((address, stored, sealed))
}

fn wrong_master(address: Address, id: &[u8], configured: &MasterKey) -> KeyError {
    KeyError::WrongMasterKey {
        address,
        sealed_under: alloy::hex::encode(id),
        configured: configured.id_hex(),
    }
}
