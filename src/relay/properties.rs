//! Property tests of what the relay reads from the chain: logs, revert data and node
//! messages are chosen by whoever wrote the contracts and runs the node, so any bytes and
//! any text must decode to something, without panicking or recursing without bound.

use alloy::{
    primitives::{Address, B256, Bytes, LogData, U256},
    rpc::types::Log,
    sol_types::{Panic, Revert, SolError, SolEvent},
};
use proptest::{prelude::*, test_runner::Config};

use super::decode::{
    SendRefusal, TxFees, bumped_fees, execution_revert, find_operation, refusal_details,
};
use crate::chain::{
    contracts::{EntryPoint, GameItems, SessionKeyAccount, SessionKeyAccountFactory},
    revert::{MAX_REVERT_NESTING, RevertReason, decode_handle_ops_revert},
};

fn config(cases: u32) -> Config {
    Config {
        cases,
        // Failures are reported in the test output; nothing is written next to the sources.
        failure_persistence: None,
        ..Config::default()
    }
}

/// Every error selector latchkey has bindings for, and the built-in ones.
fn known_selector() -> impl Strategy<Value = [u8; 4]> {
    let mut selectors = vec![
        Revert::SELECTOR,
        Panic::SELECTOR,
        SessionKeyAccount::ExecuteError::SELECTOR,
    ];
    selectors.extend_from_slice(SessionKeyAccount::SessionKeyAccountErrors::SELECTORS);
    selectors.extend_from_slice(GameItems::GameItemsErrors::SELECTORS);
    selectors
        .extend_from_slice(SessionKeyAccountFactory::SessionKeyAccountFactoryErrors::SELECTORS);
    selectors.extend_from_slice(EntryPoint::EntryPointErrors::SELECTORS);
    proptest::sample::select(selectors)
}

/// Revert data: anything, a known selector with any body, or a known selector with a body
/// of well-formed ABI words (offsets and lengths that point somewhere, or far away).
fn revert_data() -> impl Strategy<Value = Vec<u8>> {
    let word = prop_oneof![
        any::<[u8; 32]>(),
        (0u64..256).prop_map(|n| U256::from(n).to_be_bytes::<32>()),
        Just(U256::MAX.to_be_bytes::<32>()),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        (
            known_selector(),
            proptest::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(selector, body)| [selector.as_slice(), &body].concat()),
        (known_selector(), proptest::collection::vec(word, 0..8)).prop_map(|(selector, words)| [
            selector.as_slice(),
            &words.concat()
        ]
        .concat()),
    ]
}

fn log(address: Address, topics: Vec<B256>, data: Vec<u8>) -> Log {
    Log {
        inner: alloy::primitives::Log {
            address,
            data: LogData::new_unchecked(topics, data.into()),
        },
        ..Log::default()
    }
}

/// A log that may or may not be an EntryPoint event for `hash`: its topics drawn from the
/// events' signatures, the hash and noise, its data anything.
fn hostile_log(hash: B256) -> impl Strategy<Value = Log> {
    let topic = prop_oneof![
        Just(EntryPoint::UserOperationEvent::SIGNATURE_HASH),
        Just(EntryPoint::UserOperationRevertReason::SIGNATURE_HASH),
        Just(hash),
        any::<[u8; 32]>().prop_map(B256::from),
    ];
    (
        proptest::collection::vec(topic, 0..5),
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            revert_data(),
        ],
    )
        .prop_map(|(topics, data)| log(Address::ZERO, topics, data))
}

/// Fees, wei per gas: anything, and the edges where arithmetic saturates or starts at zero.
fn fee() -> impl Strategy<Value = u128> {
    prop_oneof![any::<u128>(), 0u128..100, (u128::MAX - 100)..=u128::MAX]
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn arbitrary_revert_data_never_panics(data in revert_data()) {
        let reason = RevertReason::decode(&data);
        let _ = reason.to_string();
        let _ = reason.root();
        let _ = decode_handle_ops_revert(&data).map(|error| error.to_string());
        let details = refusal_details(&data);
        prop_assert!(!details.cause.is_empty() && !details.remedy.is_empty());
    }

    #[test]
    fn messages_and_panics_round_trip(message in any::<String>(), code in any::<[u8; 32]>()) {
        let data = Revert { reason: message.clone() }.abi_encode();
        prop_assert_eq!(RevertReason::decode(&data), RevertReason::Message(message));
        let code = U256::from_be_bytes(code);
        let data = Panic { code }.abi_encode();
        let decoded = matches!(RevertReason::decode(&data), RevertReason::Panic { code: c, .. } if c == code);
        prop_assert!(decoded, "Panic({}) decodes as a panic", code);
    }

    #[test]
    fn nested_batch_failures_stop_at_the_nesting_cap(
        depth in 0usize..40,
        index in any::<u64>(),
        leaf in revert_data(),
    ) {
        let mut data = leaf;
        for _ in 0..depth {
            data = SessionKeyAccount::ExecuteError {
                index: U256::from(index),
                error: data.into(),
            }
            .abi_encode();
        }
        let reason = RevertReason::decode(&data);
        let _ = reason.to_string();
        let mut levels = 0;
        let mut current = &reason;
        while let RevertReason::BatchCall { reason, .. } = current {
            levels += 1;
            current = reason;
        }
        prop_assert!(levels <= MAX_REVERT_NESTING + 1, "{levels} levels");
        if depth <= MAX_REVERT_NESTING {
            prop_assert!(levels >= depth);
        }
    }

    #[test]
    fn failed_ops_keep_their_code_and_never_panic(
        index in any::<u64>(),
        reason in prop_oneof![any::<String>(), "AA[0-9]{2}[ a-z]{0,20}", "[a-z ]{0,5}AA[0-9]{2}.{0,10}"],
        inner in revert_data(),
        with_revert in any::<bool>(),
    ) {
        let data = if with_revert {
            EntryPoint::FailedOpWithRevert {
                opIndex: U256::from(index),
                reason: reason.clone(),
                inner: inner.into(),
            }
            .abi_encode()
        } else {
            EntryPoint::FailedOp { opIndex: U256::from(index), reason: reason.clone() }.abi_encode()
        };
        let details = refusal_details(&data);
        if let Some(error) = decode_handle_ops_revert(&data) {
            prop_assert_eq!(error.op_index, Some(U256::from(index)));
            prop_assert!(reason.contains(error.code), "{} not in {reason:?}", error.code);
            prop_assert_eq!(details.aa_code.as_deref(), Some(error.code));
        }
        let _ = details.reason;
    }

    #[test]
    fn hostile_logs_never_panic_and_real_events_are_found(
        hash in any::<[u8; 32]>().prop_map(B256::from),
        noise in proptest::collection::vec(hostile_log(B256::ZERO), 0..6),
        nonce in any::<[u8; 32]>(),
        success in any::<bool>(),
        revert in revert_data(),
        include in any::<bool>(),
    ) {
        let mut logs: Vec<Log> = noise;
        let event = EntryPoint::UserOperationEvent {
            userOpHash: hash,
            sender: Address::repeat_byte(1),
            paymaster: Address::ZERO,
            nonce: U256::from_be_bytes(nonce),
            success,
            actualGasCost: U256::from(7u8),
            actualGasUsed: U256::from(9u8),
        };
        let reverted = EntryPoint::UserOperationRevertReason {
            userOpHash: hash,
            sender: Address::repeat_byte(1),
            nonce: U256::from_be_bytes(nonce),
            revertReason: Bytes::from(revert.clone()),
        };
        if include {
            logs.push(log(Address::ZERO, event.encode_topics().into_iter().map(|t| t.0).collect(), event.encode_data()));
            logs.push(log(Address::ZERO, reverted.encode_topics().into_iter().map(|t| t.0).collect(), reverted.encode_data()));
        }
        let found = find_operation(&logs, hash);
        let details = execution_revert(&logs, hash);
        prop_assert!(!details.reason.is_empty());
        if include {
            let found = found.expect("the real event is found among the noise");
            prop_assert_eq!(found.userOpHash, hash);
            prop_assert_eq!(found.success, success);
            prop_assert_eq!(found.nonce, U256::from_be_bytes(nonce));
            prop_assert_eq!(details.reason, RevertReason::decode(&revert).to_string());
        }
    }

    #[test]
    fn node_messages_never_panic(message in any::<String>(), answered in any::<bool>()) {
        let refusal = SendRefusal::classify(&message, answered);
        if !answered {
            prop_assert!(refusal != SendRefusal::Refused);
        }
    }

    #[test]
    fn bumped_fees_rise_enough_and_stay_under_the_cap(
        old in (fee(), fee()),
        market in (fee(), fee()),
        percent in 0u64..1_000,
        cap in fee(),
    ) {
        let old = TxFees { max_fee_per_gas: old.0, max_priority_fee_per_gas: old.1 };
        let market = TxFees { max_fee_per_gas: market.0, max_priority_fee_per_gas: market.1 };
        if let Some(new) = bumped_fees(old, market, percent, cap) {
            prop_assert!(new.max_fee_per_gas <= cap && new.max_priority_fee_per_gas <= cap);
            prop_assert!(new.max_fee_per_gas >= new.max_priority_fee_per_gas);
            // Nodes take a replacement only when both fees rise, each by at least 10%.
            let rises = |new: u128, old: u128| {
                new > old && U256::from(new) * U256::from(10u8) >= U256::from(old) * U256::from(11u8)
            };
            prop_assert!(rises(new.max_fee_per_gas, old.max_fee_per_gas), "{old:?} -> {new:?}");
            prop_assert!(
                rises(new.max_priority_fee_per_gas, old.max_priority_fee_per_gas),
                "{old:?} -> {new:?}"
            );
        }
    }
}
