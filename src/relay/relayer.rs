//! One relayer account and the choice of its next nonce.

use std::collections::BTreeSet;

use alloy::{network::EthereumWallet, primitives::Address, signers::local::PrivateKeySigner};

/// A relayer account: its key signs the `handleOps` transactions it sends, and it is the
/// beneficiary of their fees. Each has its own nonces and its own bundles in flight.
pub(super) struct Relayer {
    /// Its address.
    pub(super) address: Address,
    /// Its key, as a wallet that signs transactions.
    pub(super) wallet: EthereumWallet,
    /// The lowest nonce a new bundle may take. The node can hold a transaction at a nonce
    /// the store knows nothing of (sent by another process with the same key); a refused
    /// send raises the floor past it instead of fighting over it.
    pub(super) nonce_floor: u64,
    /// Whether it is in the rotation. A relayer that cannot pay for a bundle is taken out
    /// and its balance is checked on every pass until it can.
    pub(super) funded: bool,
}

impl Relayer {
    pub(super) fn new(signer: PrivateKeySigner) -> Self {
        Self {
            address: signer.address(),
            wallet: EthereumWallet::from(signer),
            nonce_floor: 0,
            funded: true,
        }
    }

    /// The nonce for a new bundle: the lowest one the chain has not used (`mined` is the
    /// relayer's transaction count at the latest block), at or above the floor, that no
    /// bundle in flight holds. Taking the lowest free one fills the gap a lost transaction
    /// leaves, so the transactions after it never wait behind a nonce nobody will send.
    pub(super) fn next_nonce(&self, mined: u64, in_flight: &BTreeSet<u64>) -> u64 {
        let mut nonce = mined.max(self.nonce_floor);
        while in_flight.contains(&nonce) {
            nonce += 1;
        }
        nonce
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relayer(floor: u64) -> Relayer {
        let mut relayer = Relayer::new(PrivateKeySigner::random());
        relayer.nonce_floor = floor;
        relayer
    }

    #[test]
    fn the_next_nonce_is_the_lowest_free_one() {
        let none = BTreeSet::new();
        assert_eq!(relayer(0).next_nonce(7, &none), 7);
        let flying: BTreeSet<u64> = [7, 8, 10].into();
        assert_eq!(relayer(0).next_nonce(7, &flying), 9);
        // A lost transaction at 7 left a gap: it is filled first.
        let after_gap: BTreeSet<u64> = [8, 9].into();
        assert_eq!(relayer(0).next_nonce(7, &after_gap), 7);
        // Nonces already mined are never reused, whatever the store remembers.
        let stale: BTreeSet<u64> = [3].into();
        assert_eq!(relayer(0).next_nonce(7, &stale), 7);
    }

    #[test]
    fn the_floor_skips_nonces_held_by_unknown_transactions() {
        let flying: BTreeSet<u64> = [12].into();
        assert_eq!(relayer(12).next_nonce(7, &flying), 13);
        assert_eq!(relayer(3).next_nonce(7, &BTreeSet::new()), 7);
    }
}
