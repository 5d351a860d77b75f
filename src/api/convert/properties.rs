//! Property tests of the gRPC edge: whatever a client sends (huge, empty, unicode or
//! control-character text, any integer), conversion never panics, a refusal names the field
//! it refuses, and a valid value comes back out as it went in.

use alloy::primitives::{Address, Bytes, U256};
use proptest::{prelude::*, test_runner::Config};

use super::*;
use crate::{
    app::PolicyView,
    auth::TenantId,
    policy::{Policy, PolicyId, PolicyUsage, SponsorStrategy},
};

/// Cases per property: the edge is cheap to call, and 1024 keep the module under a few seconds
/// or two at opt-level 1.
const CASES: u32 = 1024;

fn config() -> Config {
    Config {
        cases: CASES,
        // Failures are reported in the test output; nothing is written next to the sources.
        failure_persistence: None,
        ..Config::default()
    }
}

/// Text a hostile client might send: anything, unicode, control characters, near-misses of
/// hex and decimal, and very long runs of one character.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,12}",
        "[\\x00-\\x1f\\x7f\u{200b}\u{feff}]{0,12}",
        "(0x|0X)?[0-9a-fA-FxX \t]{0,70}",
        "[-+]?[0-9]{0,100}",
        "(sessions|transactionIntents|accounts|policies)/[a-z_0-9A-Z./\\x00]{0,40}",
        (any::<char>(), 0usize..20_000).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

/// The field an error names, or a failure when the error is not an InvalidArgument.
fn field_of(error: AppError) -> String {
    match error {
        AppError::InvalidArgument { field, .. } => field,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

/// Asserts that a refusal (if any) names exactly `field`.
fn names<T>(field: &str, result: Result<T, AppError>) -> Result<(), TestCaseError> {
    if let Err(error) = result {
        prop_assert_eq!(field_of(error), field);
    }
    Ok(())
}

/// Asserts that a refusal (if any) names a field under `prefix`.
fn names_under<T>(prefix: &str, result: Result<T, AppError>) -> Result<(), TestCaseError> {
    if let Err(error) = result {
        let field = field_of(error);
        prop_assert!(
            field.starts_with(prefix),
            "{field:?} is not under {prefix:?}"
        );
    }
    Ok(())
}

fn call_permission() -> impl Strategy<Value = proto::CallPermission> {
    let target = prop_oneof![
        hostile(),
        any::<[u8; 20]>().prop_map(|b| Address::from(b).to_string()),
    ];
    let function = prop_oneof![
        hostile(),
        Just("*".to_owned()),
        Just("mint(address,uint256)".to_owned()),
        "0x[0-9a-f]{0,10}",
    ];
    let function = prop_oneof![
        function,
        Just("transfer(address,uint256)".to_owned()),
        Just("setName(string,bool)".to_owned()),
    ];
    let rules = proptest::collection::vec(argument_rule(), 0..10);
    (target, function, rules).prop_map(|(target, function, rules)| proto::CallPermission {
        target,
        function,
        rules,
        ..Default::default()
    })
}

fn argument_rule() -> impl Strategy<Value = proto::ArgumentRule> {
    let value = prop_oneof![
        hostile(),
        any::<u128>().prop_map(|v| v.to_string()),
        any::<[u8; 20]>().prop_map(|b| Address::from(b).to_string()),
        Just("true".to_owned()),
    ];
    (0u32..4, -1i32..8, proptest::collection::vec(value, 0..18)).prop_map(
        |(param, condition, values)| proto::ArgumentRule {
            param,
            condition,
            values,
            ..Default::default()
        },
    )
}

fn spend_limit() -> impl Strategy<Value = proto::SpendLimit> {
    let token = prop_oneof![
        hostile(),
        Just(String::new()),
        Just(Address::repeat_byte(7).to_string()),
    ];
    let amount = prop_oneof![hostile(), any::<u128>().prop_map(|v| v.to_string())];
    (
        -1i32..6,
        token,
        hostile(),
        amount.clone(),
        amount,
        any::<u32>(),
    )
        .prop_map(
            |(asset, token, id, total, per_period, period_seconds)| proto::SpendLimit {
                asset,
                token,
                id,
                total,
                per_period,
                period_seconds,
            },
        )
}

fn interaction() -> impl Strategy<Value = proto::Interaction> {
    let to = prop_oneof![
        hostile(),
        any::<[u8; 20]>().prop_map(|b| Address::from(b).to_string()),
    ];
    let value = prop_oneof![hostile(), any::<u128>().prop_map(|v| v.to_string())];
    let call =
        prop_oneof![
            Just(None),
            (
                prop_oneof![hostile(), Just("mint(address,uint256,uint256)".to_owned())],
                proptest::collection::vec(hostile(), 0..4),
            )
                .prop_map(|(signature, args)| Some(
                    proto::interaction::Call::FunctionCall(proto::FunctionCall { signature, args })
                )),
            hostile().prop_map(|hex| Some(proto::interaction::Call::Calldata(hex))),
        ];
    (to, value, call).prop_map(|(to, value, call)| proto::Interaction { to, value, call })
}

fn policy_rule() -> impl Strategy<Value = proto::PolicyRule> {
    use proto::policy_rule::Rule as R;
    let function = (
        prop_oneof![
            hostile(),
            Just("*".to_owned()),
            any::<[u8; 20]>().prop_map(|b| Address::from(b).to_string()),
        ],
        prop_oneof![
            hostile(),
            Just("*".to_owned()),
            Just("transfer(address,uint256)".to_owned()),
            "0x[0-9a-f]{8}",
        ],
    )
        .prop_map(|(contract, function)| proto::ContractFunction { contract, function });
    let rule = prop_oneof![
        proptest::collection::vec(function, 0..4)
            .prop_map(|functions| R::ContractFunctions(proto::ContractFunctionsRule { functions })),
        any::<(bool, bool, bool)>().prop_map(
            |(register_session, revoke_session, deploy_account)| {
                R::AccountFunctions(proto::AccountFunctionsRule {
                    register_session,
                    revoke_session,
                    deploy_account,
                })
            }
        ),
        any::<(u64, u64)>().prop_map(|(max_operations, interval_seconds)| {
            R::OperationsPerInterval(proto::OperationsPerIntervalRule {
                max_operations,
                interval_seconds,
            })
        }),
        any::<(u64, u64)>().prop_map(|(max_gas, interval_seconds)| {
            R::GasPerInterval(proto::GasPerIntervalRule {
                max_gas,
                interval_seconds,
            })
        }),
        any::<u64>().prop_map(|max_gas| R::GasPerOperation(proto::GasPerOperationRule { max_gas })),
        (
            prop_oneof![hostile(), any::<u128>().prop_map(|v| v.to_string())],
            any::<u64>()
        )
            .prop_map(|(max_wei, interval_seconds)| {
                R::SpendPerInterval(proto::SpendPerIntervalRule {
                    max_wei,
                    interval_seconds,
                })
            }),
    ];
    proptest::option::weighted(0.95, rule).prop_map(|rule| proto::PolicyRule { rule })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn addresses_never_panic_and_refusals_name_the_field(text in hostile()) {
        names("owner", address("owner", &text))?;
        names("name", account_name("name", &text))?;
        names("name", account_name("name", &format!("accounts/{text}")))?;
    }

    #[test]
    fn every_spelling_of_an_address_round_trips(bytes in any::<[u8; 20]>()) {
        let expected = Address::from(bytes);
        for text in [
            expected.to_string(),
            format!("0x{}", alloy::hex::encode(bytes)),
            format!("0x{}", alloy::hex::encode_upper(bytes)),
        ] {
            prop_assert_eq!(address("a", &text).unwrap(), expected);
            prop_assert_eq!(account_name("a", &format!("accounts/{text}")).unwrap(), expected);
        }
    }

    #[test]
    fn numbers_never_panic_and_refusals_name_the_field(text in hostile()) {
        names("salt", uint256("salt", &text))?;
        names("value_budget", uint128("value_budget", &text))?;
    }

    #[test]
    fn numbers_round_trip(raw in any::<[u8; 32]>(), small in any::<u128>()) {
        let value = U256::from_be_bytes(raw);
        prop_assert_eq!(uint256("v", &value.to_string()).unwrap(), value);
        prop_assert_eq!(uint128("v", &small.to_string()).unwrap(), small);
        let wide = U256::from(small) + U256::from(u128::MAX) + U256::from(1u8);
        prop_assert_eq!(field_of(uint128("v", &wide.to_string()).unwrap_err()), "v");
    }

    #[test]
    fn signatures_never_panic_and_refusals_name_the_field(text in hostile()) {
        names("signature", submitted_signature(&text, None))?;
    }

    #[test]
    fn signatures_round_trip_and_only_64_to_72_bytes_pass(
        bytes in proptest::collection::vec(any::<u8>(), 0..140),
        upper in any::<bool>(),
    ) {
        let digits = if upper {
            alloy::hex::encode_upper(&bytes)
        } else {
            alloy::hex::encode(&bytes)
        };
        let result = submitted_signature(&format!("0x{digits}"), None);
        if (64..=72).contains(&bytes.len()) {
            prop_assert_eq!(result.unwrap(), SubmittedSignature::Bytes(Bytes::from(bytes)));
        } else {
            prop_assert_eq!(field_of(result.unwrap_err()), "signature");
        }
    }

    #[test]
    fn names_never_panic_and_refusals_name_the_field(text in hostile()) {
        names("name", session_name("name", &text))?;
        names("name", intent_name("name", &text))?;
        names("name", policy_name("name", &text))?;
        names("policy", optional_policy_name("policy", &text))?;
    }

    #[test]
    fn names_round_trip_and_kinds_do_not_mix(_seed in any::<u8>()) {
        let session = SessionId::generate();
        let intent = IntentId::generate();
        let policy = PolicyId::generate();
        prop_assert_eq!(session_name("s", &format!("sessions/{session}")).unwrap(), session.clone());
        prop_assert_eq!(intent_name("i", &format!("transactionIntents/{intent}")).unwrap(), intent.clone());
        prop_assert_eq!(policy_name("p", &format!("policies/{policy}")).unwrap(), policy.clone());
        // An id of one kind under the prefix of another, or a name of another kind.
        let refused = [
            session_name("s", &format!("sessions/{intent}")).is_err(),
            intent_name("i", &format!("transactionIntents/{session}")).is_err(),
            intent_name("i", &format!("sessions/{session}")).is_err(),
            policy_name("p", &format!("policies/{session}")).is_err(),
            session_name("s", &format!("sessions/{session}/")).is_err(),
            session_name("s", &format!("sessions/{session}\0")).is_err(),
        ];
        prop_assert_eq!(refused, [true; 6]);
    }

    #[test]
    fn integers_are_checked_by_range(value in any::<i64>(), size in any::<i32>(), enumeration in any::<i32>()) {
        let seconds = unix_seconds("valid_until", value);
        prop_assert_eq!(seconds.is_ok(), (0..=MAX_UINT48 as i64).contains(&value));
        names("valid_until", seconds)?;
        let page = page_size("page_size", size);
        prop_assert_eq!(page.is_ok(), (0..=MAX_PAGE_SIZE as i32).contains(&size));
        if let Ok(page) = page {
            prop_assert!((1..=MAX_PAGE_SIZE).contains(&page));
        }
        names("page_size", page)?;
        names("custody", custody("custody", enumeration))?;
        names("status", session_status_filter("status", enumeration))?;
        names("status", intent_status_filter("status", enumeration))?;
    }

    #[test]
    fn page_tokens_and_idempotency_keys_never_panic(text in hostile()) {
        prop_assert_eq!(page_token(&text), (!text.is_empty()).then(|| text.clone()));
        let key = idempotency_key(&text);
        let valid = text.len() <= MAX_IDEMPOTENCY_KEY_LEN
            && text.bytes().all(|byte| byte.is_ascii_graphic());
        match key {
            Ok(key) => {
                prop_assert!(valid);
                prop_assert_eq!(key, (!text.is_empty()).then(|| text.clone()));
            }
            Err(error) => {
                prop_assert!(!valid);
                prop_assert_eq!(field_of(error), "idempotency_key");
            }
        }
    }

    #[test]
    fn permissions_never_panic_and_refusals_name_the_field(
        call_limit in any::<u32>(),
        value_per_call_limit in hostile(),
        value_budget in hostile(),
        gas_budget in prop_oneof![hostile(), any::<u128>().prop_map(|v| v.to_string())],
        calls in proptest::collection::vec(call_permission(), 0..70),
        limits in proptest::collection::vec(spend_limit(), 0..18),
        present in proptest::bool::weighted(0.95),
    ) {
        let value = present.then_some(proto::SessionPermissions {
            call_limit,
            value_per_call_limit,
            value_budget,
            gas_budget,
            calls,
            limits,
        });
        names_under("permissions", permissions(value))?;
    }

    #[test]
    fn selector_rules_round_trip(text in hostile(), selector in any::<[u8; 4]>()) {
        names("function", selector_rule("function", &text))?;
        let rule = SelectorRule::Exact(selector.into());
        prop_assert_eq!(selector_rule("f", &function_text(rule)).unwrap(), rule);
        prop_assert_eq!(selector_rule("f", &function_text(SelectorRule::Any)).unwrap(), SelectorRule::Any);
    }

    #[test]
    fn interactions_never_panic_and_refusals_name_the_field(
        values in proptest::collection::vec(interaction(), 0..20),
    ) {
        names_under("interactions", interactions(&values))?;
    }

    #[test]
    fn policies_never_panic_and_refusals_name_the_field(
        strategy in any::<i32>(),
        rules in proptest::collection::vec(policy_rule(), 0..6),
    ) {
        let request = proto::CreatePolicyRequest {
            display_name: "p".into(),
            chain_id: 1,
            strategy,
            rules,
        };
        if let Err(error) = new_policy(request, TenantId::default_tenant()) {
            let field = field_of(error);
            prop_assert!(field == "strategy" || field.starts_with("rules["), "{field:?}");
        }
    }

    #[test]
    fn policy_rules_round_trip(rules in proptest::collection::vec(policy_rule(), 1..6)) {
        let request = proto::CreatePolicyRequest {
            display_name: "p".into(),
            chain_id: 1,
            strategy: 0,
            rules,
        };
        if let Ok(parsed) = new_policy(request, TenantId::default_tenant()) {
            let view = PolicyView {
                policy: Policy {
                    tenant: Default::default(),
                    id: PolicyId::generate(),
                    name: parsed.name.clone(),
                    chain_id: 1,
                    strategy: SponsorStrategy::PayForUser,
                    enabled: true,
                    rules: parsed.rules.clone(),
                    revision: 0,
                    created_at_ms: 0,
                    updated_at_ms: 0,
                },
                usage: PolicyUsage::default(),
                windows: Vec::new(),
            };
            let message = policy_message(&view);
            let again = new_policy(proto::CreatePolicyRequest {
                display_name: message.display_name,
                chain_id: message.chain_id,
                strategy: message.strategy,
                rules: message.rules,
            }, TenantId::default_tenant())
            .unwrap();
            prop_assert_eq!(again.rules, parsed.rules);
        }
    }
}
