//! Pure readings of what the chain answered: the EntryPoint's logs, its refusals, a node's
//! reason for refusing a transaction, and the fees of a replacement.

use alloy::{primitives::B256, rpc::types::Log, sol_types::SolEvent};

use crate::{
    chain::{
        contracts::EntryPoint,
        revert::{RevertReason, decode_handle_ops_revert},
    },
    intent::RevertDetails,
};

/// The `UserOperationEvent` of `user_op_hash` among `logs`.
pub(super) fn find_operation(
    logs: &[Log],
    user_op_hash: B256,
) -> Option<EntryPoint::UserOperationEvent> {
    logs.iter()
        .filter(|log| log.topic0() == Some(&EntryPoint::UserOperationEvent::SIGNATURE_HASH))
        .filter(|log| log.topics().get(1) == Some(&user_op_hash))
        .find_map(|log| log.log_decode::<EntryPoint::UserOperationEvent>().ok())
        .map(|log| log.inner.data)
}

/// Why an included operation's execution reverted, from its `UserOperationRevertReason` log.
pub(super) fn execution_revert(logs: &[Log], user_op_hash: B256) -> RevertDetails {
    let reason = logs
        .iter()
        .filter(|log| log.topic0() == Some(&EntryPoint::UserOperationRevertReason::SIGNATURE_HASH))
        .filter(|log| log.topics().get(1) == Some(&user_op_hash))
        .find_map(|log| {
            log.log_decode::<EntryPoint::UserOperationRevertReason>()
                .ok()
        })
        .map(|log| RevertReason::decode(&log.inner.data.revertReason).to_string())
        .unwrap_or_else(|| "no revert data".to_owned());
    RevertDetails {
        aa_code: None,
        cause: "the operation's execution reverted; the account's checks had passed".to_owned(),
        remedy: "check the call's arguments and the target contract's state".to_owned(),
        reason,
    }
}

/// Why the EntryPoint refused an operation, from `handleOps` revert data.
pub(super) fn refusal_details(data: &[u8]) -> RevertDetails {
    match decode_handle_ops_revert(data) {
        Some(error) => RevertDetails {
            aa_code: Some(error.code.to_owned()),
            cause: error.cause.to_owned(),
            remedy: error.remedy.to_owned(),
            reason: error
                .inner
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or(error.message),
        },
        None => RevertDetails {
            aa_code: None,
            cause: "handleOps reverted".to_owned(),
            remedy: "inspect the operation; the revert was not an EntryPoint error".to_owned(),
            reason: RevertReason::decode(data).to_string(),
        },
    }
}

/// What a node's refusal of `eth_sendRawTransaction` means for the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SendRefusal {
    /// The node already has this very transaction: it is in flight.
    AlreadyKnown,
    /// The nonce is used on chain: the transaction can never be mined.
    NonceTooLow,
    /// Another transaction holds the nonce in the pool and pays as much or more.
    ReplacementUnderpriced,
    /// The sender cannot pay for the gas.
    InsufficientFunds,
    /// Any other answer from the node (a full pool, a fee or gas limit the node will not
    /// take, ...): this transaction is refused for good, though nothing says the nonce is
    /// taken.
    Refused,
    /// No answer (a timeout, a dropped connection): the transaction may or may not be in
    /// the pool, and only the chain can tell later.
    Unknown,
}

impl SendRefusal {
    /// Classifies a node's answer: `message` is its text, `answered` whether the node
    /// answered with a JSON-RPC error (rather than not at all). Geth, anvil, reth and erigon
    /// word these alike.
    pub(super) fn classify(message: &str, answered: bool) -> Self {
        let message = message.to_ascii_lowercase();
        if message.contains("already known") || message.contains("already imported") {
            Self::AlreadyKnown
        } else if message.contains("nonce too low") || message.contains("nonce is too low") {
            Self::NonceTooLow
        } else if message.contains("replacement transaction underpriced")
            || message.contains("replacement fee too low")
        {
            Self::ReplacementUnderpriced
        } else if message.contains("insufficient funds") {
            Self::InsufficientFunds
        } else if answered {
            Self::Refused
        } else {
            Self::Unknown
        }
    }
}

/// EIP-1559 fees of one transaction, wei per gas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TxFees {
    /// Fee cap.
    pub(super) max_fee_per_gas: u128,
    /// Priority fee.
    pub(super) max_priority_fee_per_gas: u128,
}

/// The fees of a replacement for a transaction paying `old`: both raised by `percent` (at
/// least 1 wei, as nodes require a strict rise), and never under what the market asks now,
/// all within `cap`. `None` when the cap leaves no room for a replacement the node would
/// take: the transaction can only wait.
pub(super) fn bumped_fees(old: TxFees, market: TxFees, percent: u64, cap: u128) -> Option<TxFees> {
    let raise = |value: u128| {
        value
            .saturating_mul(100 + u128::from(percent))
            .div_ceil(100)
            .max(value.saturating_add(1))
    };
    let max_priority_fee_per_gas = raise(old.max_priority_fee_per_gas)
        .max(market.max_priority_fee_per_gas)
        .min(cap);
    let max_fee_per_gas = raise(old.max_fee_per_gas)
        .max(market.max_fee_per_gas)
        .max(max_priority_fee_per_gas)
        .min(cap);
    // A replacement must raise both fees, each by the node's minimum (10%); under the cap it
    // cannot, and sending it would only be refused. Compared as a difference: multiplying
    // would saturate near u128::MAX and pass a replacement that does not rise at all.
    let enough = |new: u128, old: u128| new > old && new - old >= old.div_ceil(10);
    (enough(max_fee_per_gas, old.max_fee_per_gas)
        && enough(max_priority_fee_per_gas, old.max_priority_fee_per_gas))
    .then_some(TxFees {
        max_fee_per_gas,
        max_priority_fee_per_gas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GWEI: u128 = 1_000_000_000;

    fn fees(max: u128, tip: u128) -> TxFees {
        TxFees {
            max_fee_per_gas: max * GWEI,
            max_priority_fee_per_gas: tip * GWEI,
        }
    }

    #[test]
    fn a_replacement_raises_both_fees_by_the_percentage() {
        let bumped = bumped_fees(fees(10, 1), fees(5, 1), 20, 500 * GWEI).unwrap();
        assert_eq!(bumped, fees(12, 0).with_tip(GWEI * 12 / 10));
    }

    #[test]
    fn a_replacement_follows_the_market_when_it_rose_further() {
        let bumped = bumped_fees(fees(10, 1), fees(200, 3), 20, 500 * GWEI).unwrap();
        assert_eq!(bumped, fees(200, 3));
    }

    #[test]
    fn the_cap_bounds_replacements_and_stops_them_when_no_room_is_left() {
        let bumped = bumped_fees(fees(100, 2), fees(400, 2), 20, 115 * GWEI).unwrap();
        assert_eq!(bumped.max_fee_per_gas, 115 * GWEI);
        assert_eq!(
            bumped_fees(fees(110, 2), fees(400, 2), 20, 115 * GWEI),
            None
        );
    }

    #[test]
    fn zero_fees_still_rise() {
        let bumped = bumped_fees(fees(0, 0), fees(0, 0), 10, GWEI).unwrap();
        assert_eq!(bumped.max_fee_per_gas, 1);
        assert_eq!(bumped.max_priority_fee_per_gas, 1);
    }

    #[test]
    fn no_replacement_when_the_cap_leaves_no_rise() {
        // Found by relay::properties: near u128::MAX, `fee * 10 >= old * 11` saturated on
        // both sides and passed a "replacement" with the very same fees.
        let old = TxFees {
            max_fee_per_gas: 0,
            max_priority_fee_per_gas: u128::MAX - 100,
        };
        assert_eq!(bumped_fees(old, fees(0, 0), 0, u128::MAX - 100), None);
        // A zero cap leaves zero fees where they were: no replacement either.
        assert_eq!(bumped_fees(fees(0, 0), fees(0, 0), 10, 0), None);
    }

    #[test]
    fn node_refusals_are_classified() {
        for (message, answered, expected) in [
            ("already known", true, SendRefusal::AlreadyKnown),
            (
                "server returned an error response: error code -32003: nonce too low",
                true,
                SendRefusal::NonceTooLow,
            ),
            (
                "replacement transaction underpriced",
                true,
                SendRefusal::ReplacementUnderpriced,
            ),
            (
                "insufficient funds for gas * price + value",
                true,
                SendRefusal::InsufficientFunds,
            ),
            // A full pool says "underpriced" without holding the nonce.
            ("transaction underpriced", true, SendRefusal::Refused),
            (
                "tx fee (1.20 ether) exceeds the configured cap (1.00 ether)",
                true,
                SendRefusal::Refused,
            ),
            ("connection refused", false, SendRefusal::Unknown),
        ] {
            assert_eq!(
                SendRefusal::classify(message, answered),
                expected,
                "{message}"
            );
        }
    }

    impl TxFees {
        fn with_tip(self, tip: u128) -> Self {
            Self {
                max_priority_fee_per_gas: tip,
                ..self
            }
        }
    }
}
