use alloy::primitives::{B256, Bytes, U256};

use super::*;
use crate::intent::{IntentResult, IntentStatus};

const CHAIN: u64 = 31_337;
const CREATED: u64 = 1_700_000_000_000;
const HOUR: u64 = 3600;
const GAME: Address = Address::repeat_byte(0x9a);
const SHOP: Address = Address::repeat_byte(0x5b);
const MINT: FixedBytes<4> = FixedBytes([0x40, 0xc1, 0x0f, 0x19]);
const BURN: FixedBytes<4> = FixedBytes([0x42, 0x96, 0x6c, 0x68]);

/// An enabled policy on [`CHAIN`], created at [`CREATED`], with `rules`.
fn policy(rules: Vec<Rule>) -> Policy {
    Policy {
        tenant: Default::default(),
        id: PolicyId::generate(),
        name: "Starter quests".into(),
        chain_id: CHAIN,
        strategy: SponsorStrategy::PayForUser,
        enabled: true,
        rules,
        revision: 0,
        created_at_ms: CREATED,
        updated_at_ms: CREATED,
    }
}

fn exact(contract: Address, selector: FixedBytes<4>) -> ContractFunction {
    ContractFunction {
        contract: Some(contract),
        selector: SelectorRule::Exact(selector),
        function: selector.to_string(),
    }
}

fn any_function_of(contract: Address) -> ContractFunction {
    ContractFunction {
        contract: Some(contract),
        selector: SelectorRule::Any,
        function: "*".into(),
    }
}

fn call(to: Address, selector: FixedBytes<4>) -> Interaction {
    let mut data = selector.to_vec();
    data.extend_from_slice(&[0_u8; 32]);
    Interaction {
        to,
        value: U256::ZERO,
        data: Bytes::from(data),
        function: None,
    }
}

fn transfer(to: Address) -> Interaction {
    Interaction {
        to,
        value: U256::from(1_000_u64),
        data: Bytes::new(),
        function: None,
    }
}

/// The field `validate` names for `policy`, which must be invalid.
fn invalid_field(policy: &Policy) -> String {
    policy
        .validate()
        .expect_err("the policy should be invalid")
        .field
}

fn every_account_function() -> Rule {
    Rule::AccountFunctions(vec![
        AccountFunction::RegisterSession,
        AccountFunction::RevokeSession,
        AccountFunction::DeployAccount,
    ])
}

fn charge_of(policy: &Policy, now_ms: u64, reserved: Amount) -> Charge {
    Charge {
        policy: policy.id.clone(),
        windows: policy.windows_at(now_ms),
        reserved,
        revocation: false,
    }
}

fn result(gas_used: u64, actual_cost: u128) -> IntentResult {
    IntentResult {
        tx_hash: B256::repeat_byte(0x77),
        block_number: 12,
        block_hash: B256::repeat_byte(0x12),
        gas_used: U256::from(gas_used),
        actual_cost: U256::from(actual_cost),
        success: true,
        revert: None,
    }
}

// --- validate ---------------------------------------------------------------------------

#[test]
fn a_well_formed_policy_is_valid() {
    let policy = policy(vec![
        Rule::ContractFunctions(vec![exact(GAME, MINT)]),
        every_account_function(),
        Rule::OperationsPerInterval {
            max_operations: 1,
            interval_secs: 1,
        },
        Rule::GasPerInterval {
            max_gas: 1,
            interval_secs: MAX_INTERVAL_SECS,
        },
        Rule::GasPerOperation { max_gas: 1 },
        Rule::SpendPerInterval {
            max_wei: 1,
            interval_secs: HOUR,
        },
    ]);
    assert_eq!(policy.validate(), Ok(()));
}

#[test]
fn validate_refuses_a_name_that_is_empty_padded_too_long_or_has_control_characters() {
    for name in [
        "",
        "   ",
        " quests",
        "quests ",
        "quest\u{0}s",
        "quests\u{7}",
    ] {
        let policy = Policy {
            name: name.into(),
            ..policy(vec![every_account_function()])
        };
        assert_eq!(invalid_field(&policy), "display_name", "{name:?}");
    }
    let longest = Policy {
        name: "q".repeat(128),
        ..policy(vec![every_account_function()])
    };
    assert_eq!(longest.validate(), Ok(()));
    let too_long = Policy {
        name: "q".repeat(129),
        ..policy(vec![every_account_function()])
    };
    assert_eq!(invalid_field(&too_long), "display_name");
}

#[test]
fn validate_refuses_chain_zero() {
    let policy = Policy {
        chain_id: 0,
        ..policy(vec![every_account_function()])
    };
    assert_eq!(invalid_field(&policy), "chain_id");
}

#[test]
fn validate_refuses_no_rules_and_more_than_32() {
    assert_eq!(invalid_field(&policy(Vec::new())), "rules");
    let limit = Rule::GasPerOperation { max_gas: 1_000_000 };
    assert_eq!(policy(vec![limit.clone(); MAX_RULES]).validate(), Ok(()));
    assert_eq!(invalid_field(&policy(vec![limit; MAX_RULES + 1])), "rules");
}

#[test]
fn validate_refuses_empty_function_lists_and_too_many_contract_functions() {
    let empty_calls = policy(vec![
        every_account_function(),
        Rule::ContractFunctions(Vec::new()),
    ]);
    assert_eq!(
        invalid_field(&empty_calls),
        "rules[1].contract_functions.functions"
    );
    let too_many = policy(vec![Rule::ContractFunctions(vec![
        any_function_of(GAME);
        MAX_CONTRACT_FUNCTIONS
            + 1
    ])]);
    assert_eq!(
        invalid_field(&too_many),
        "rules[0].contract_functions.functions"
    );
    let most = policy(vec![Rule::ContractFunctions(vec![
        any_function_of(GAME);
        MAX_CONTRACT_FUNCTIONS
    ])]);
    assert_eq!(most.validate(), Ok(()));
    let empty_account = policy(vec![Rule::AccountFunctions(Vec::new())]);
    assert_eq!(invalid_field(&empty_account), "rules[0].account_functions");
}

#[test]
fn validate_refuses_zero_limits_naming_the_rule_and_field() {
    let cases = [
        (
            Rule::OperationsPerInterval {
                max_operations: 0,
                interval_secs: HOUR,
            },
            "rules[1].operations_per_interval.max_operations",
        ),
        (
            Rule::GasPerInterval {
                max_gas: 0,
                interval_secs: HOUR,
            },
            "rules[1].gas_per_interval.max_gas",
        ),
        (
            Rule::GasPerOperation { max_gas: 0 },
            "rules[1].gas_per_operation.max_gas",
        ),
        (
            Rule::SpendPerInterval {
                max_wei: 0,
                interval_secs: HOUR,
            },
            "rules[1].spend_per_interval.max_wei",
        ),
    ];
    for (rule, field) in cases {
        let policy = policy(vec![every_account_function(), rule]);
        let error = policy.validate().unwrap_err();
        assert_eq!(error.field, field);
        assert!(error.to_string().starts_with(field), "{error}");
    }
}

#[test]
fn validate_refuses_an_interval_of_zero_or_over_366_days_for_each_limit_over_time() {
    for interval_secs in [0, MAX_INTERVAL_SECS + 1, u64::MAX] {
        let cases = [
            (
                Rule::OperationsPerInterval {
                    max_operations: 5,
                    interval_secs,
                },
                "rules[2].operations_per_interval.interval_seconds",
            ),
            (
                Rule::GasPerInterval {
                    max_gas: 5,
                    interval_secs,
                },
                "rules[2].gas_per_interval.interval_seconds",
            ),
            (
                Rule::SpendPerInterval {
                    max_wei: 5,
                    interval_secs,
                },
                "rules[2].spend_per_interval.interval_seconds",
            ),
        ];
        for (rule, field) in cases {
            let policy = policy(vec![
                every_account_function(),
                Rule::GasPerOperation { max_gas: 1 },
                rule,
            ]);
            assert_eq!(invalid_field(&policy), field, "interval {interval_secs}");
        }
    }
    let a_year = policy(vec![Rule::OperationsPerInterval {
        max_operations: 1,
        interval_secs: MAX_INTERVAL_SECS,
    }]);
    assert_eq!(a_year.validate(), Ok(()));
}

// --- check --------------------------------------------------------------------------------

#[test]
fn a_disabled_policy_refuses_everything_but_revocations() {
    let policy = Policy {
        enabled: false,
        ..policy(vec![
            Rule::ContractFunctions(vec![ContractFunction {
                contract: None,
                selector: SelectorRule::Any,
                function: "*".into(),
            }]),
            every_account_function(),
        ])
    };
    let disabled = Refusal::Disabled {
        policy: policy.id.clone(),
    };
    for operation in [
        Operation::Calls(&[call(GAME, MINT)]),
        Operation::Registration {
            deploys_account: false,
        },
    ] {
        assert_eq!(policy.check(operation, CHAIN), Err(disabled.clone()));
    }
    // A key must stay revocable whatever happened to the policy that sponsored it.
    assert_eq!(policy.check(Operation::Revocation, CHAIN), Ok(()));
}

#[test]
fn a_revocation_is_admitted_past_every_limit() {
    let policy = policy(vec![Rule::OperationsPerInterval {
        max_operations: 1,
        interval_secs: 60,
    }]);
    let mut charge = charge_of(
        &policy,
        policy.created_at_ms,
        Amount {
            operations: 1,
            gas: 1,
            wei: 1,
        },
    );
    let full = |_| Amount {
        operations: 1,
        gas: 0,
        wei: 0,
    };
    assert!(policy.admit(&charge, full).is_err());
    charge.revocation = true;
    assert_eq!(policy.admit(&charge, full), Ok(()));
}

#[test]
fn a_policy_refuses_operations_on_another_chain() {
    let policy = policy(vec![every_account_function()]);
    assert_eq!(
        policy.check(Operation::Revocation, 1),
        Err(Refusal::WrongChain {
            policy: policy.id.clone(),
            policy_chain: CHAIN,
            chain: 1,
        })
    );
}

#[test]
fn calls_are_covered_by_an_exact_selector_any_function_or_any_contract() {
    let exact_only = policy(vec![Rule::ContractFunctions(vec![exact(GAME, MINT)])]);
    assert_eq!(
        exact_only.check(Operation::Calls(&[call(GAME, MINT)]), CHAIN),
        Ok(())
    );

    let any_function = policy(vec![Rule::ContractFunctions(vec![any_function_of(GAME)])]);
    assert_eq!(
        any_function.check(
            Operation::Calls(&[call(GAME, MINT), call(GAME, BURN), transfer(GAME)]),
            CHAIN
        ),
        Ok(())
    );

    let any_contract = policy(vec![Rule::ContractFunctions(vec![ContractFunction {
        contract: None,
        selector: SelectorRule::Exact(MINT),
        function: "mint(address,uint256,uint256)".into(),
    }])]);
    assert_eq!(
        any_contract.check(
            Operation::Calls(&[call(GAME, MINT), call(SHOP, MINT)]),
            CHAIN
        ),
        Ok(())
    );
    assert!(matches!(
        any_contract.check(Operation::Calls(&[call(SHOP, BURN)]), CHAIN),
        Err(Refusal::CallNotCovered { .. })
    ));

    // Entries of several contract-functions rules cover calls together.
    let split = policy(vec![
        Rule::ContractFunctions(vec![exact(GAME, MINT)]),
        Rule::ContractFunctions(vec![exact(SHOP, BURN)]),
    ]);
    assert_eq!(
        split.check(
            Operation::Calls(&[call(GAME, MINT), call(SHOP, BURN)]),
            CHAIN
        ),
        Ok(())
    );
}

#[test]
fn a_call_not_covered_names_its_interaction_index_target_and_selector() {
    let policy = policy(vec![Rule::ContractFunctions(vec![
        exact(GAME, MINT),
        any_function_of(SHOP),
    ])]);
    let calls = [call(SHOP, BURN), call(GAME, MINT), call(GAME, BURN)];
    let refusal = policy.check(Operation::Calls(&calls), CHAIN).unwrap_err();
    assert_eq!(
        refusal,
        Refusal::CallNotCovered {
            policy: policy.id.clone(),
            index: 2,
            target: GAME,
            selector: BURN,
        }
    );
    let message = refusal.to_string();
    assert!(
        message.starts_with("interactions[2] calls selector 0x42966c68"),
        "{message}"
    );
    assert!(message.contains(&GAME.to_string()), "{message}");
    assert!(message.contains(policy.id.as_str()), "{message}");
}

#[test]
fn a_plain_transfer_is_selector_zero() {
    let refused = policy(vec![Rule::ContractFunctions(vec![exact(GAME, MINT)])]);
    assert_eq!(
        refused.check(Operation::Calls(&[transfer(SHOP)]), CHAIN),
        Err(Refusal::CallNotCovered {
            policy: refused.id.clone(),
            index: 0,
            target: SHOP,
            selector: FixedBytes::ZERO,
        })
    );
    let transfers = policy(vec![Rule::ContractFunctions(vec![exact(
        SHOP,
        FixedBytes::ZERO,
    )])]);
    assert_eq!(
        transfers.check(Operation::Calls(&[transfer(SHOP)]), CHAIN),
        Ok(())
    );
    assert!(
        transfers
            .check(Operation::Calls(&[call(SHOP, MINT)]), CHAIN)
            .is_err()
    );
    // Calldata that starts with four zero bytes calls a function, not a transfer.
    assert!(
        transfers
            .check(Operation::Calls(&[call(SHOP, FixedBytes::ZERO)]), CHAIN)
            .is_err()
    );
}

#[test]
fn without_a_contract_functions_rule_no_call_is_sponsored() {
    let policy = policy(vec![
        every_account_function(),
        Rule::OperationsPerInterval {
            max_operations: 100,
            interval_secs: HOUR,
        },
    ]);
    assert_eq!(
        policy.check(Operation::Calls(&[transfer(GAME)]), CHAIN),
        Err(Refusal::CallNotCovered {
            policy: policy.id.clone(),
            index: 0,
            target: GAME,
            selector: FixedBytes::ZERO,
        })
    );
}

#[test]
fn a_registration_needs_register_session_and_deploy_account_when_it_deploys() {
    let register_only = policy(vec![Rule::AccountFunctions(vec![
        AccountFunction::RegisterSession,
    ])]);
    assert_eq!(
        register_only.check(
            Operation::Registration {
                deploys_account: false
            },
            CHAIN
        ),
        Ok(())
    );
    assert_eq!(
        register_only.check(
            Operation::Registration {
                deploys_account: true
            },
            CHAIN
        ),
        Err(Refusal::AccountFunctionNotCovered {
            policy: register_only.id.clone(),
            function: AccountFunction::DeployAccount,
        })
    );

    let deploy_only = policy(vec![Rule::AccountFunctions(vec![
        AccountFunction::DeployAccount,
    ])]);
    for deploys_account in [false, true] {
        assert_eq!(
            deploy_only.check(Operation::Registration { deploys_account }, CHAIN),
            Err(Refusal::AccountFunctionNotCovered {
                policy: deploy_only.id.clone(),
                function: AccountFunction::RegisterSession,
            })
        );
    }

    // The two functions may come from separate rules.
    let both = policy(vec![
        Rule::AccountFunctions(vec![AccountFunction::DeployAccount]),
        Rule::AccountFunctions(vec![AccountFunction::RegisterSession]),
    ]);
    assert_eq!(
        both.check(
            Operation::Registration {
                deploys_account: true
            },
            CHAIN
        ),
        Ok(())
    );
}

#[test]
fn a_revocation_needs_revoke_session() {
    let register_only = policy(vec![Rule::AccountFunctions(vec![
        AccountFunction::RegisterSession,
        AccountFunction::DeployAccount,
    ])]);
    let refusal = register_only
        .check(Operation::Revocation, CHAIN)
        .unwrap_err();
    assert_eq!(
        refusal,
        Refusal::AccountFunctionNotCovered {
            policy: register_only.id.clone(),
            function: AccountFunction::RevokeSession,
        }
    );
    assert!(
        refusal.to_string().ends_with("covers session revocation"),
        "{refusal}"
    );
    let revoke = policy(vec![Rule::AccountFunctions(vec![
        AccountFunction::RevokeSession,
    ])]);
    assert_eq!(revoke.check(Operation::Revocation, CHAIN), Ok(()));
    // Calls need a contract-functions rule, whatever the account functions allow.
    assert!(
        revoke
            .check(Operation::Calls(&[call(GAME, MINT)]), CHAIN)
            .is_err()
    );
}

#[test]
fn check_gas_passes_at_the_limit_and_refuses_above_it_naming_the_rule() {
    let capped = policy(vec![
        every_account_function(),
        Rule::GasPerOperation { max_gas: 500_000 },
        Rule::GasPerOperation { max_gas: 400_000 },
    ]);
    assert_eq!(capped.check_gas(0), Ok(()));
    assert_eq!(capped.check_gas(400_000), Ok(()));
    assert_eq!(
        capped.check_gas(400_001),
        Err(Refusal::GasPerOperation {
            rule: 2,
            gas: 400_001,
            max_gas: 400_000,
        })
    );
    assert_eq!(
        capped.check_gas(u128::MAX),
        Err(Refusal::GasPerOperation {
            rule: 1,
            gas: u128::MAX,
            max_gas: 500_000,
        })
    );
    // Without a gas-per-operation rule, any gas passes.
    let unlimited = policy(vec![every_account_function()]);
    assert_eq!(unlimited.check_gas(u128::MAX), Ok(()));
}

// --- windows_at ---------------------------------------------------------------------------

#[test]
fn windows_are_whole_intervals_since_creation_one_per_limit_over_time() {
    let policy = policy(vec![
        Rule::ContractFunctions(vec![any_function_of(GAME)]),
        Rule::OperationsPerInterval {
            max_operations: 10,
            interval_secs: HOUR,
        },
        Rule::GasPerOperation { max_gas: 1 },
        Rule::GasPerInterval {
            max_gas: 10,
            interval_secs: 60,
        },
        Rule::SpendPerInterval {
            max_wei: 10,
            interval_secs: 24 * HOUR,
        },
    ]);
    let windows = |elapsed_ms: u64| policy.windows_at(CREATED + elapsed_ms);
    let at = |hours: u64, minutes: u64, days: u64| {
        vec![
            WindowKey {
                rule: 1,
                index: hours,
            },
            WindowKey {
                rule: 3,
                index: minutes,
            },
            WindowKey {
                rule: 4,
                index: days,
            },
        ]
    };
    assert_eq!(windows(0), at(0, 0, 0));
    assert_eq!(windows(59_999), at(0, 0, 0));
    assert_eq!(windows(60_000), at(0, 1, 0));
    assert_eq!(windows(3_600_000), at(1, 60, 0));
    let two_days_and_a_bit = 2 * 86_400_000 + 3_600_000 + 61_000;
    assert_eq!(windows(two_days_and_a_bit), at(49, 2941, 2));
}

#[test]
fn rules_without_an_interval_have_no_window() {
    let policy = policy(vec![
        Rule::ContractFunctions(vec![any_function_of(GAME)]),
        every_account_function(),
        Rule::GasPerOperation { max_gas: 1 },
    ]);
    assert_eq!(policy.windows_at(CREATED + 10 * 3_600_000), Vec::new());
}

#[test]
fn before_creation_is_the_first_interval() {
    let policy = policy(vec![Rule::OperationsPerInterval {
        max_operations: 1,
        interval_secs: 1,
    }]);
    let first = vec![WindowKey { rule: 0, index: 0 }];
    assert_eq!(policy.windows_at(CREATED - 5_000), first);
    assert_eq!(policy.windows_at(0), first);
}

// --- admit --------------------------------------------------------------------------------

/// Admits `reserved` at `now_ms` into a policy whose every window has used `used`.
fn admit_with(policy: &Policy, now_ms: u64, used: Amount, reserved: Amount) -> Result<(), Refusal> {
    policy.admit(&charge_of(policy, now_ms, reserved), |_| used)
}

#[test]
fn admit_counts_operations_per_interval_up_to_the_limit() {
    let policy = policy(vec![
        Rule::ContractFunctions(vec![any_function_of(GAME)]),
        Rule::OperationsPerInterval {
            max_operations: 3,
            interval_secs: HOUR,
        },
    ]);
    let one = Amount {
        operations: 1,
        gas: 1_000_000,
        wei: 1_000_000,
    };
    let now = CREATED + 5 * 3_600_000 + 1;
    let used = |operations| Amount {
        operations,
        ..Amount::default()
    };
    assert_eq!(admit_with(&policy, now, used(2), one), Ok(()));
    assert_eq!(
        admit_with(&policy, now, used(3), one),
        Err(Refusal::LimitReached {
            rule: 1,
            kind: "operations_per_interval",
            used: 3,
            requested: 1,
            limit: 3,
            window_end_ms: CREATED + 6 * 3_600_000,
        })
    );
}

#[test]
fn admit_counts_gas_per_interval_up_to_the_limit() {
    let policy = policy(vec![
        Rule::GasPerOperation { max_gas: 1 },
        Rule::GasPerInterval {
            max_gas: 1_000_000,
            interval_secs: 60,
        },
    ]);
    let request = Amount {
        operations: 1,
        gas: 300_000,
        wei: 0,
    };
    let now = CREATED + 90_000;
    let used = |gas| Amount {
        gas,
        ..Amount::default()
    };
    assert_eq!(admit_with(&policy, now, used(700_000), request), Ok(()));
    assert_eq!(
        admit_with(&policy, now, used(700_001), request),
        Err(Refusal::LimitReached {
            rule: 1,
            kind: "gas_per_interval",
            used: 700_001,
            requested: 300_000,
            limit: 1_000_000,
            window_end_ms: CREATED + 120_000,
        })
    );
}

#[test]
fn admit_counts_spend_per_interval_up_to_the_limit() {
    let max_wei = 5 * 10_u128.pow(18);
    let policy = policy(vec![Rule::SpendPerInterval {
        max_wei,
        interval_secs: 24 * HOUR,
    }]);
    let request = Amount {
        operations: 1,
        gas: 0,
        wei: 10_u128.pow(18),
    };
    let now = CREATED + 3 * 86_400_000 + 12 * 3_600_000;
    let used = |wei| Amount {
        wei,
        ..Amount::default()
    };
    assert_eq!(
        admit_with(&policy, now, used(max_wei - request.wei), request),
        Ok(())
    );
    assert_eq!(
        admit_with(&policy, now, used(max_wei - request.wei + 1), request),
        Err(Refusal::LimitReached {
            rule: 0,
            kind: "spend_per_interval",
            used: max_wei - request.wei + 1,
            requested: request.wei,
            limit: max_wei,
            window_end_ms: CREATED + 4 * 86_400_000,
        })
    );
    // A counter saturated at its maximum refuses rather than wrapping.
    assert!(admit_with(&policy, now, used(u128::MAX), request).is_err());
}

#[test]
fn admit_looks_up_each_window_on_its_own() {
    let policy = policy(vec![
        Rule::OperationsPerInterval {
            max_operations: 10,
            interval_secs: HOUR,
        },
        Rule::GasPerInterval {
            max_gas: 1_000,
            interval_secs: HOUR,
        },
    ]);
    let charge = charge_of(
        &policy,
        CREATED,
        Amount {
            operations: 1,
            gas: 600,
            wei: 0,
        },
    );
    let used = |window: WindowKey| match window.rule {
        0 => Amount {
            operations: 9,
            gas: 900,
            ..Amount::default()
        },
        _ => Amount {
            operations: 0,
            gas: 400,
            ..Amount::default()
        },
    };
    assert_eq!(policy.admit(&charge, used), Ok(()));
    let over = |window: WindowKey| Amount {
        gas: 401,
        ..used(window)
    };
    assert!(matches!(
        policy.admit(&charge, over),
        Err(Refusal::LimitReached { rule: 1, .. })
    ));
}

#[test]
fn refusals_name_their_rule() {
    let id = PolicyId::generate();
    let cases = [
        (Refusal::Disabled { policy: id.clone() }, "policy_disabled"),
        (
            Refusal::WrongChain {
                policy: id.clone(),
                policy_chain: 1,
                chain: 2,
            },
            "policy_chain",
        ),
        (
            Refusal::CallNotCovered {
                policy: id.clone(),
                index: 0,
                target: GAME,
                selector: MINT,
            },
            "contract_functions",
        ),
        (
            Refusal::AccountFunctionNotCovered {
                policy: id,
                function: AccountFunction::DeployAccount,
            },
            "account_functions",
        ),
        (
            Refusal::GasPerOperation {
                rule: 0,
                gas: 2,
                max_gas: 1,
            },
            "gas_per_operation",
        ),
    ];
    for (refusal, name) in cases {
        assert_eq!(refusal.rule(), name, "{refusal}");
    }
    for kind in [
        "operations_per_interval",
        "gas_per_interval",
        "spend_per_interval",
    ] {
        let refusal = Refusal::LimitReached {
            rule: 3,
            kind,
            used: 1,
            requested: 1,
            limit: 1,
            window_end_ms: 0,
        };
        assert_eq!(refusal.rule(), kind);
        assert!(
            refusal
                .to_string()
                .starts_with(&format!("rules[3] {kind}:"))
        );
    }
}

// --- Charge::usage ------------------------------------------------------------------------

fn a_charge() -> Charge {
    Charge {
        policy: PolicyId::generate(),
        windows: vec![WindowKey { rule: 1, index: 4 }],
        reserved: Amount {
            operations: 1,
            gas: 250_000,
            wei: 250_000 * 2_000_000_000,
        },
        revocation: false,
    }
}

#[test]
fn an_operation_on_its_way_counts_its_worst_case_as_pending() {
    let charge = a_charge();
    let pending = PolicyUsage {
        pending: charge.reserved,
        settled: Amount::default(),
    };
    for status in [
        IntentStatus::PendingSignature,
        IntentStatus::Queued,
        IntentStatus::Submitted,
        IntentStatus::Included,
    ] {
        assert_eq!(charge.usage(status, None), pending, "{status:?}");
    }
    // An included operation's receipt is not final yet: a reorg may undo it.
    assert_eq!(
        charge.usage(IntentStatus::Included, Some(&result(1, 1))),
        pending
    );
}

#[test]
fn an_executed_operation_counts_its_receipt_as_settled_whether_or_not_it_reverted() {
    let charge = a_charge();
    let receipt = result(181_234, 181_234 * 1_500_000_000);
    let settled = PolicyUsage {
        pending: Amount::default(),
        settled: Amount {
            operations: 1,
            gas: 181_234,
            wei: 181_234 * 1_500_000_000,
        },
    };
    assert_eq!(
        charge.usage(IntentStatus::Confirmed, Some(&receipt)),
        settled
    );
    assert_eq!(
        charge.usage(IntentStatus::Reverted, Some(&receipt)),
        settled
    );
}

#[test]
fn a_receipt_beyond_u128_saturates() {
    let charge = a_charge();
    let receipt = IntentResult {
        gas_used: U256::MAX,
        actual_cost: U256::MAX,
        ..result(0, 0)
    };
    let usage = charge.usage(IntentStatus::Confirmed, Some(&receipt));
    assert_eq!(
        (usage.settled.gas, usage.settled.wei),
        (u128::MAX, u128::MAX)
    );
}

#[test]
fn an_operation_that_never_executed_counts_nothing() {
    let charge = a_charge();
    for status in [IntentStatus::Dropped, IntentStatus::Expired] {
        assert_eq!(
            charge.usage(status, None),
            PolicyUsage::default(),
            "{status:?}"
        );
    }
}

// --- Amount and PolicyUsage ---------------------------------------------------------------

#[test]
fn amounts_add_and_subtract_saturating() {
    let small = Amount {
        operations: 2,
        gas: 100,
        wei: 1_000,
    };
    let big = Amount {
        operations: u64::MAX - 1,
        gas: u128::MAX - 50,
        wei: u128::MAX,
    };
    assert_eq!(
        small.saturating_add(small),
        Amount {
            operations: 4,
            gas: 200,
            wei: 2_000,
        }
    );
    assert_eq!(
        big.saturating_add(small),
        Amount {
            operations: u64::MAX,
            gas: u128::MAX,
            wei: u128::MAX,
        }
    );
    assert_eq!(small.saturating_sub(big), Amount::default());
    assert_eq!(
        big.saturating_sub(small),
        Amount {
            operations: u64::MAX - 3,
            gas: u128::MAX - 150,
            wei: u128::MAX - 1_000,
        }
    );
}

#[test]
fn policy_usage_totals_and_moves_pending_and_settled_apart() {
    let reserved = Amount {
        operations: 1,
        gas: 300,
        wei: 3_000,
    };
    let spent = Amount {
        operations: 1,
        gas: 120,
        wei: 1_200,
    };
    let pending = PolicyUsage {
        pending: reserved,
        settled: Amount::default(),
    };
    let settled = PolicyUsage {
        pending: Amount::default(),
        settled: spent,
    };
    let both = pending.saturating_add(settled);
    assert_eq!(
        both.total(),
        Amount {
            operations: 2,
            gas: 420,
            wei: 4_200,
        }
    );
    // Moving one operation from pending to settled, as the store does on confirmation.
    let moved = pending
        .saturating_add(pending)
        .saturating_sub(pending)
        .saturating_add(settled);
    assert_eq!(moved, both);
    assert_eq!(both.saturating_sub(pending), settled);
    assert_eq!(settled.saturating_sub(both), PolicyUsage::default());
    let full = PolicyUsage {
        pending: Amount {
            operations: u64::MAX,
            gas: u128::MAX,
            wei: u128::MAX,
        },
        settled: spent,
    };
    assert_eq!(
        full.total(),
        Amount {
            operations: u64::MAX,
            gas: u128::MAX,
            wei: u128::MAX,
        }
    );
    assert_eq!(full.saturating_add(full).pending, full.pending);
}
