//! Policies, their rules and sponsorships, between proto and domain.

use super::{address, function_text, selector_rule, timestamp, uint128};
use crate::{
    api::proto::{self, policy_rule::Rule as ProtoRule},
    app::{AppError, NewPolicy, PaymasterView, PolicyView},
    auth::TenantId,
    chain::sponsor::parse_approval,
    intent::Intent,
    policy::{
        AccountFunction, Amount, ContractFunction, PolicyId, PolicyUsage, Rule, SponsorStrategy,
    },
};

/// `policies/{id}`.
pub fn policy_name(field: &str, name: &str) -> Result<PolicyId, AppError> {
    name.strip_prefix("policies/")
        .and_then(PolicyId::parse)
        .ok_or_else(|| AppError::invalid(field, "expected a policy name `policies/pol_...`"))
}

/// An optional `policies/{id}`: empty means none.
pub fn optional_policy_name(field: &str, name: &str) -> Result<Option<PolicyId>, AppError> {
    match name {
        "" => Ok(None),
        name => policy_name(field, name).map(Some),
    }
}

/// A CreatePolicy request, every field checked for form; [`crate::policy::Policy::validate`]
/// checks the rest.
/// A policy request as the domain's, for `tenant`.
pub fn new_policy(
    request: proto::CreatePolicyRequest,
    tenant: TenantId,
) -> Result<NewPolicy, AppError> {
    let strategy = match proto::SponsorStrategy::try_from(request.strategy) {
        Ok(proto::SponsorStrategy::Unspecified | proto::SponsorStrategy::PayForUser) => {
            SponsorStrategy::PayForUser
        }
        Err(_) => {
            return Err(AppError::invalid(
                "strategy",
                "expected SPONSOR_STRATEGY_PAY_FOR_USER",
            ));
        }
    };
    let rules = request
        .rules
        .iter()
        .enumerate()
        .map(|(index, rule)| self::rule(index, rule))
        .collect::<Result<_, _>>()?;
    Ok(NewPolicy {
        tenant,
        name: request.display_name,
        chain_id: (request.chain_id != 0).then_some(request.chain_id),
        strategy,
        rules,
    })
}

fn rule(index: usize, value: &proto::PolicyRule) -> Result<Rule, AppError> {
    let field = |kind: &str, name: &str| format!("rules[{index}].{kind}.{name}");
    let rule = value
        .rule
        .as_ref()
        .ok_or_else(|| AppError::invalid(format!("rules[{index}]"), "no rule is set"))?;
    Ok(match rule {
        ProtoRule::ContractFunctions(rule) => Rule::ContractFunctions(
            rule.functions
                .iter()
                .enumerate()
                .map(|(entry, function)| {
                    let entry_field = |name: &str| {
                        format!("rules[{index}].contract_functions.functions[{entry}].{name}")
                    };
                    Ok(ContractFunction {
                        contract: match function.contract.as_str() {
                            "*" => None,
                            text => Some(address(&entry_field("contract"), text)?),
                        },
                        selector: selector_rule(&entry_field("function"), &function.function)?,
                        function: function.function.clone(),
                    })
                })
                .collect::<Result<_, AppError>>()?,
        ),
        ProtoRule::AccountFunctions(rule) => Rule::AccountFunctions(
            [
                (rule.register_session, AccountFunction::RegisterSession),
                (rule.revoke_session, AccountFunction::RevokeSession),
                (rule.deploy_account, AccountFunction::DeployAccount),
            ]
            .into_iter()
            .filter_map(|(on, function)| on.then_some(function))
            .collect(),
        ),
        ProtoRule::OperationsPerInterval(rule) => Rule::OperationsPerInterval {
            max_operations: rule.max_operations,
            interval_secs: rule.interval_seconds,
        },
        ProtoRule::GasPerInterval(rule) => Rule::GasPerInterval {
            max_gas: rule.max_gas,
            interval_secs: rule.interval_seconds,
        },
        ProtoRule::GasPerOperation(rule) => Rule::GasPerOperation {
            max_gas: rule.max_gas,
        },
        ProtoRule::SpendPerInterval(rule) => Rule::SpendPerInterval {
            max_wei: uint128(&field("spend_per_interval", "max_wei"), &rule.max_wei)?,
            interval_secs: rule.interval_seconds,
        },
    })
}

fn rule_message(rule: &Rule) -> proto::PolicyRule {
    let rule = match rule {
        Rule::ContractFunctions(entries) => {
            ProtoRule::ContractFunctions(proto::ContractFunctionsRule {
                functions: entries
                    .iter()
                    .map(|entry| proto::ContractFunction {
                        contract: entry
                            .contract
                            .map_or_else(|| "*".to_owned(), |contract| contract.to_string()),
                        function: if entry.function.is_empty() {
                            function_text(entry.selector)
                        } else {
                            entry.function.clone()
                        },
                    })
                    .collect(),
            })
        }
        Rule::AccountFunctions(functions) => {
            ProtoRule::AccountFunctions(proto::AccountFunctionsRule {
                register_session: functions.contains(&AccountFunction::RegisterSession),
                revoke_session: functions.contains(&AccountFunction::RevokeSession),
                deploy_account: functions.contains(&AccountFunction::DeployAccount),
            })
        }
        Rule::OperationsPerInterval {
            max_operations,
            interval_secs,
        } => ProtoRule::OperationsPerInterval(proto::OperationsPerIntervalRule {
            max_operations: *max_operations,
            interval_seconds: *interval_secs,
        }),
        Rule::GasPerInterval {
            max_gas,
            interval_secs,
        } => ProtoRule::GasPerInterval(proto::GasPerIntervalRule {
            max_gas: *max_gas,
            interval_seconds: *interval_secs,
        }),
        Rule::GasPerOperation { max_gas } => {
            ProtoRule::GasPerOperation(proto::GasPerOperationRule { max_gas: *max_gas })
        }
        Rule::SpendPerInterval {
            max_wei,
            interval_secs,
        } => ProtoRule::SpendPerInterval(proto::SpendPerIntervalRule {
            max_wei: max_wei.to_string(),
            interval_seconds: *interval_secs,
        }),
    };
    proto::PolicyRule { rule: Some(rule) }
}

fn amount_message(amount: Amount) -> proto::PolicyAmount {
    proto::PolicyAmount {
        operations: amount.operations,
        gas: amount.gas.to_string(),
        wei: amount.wei.to_string(),
    }
}

fn usage_message(usage: PolicyUsage) -> proto::PolicyUsage {
    proto::PolicyUsage {
        settled: Some(amount_message(usage.settled)),
        pending: Some(amount_message(usage.pending)),
    }
}

/// The policy message.
pub fn policy_message(view: &PolicyView) -> proto::Policy {
    let policy = &view.policy;
    proto::Policy {
        name: format!("policies/{}", policy.id),
        id: policy.id.to_string(),
        tenant: policy.tenant.to_string(),
        display_name: policy.name.clone(),
        chain_id: policy.chain_id,
        strategy: match policy.strategy {
            SponsorStrategy::PayForUser => proto::SponsorStrategy::PayForUser,
        }
        .into(),
        enabled: policy.enabled,
        rules: policy.rules.iter().map(rule_message).collect(),
        usage: Some(usage_message(view.usage)),
        windows: view
            .windows
            .iter()
            .map(|window| proto::PolicyWindow {
                rule_index: u32::from(window.key.rule),
                start_time: timestamp(window.start_ms),
                end_time: timestamp(window.end_ms),
                usage: Some(usage_message(window.usage)),
            })
            .collect(),
        create_time: timestamp(policy.created_at_ms),
        update_time: timestamp(policy.updated_at_ms),
    }
}

/// How an intent is sponsored, read from its charge and its operation's approval.
pub(super) fn sponsorship_message(intent: &Intent) -> Option<proto::Sponsorship> {
    let charge = intent.charge.as_ref()?;
    let (approval, _) = parse_approval(&intent.user_op.paymaster_and_data())?;
    Some(proto::Sponsorship {
        policy: format!("policies/{}", charge.policy),
        paymaster: approval.paymaster.to_string(),
        valid_until: timestamp(approval.valid_until.saturating_mul(1000)),
    })
}

/// The paymaster message.
pub fn paymaster_message(view: &PaymasterView) -> proto::Paymaster {
    proto::Paymaster {
        address: view.address.to_string(),
        entry_point: view.entry_point.to_string(),
        chain_id: view.chain_id,
        signer: view.signer.to_string(),
        deposit_wei: view.funds.deposit.to_string(),
        stake_wei: view.funds.stake.to_string(),
        staked: view.funds.staked,
    }
}
