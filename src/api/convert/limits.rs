//! Argument rules and spend limits: parsed from a session's permissions with an error naming
//! each field, and rendered back with what the session has used of each limit.

use alloy::{
    dyn_abi::DynSolType,
    primitives::{Address, U256},
};

use super::{address, uint128, uint256};
use crate::{
    api::proto,
    app::AppError,
    intent::calldata::FunctionSignature,
    session::{ArgumentRule, Asset, Condition, Permissions, SpendLimit, Usage},
};

/// Most argument rules one allowlist entry may have.
pub(super) const MAX_RULES_PER_ENTRY: usize = 8;
/// Most values of one ONE_OF rule, as the account allows.
pub(super) const MAX_ONE_OF_VALUES: usize = 16;
/// Most spend limits one session may have.
pub(super) const MAX_SPEND_LIMITS: usize = 16;

/// The argument rules of allowlist entry `field` (`permissions.calls[i]`), whose function is
/// given as `function`: a signature, since each rule needs its parameter's type.
pub(super) fn argument_rules(
    field: &str,
    function: &str,
    rules: &[proto::ArgumentRule],
) -> Result<Vec<ArgumentRule>, AppError> {
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    let rules_field = format!("{field}.rules");
    if rules.len() > MAX_RULES_PER_ENTRY {
        return Err(AppError::invalid(
            rules_field,
            format!("expected at most {MAX_RULES_PER_ENTRY} rules per entry"),
        ));
    }
    if function == "*" || function.starts_with("0x") {
        return Err(AppError::invalid(
            rules_field,
            "argument rules need `function` as a signature such as transfer(address,uint256), \
             so each parameter's type is known",
        ));
    }
    let signature = FunctionSignature::parse(function)
        .map_err(|error| AppError::invalid(format!("{field}.function"), error.to_string()))?;
    rules
        .iter()
        .enumerate()
        .map(|(index, rule)| argument_rule(&format!("{rules_field}[{index}]"), &signature, rule))
        .collect()
}

fn argument_rule(
    field: &str,
    signature: &FunctionSignature,
    rule: &proto::ArgumentRule,
) -> Result<ArgumentRule, AppError> {
    let params = signature.params();
    let index = usize::try_from(rule.param)
        .ok()
        .filter(|index| *index < params.len())
        .ok_or_else(|| {
            AppError::invalid(
                format!("{field}.param"),
                format!("{} has {} parameters", signature.canonical(), params.len()),
            )
        })?;
    let ty = &params[index];
    let width = match ty {
        DynSolType::Address => 20,
        DynSolType::Bool => 1,
        DynSolType::Uint(bits) => u8::try_from(bits / 8).unwrap_or(32),
        DynSolType::FixedBytes(32) => 32,
        other => {
            return Err(AppError::invalid(
                format!("{field}.param"),
                format!(
                    "parameter {index} is {}; rules take address, bool, uintN and bytes32 \
                     parameters only (dynamic types have no fixed place in the calldata)",
                    other.sol_type_name()
                ),
            ));
        }
    };
    let condition = condition(&format!("{field}.condition"), rule.condition)?;
    let numeric = matches!(ty, DynSolType::Uint(_));
    match condition {
        Condition::AtMost | Condition::AtLeast if !numeric => {
            return Err(AppError::invalid(
                format!("{field}.condition"),
                format!("AT_MOST and AT_LEAST compare integers; parameter {index} is {ty}"),
            ));
        }
        Condition::IsAccount if *ty != DynSolType::Address => {
            return Err(AppError::invalid(
                format!("{field}.condition"),
                format!("IS_ACCOUNT compares addresses; parameter {index} is {ty}"),
            ));
        }
        _ => {}
    }
    let expected = match condition {
        Condition::IsAccount => 0..=0,
        Condition::OneOf => 1..=MAX_ONE_OF_VALUES,
        _ => 1..=1,
    };
    if !expected.contains(&rule.values.len()) {
        return Err(AppError::invalid(
            format!("{field}.values"),
            format!(
                "{} takes {} values, not {}",
                condition.api_name(),
                match condition {
                    Condition::IsAccount => "no".to_owned(),
                    Condition::OneOf => format!("1 to {MAX_ONE_OF_VALUES}"),
                    _ => "exactly one".to_owned(),
                },
                rule.values.len()
            ),
        ));
    }
    let values = rule
        .values
        .iter()
        .enumerate()
        .map(|(position, text)| {
            let field = format!("{field}.values[{position}]");
            match signature.param_word(index, text) {
                Some(Ok(word)) => Ok(U256::from_be_bytes(word.0)),
                Some(Err(error)) => Err(AppError::invalid(field, error.to_string())),
                None => Err(AppError::invalid(field, "the parameter has no static type")),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ArgumentRule {
        param: u8::try_from(index).map_err(|_| {
            AppError::invalid(
                format!("{field}.param"),
                "rules reach parameters 0 to 255 only",
            )
        })?,
        param_type: ty.sol_type_name().into_owned(),
        width,
        condition,
        values,
    })
}

fn condition(field: &str, value: i32) -> Result<Condition, AppError> {
    use proto::ArgumentCondition as P;
    Ok(match P::try_from(value) {
        Ok(P::Equal) => Condition::Equal,
        Ok(P::NotEqual) => Condition::NotEqual,
        Ok(P::AtMost) => Condition::AtMost,
        Ok(P::AtLeast) => Condition::AtLeast,
        Ok(P::OneOf) => Condition::OneOf,
        Ok(P::IsAccount) => Condition::IsAccount,
        Ok(P::Unspecified) => return Err(AppError::invalid(field, "required")),
        Err(_) => return Err(AppError::invalid(field, "unknown condition")),
    })
}

/// The spend limits of a session, checked against each other and against its allowlist.
pub(super) fn spend_limits(
    limits: &[proto::SpendLimit],
    permissions: &Permissions,
) -> Result<Vec<SpendLimit>, AppError> {
    if limits.len() > MAX_SPEND_LIMITS {
        return Err(AppError::invalid(
            "permissions.limits",
            format!("expected at most {MAX_SPEND_LIMITS} limits"),
        ));
    }
    let mut parsed: Vec<SpendLimit> = Vec::with_capacity(limits.len());
    for (index, limit) in limits.iter().enumerate() {
        let field = format!("permissions.limits[{index}]");
        let limit = spend_limit(&field, limit)?;
        if limit.asset != Asset::Native
            && permissions.calls.iter().any(|call| {
                call.target == limit.token && call.selector == crate::session::SelectorRule::Any
            })
        {
            return Err(AppError::invalid(
                format!("{field}.token"),
                "the token is allowed with `*` in permissions.calls: a limit cannot count every \
                 function; allow the token's functions by name",
            ));
        }
        for earlier in &parsed {
            if earlier.token == limit.token && earlier.asset != limit.asset {
                return Err(AppError::invalid(
                    format!("{field}.asset"),
                    "an earlier limit counts this token as another kind of asset",
                ));
            }
            if earlier.token == limit.token && earlier.id == limit.id {
                return Err(AppError::invalid(
                    field,
                    "an earlier limit has the same token and id",
                ));
            }
        }
        parsed.push(limit);
    }
    Ok(parsed)
}

fn spend_limit(field: &str, limit: &proto::SpendLimit) -> Result<SpendLimit, AppError> {
    use proto::AssetKind as P;
    let asset = match P::try_from(limit.asset) {
        Ok(P::Native) => Asset::Native,
        Ok(P::Erc20) => Asset::Erc20,
        Ok(P::Erc721) => Asset::Erc721,
        Ok(P::Erc1155) => Asset::Erc1155,
        Ok(P::Unspecified) => return Err(AppError::invalid(format!("{field}.asset"), "required")),
        Err(_) => {
            return Err(AppError::invalid(
                format!("{field}.asset"),
                "unknown asset kind",
            ));
        }
    };
    let token = if asset == Asset::Native {
        if !limit.token.is_empty() {
            return Err(AppError::invalid(
                format!("{field}.token"),
                "must be empty for NATIVE",
            ));
        }
        Address::ZERO
    } else {
        let token = address(&format!("{field}.token"), &limit.token)?;
        if token == Address::ZERO {
            return Err(AppError::invalid(
                format!("{field}.token"),
                "must not be zero",
            ));
        }
        token
    };
    let id = uint256(&format!("{field}.id"), &limit.id)?;
    if asset != Asset::Erc1155 && id != U256::ZERO {
        return Err(AppError::invalid(
            format!("{field}.id"),
            "only ERC1155 limits have an id",
        ));
    }
    if limit.total.is_empty() {
        return Err(AppError::invalid(
            format!("{field}.total"),
            "required: the most the key may spend over its life",
        ));
    }
    let total = uint128(&format!("{field}.total"), &limit.total)?;
    let per_period = uint128(&format!("{field}.per_period"), &limit.per_period)?;
    if limit.period_seconds == 0 && !limit.per_period.is_empty() {
        return Err(AppError::invalid(
            format!("{field}.per_period"),
            "needs period_seconds",
        ));
    }
    if limit.period_seconds != 0 && limit.per_period.is_empty() {
        return Err(AppError::invalid(
            format!("{field}.per_period"),
            "required with period_seconds",
        ));
    }
    Ok(SpendLimit {
        asset,
        token,
        id,
        total,
        per_period,
        period_secs: limit.period_seconds,
    })
}

/// An argument rule as the API shows it.
pub(super) fn argument_rule_message(rule: &ArgumentRule) -> proto::ArgumentRule {
    use proto::ArgumentCondition as P;
    let condition = match rule.condition {
        Condition::Equal => P::Equal,
        Condition::NotEqual => P::NotEqual,
        Condition::AtMost => P::AtMost,
        Condition::AtLeast => P::AtLeast,
        Condition::OneOf => P::OneOf,
        Condition::IsAccount => P::IsAccount,
    };
    proto::ArgumentRule {
        param: rule.param.into(),
        condition: condition.into(),
        values: rule
            .values
            .iter()
            .map(|value| word_text(&rule.param_type, *value))
            .collect(),
        r#type: rule.param_type.clone(),
    }
}

/// A rule's value in its parameter's own type.
fn word_text(param_type: &str, word: U256) -> String {
    match param_type {
        "address" => Address::from_word(word.into()).to_string(),
        "bool" => (word != U256::ZERO).to_string(),
        "bytes32" => format!("{:#066x}", word),
        _ => word.to_string(),
    }
}

/// A spend limit as the API shows it.
pub(super) fn spend_limit_message(limit: &SpendLimit) -> proto::SpendLimit {
    use proto::AssetKind as P;
    let asset = match limit.asset {
        Asset::Native => P::Native,
        Asset::Erc20 => P::Erc20,
        Asset::Erc721 => P::Erc721,
        Asset::Erc1155 => P::Erc1155,
    };
    let periodic = limit.period_secs != 0;
    proto::SpendLimit {
        asset: asset.into(),
        token: if limit.asset == Asset::Native {
            String::new()
        } else {
            limit.token.to_string()
        },
        id: if limit.asset == Asset::Erc1155 {
            limit.id.to_string()
        } else {
            String::new()
        },
        total: limit.total.to_string(),
        per_period: if periodic {
            limit.per_period.to_string()
        } else {
            String::new()
        },
        period_seconds: limit.period_secs,
    }
}

/// What `usage` leaves of `permissions` at `now` (unix seconds): a periodic limit shows the
/// period `now` is in, which starts from zero when nothing was spent in it yet.
pub(super) fn usage_message(
    permissions: &Permissions,
    usage: &Usage,
    now: u64,
) -> proto::SessionUsage {
    let limits = permissions
        .limits
        .iter()
        .enumerate()
        .map(|(index, limit)| {
            let used = usage.limit(index);
            let left = limit.total.saturating_sub(used.spent);
            let mut message = proto::SpendLimitUsage {
                spent: used.spent.to_string(),
                left: left.to_string(),
                ..Default::default()
            };
            if let Some(period) = limit.period_of(now) {
                let spent = used.spent_in(period);
                let (start, end) = limit.period_bounds(period);
                message.period_spent = spent.to_string();
                message.period_left = limit.per_period.saturating_sub(spent).min(left).to_string();
                message.period_start = i64::try_from(start).unwrap_or(i64::MAX);
                message.period_end = i64::try_from(end).unwrap_or(i64::MAX);
            }
            message
        })
        .collect();
    proto::SessionUsage {
        calls: usage.calls,
        calls_left: permissions.call_limit.saturating_sub(usage.calls),
        value: usage.value.to_string(),
        value_left: permissions
            .value_budget
            .saturating_sub(usage.value)
            .to_string(),
        gas: usage.gas.to_string(),
        gas_left: permissions.gas_budget.saturating_sub(usage.gas).to_string(),
        limits,
    }
}
