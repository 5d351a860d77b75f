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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::convert::permissions;

    const TOKEN: &str = "0x52908400098527886e0f7030069857d2e4169ee7";

    fn transfer_entry(rules: Vec<proto::ArgumentRule>) -> proto::CallPermission {
        proto::CallPermission {
            target: TOKEN.into(),
            function: "transfer(address,uint256)".into(),
            rules,
            ..Default::default()
        }
    }

    fn request(
        calls: Vec<proto::CallPermission>,
        limits: Vec<proto::SpendLimit>,
    ) -> Option<proto::SessionPermissions> {
        Some(proto::SessionPermissions {
            call_limit: 5,
            gas_budget: "1000".into(),
            calls,
            limits,
            ..Default::default()
        })
    }

    fn rule(
        param: u32,
        condition: proto::ArgumentCondition,
        values: &[&str],
    ) -> proto::ArgumentRule {
        proto::ArgumentRule {
            param,
            condition: condition.into(),
            values: values.iter().map(|value| (*value).to_owned()).collect(),
            ..Default::default()
        }
    }

    fn gold_limit() -> proto::SpendLimit {
        proto::SpendLimit {
            asset: proto::AssetKind::Erc20.into(),
            token: TOKEN.into(),
            total: "5000".into(),
            per_period: "1000".into(),
            period_seconds: 86_400,
            ..Default::default()
        }
    }

    /// The field an invalid request is refused for.
    fn refused_field(value: Option<proto::SessionPermissions>) -> String {
        match permissions(value) {
            Err(AppError::InvalidArgument { field, .. }) => field,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn rules_take_their_type_from_the_signature_and_values_in_it() {
        use proto::ArgumentCondition as C;
        let parsed = permissions(request(
            vec![transfer_entry(vec![
                rule(
                    0,
                    C::OneOf,
                    &["0x00000000000000000000000000000000000000aa", TOKEN],
                ),
                rule(1, C::AtMost, &["0x10"]),
            ])],
            vec![gold_limit()],
        ))
        .unwrap();
        let rules = &parsed.calls[0].rules;
        assert_eq!(
            (rules[0].width, rules[0].param_type.as_str()),
            (20, "address")
        );
        assert_eq!(rules[0].values[0], U256::from(0xaa));
        assert_eq!((rules[1].width, rules[1].values[0]), (32, U256::from(16)));
        assert_eq!(parsed.limits[0].per_period, 1_000);
        // Rendered back in the parameter's own type.
        let shown = argument_rule_message(&rules[0]);
        assert_eq!(
            shown.values[1],
            TOKEN.parse::<Address>().unwrap().to_string()
        );
    }

    #[test]
    fn each_bad_rule_is_refused_naming_its_field() {
        use proto::ArgumentCondition as C;
        let cases: Vec<(proto::CallPermission, &str)> = vec![
            (
                proto::CallPermission {
                    function: "0xa9059cbb".into(),
                    ..transfer_entry(vec![rule(0, C::IsAccount, &[])])
                },
                "permissions.calls[0].rules",
            ),
            (
                transfer_entry(vec![rule(2, C::Equal, &["1"])]),
                "permissions.calls[0].rules[0].param",
            ),
            (
                transfer_entry(vec![rule(0, C::Unspecified, &["1"])]),
                "permissions.calls[0].rules[0].condition",
            ),
            (
                transfer_entry(vec![rule(0, C::AtMost, &[TOKEN])]),
                "permissions.calls[0].rules[0].condition",
            ),
            (
                transfer_entry(vec![rule(1, C::IsAccount, &[])]),
                "permissions.calls[0].rules[0].condition",
            ),
            (
                transfer_entry(vec![rule(0, C::Equal, &[])]),
                "permissions.calls[0].rules[0].values",
            ),
            (
                transfer_entry(vec![rule(0, C::OneOf, &[TOKEN; 17])]),
                "permissions.calls[0].rules[0].values",
            ),
            (
                transfer_entry(vec![rule(1, C::Equal, &["-1"])]),
                "permissions.calls[0].rules[0].values[0]",
            ),
            (
                transfer_entry(vec![rule(0, C::Equal, &["0x1234"])]),
                "permissions.calls[0].rules[0].values[0]",
            ),
            (
                proto::CallPermission {
                    function: "setName(string,uint256)".into(),
                    ..transfer_entry(vec![rule(0, C::Equal, &["x"])])
                },
                "permissions.calls[0].rules[0].param",
            ),
            (
                transfer_entry(vec![rule(1, C::AtLeast, &["1"]); 9]),
                "permissions.calls[0].rules",
            ),
        ];
        for (entry, field) in cases {
            assert_eq!(
                refused_field(request(vec![entry.clone()], vec![])),
                field,
                "{entry:?}"
            );
        }
    }

    #[test]
    fn each_bad_limit_is_refused_naming_its_field() {
        let cases: Vec<(proto::SpendLimit, &str)> = vec![
            (
                proto::SpendLimit {
                    asset: 0,
                    ..gold_limit()
                },
                "permissions.limits[0].asset",
            ),
            (
                proto::SpendLimit {
                    asset: proto::AssetKind::Native.into(),
                    ..gold_limit()
                },
                "permissions.limits[0].token",
            ),
            (
                proto::SpendLimit {
                    id: "3".into(),
                    ..gold_limit()
                },
                "permissions.limits[0].id",
            ),
            (
                proto::SpendLimit {
                    total: String::new(),
                    ..gold_limit()
                },
                "permissions.limits[0].total",
            ),
            (
                proto::SpendLimit {
                    period_seconds: 0,
                    ..gold_limit()
                },
                "permissions.limits[0].per_period",
            ),
            (
                proto::SpendLimit {
                    per_period: String::new(),
                    ..gold_limit()
                },
                "permissions.limits[0].per_period",
            ),
            (
                proto::SpendLimit {
                    total: "340282366920938463463374607431768211456".into(),
                    ..gold_limit()
                },
                "permissions.limits[0].total",
            ),
        ];
        for (limit, field) in cases {
            assert_eq!(
                refused_field(request(vec![transfer_entry(vec![])], vec![limit.clone()])),
                field,
                "{limit:?}"
            );
        }
        // Two limits on one token and id, or two kinds of asset for one token.
        let twice = request(
            vec![transfer_entry(vec![])],
            vec![gold_limit(), gold_limit()],
        );
        assert_eq!(refused_field(twice), "permissions.limits[1]");
        let other_kind = proto::SpendLimit {
            asset: proto::AssetKind::Erc721.into(),
            per_period: String::new(),
            period_seconds: 0,
            ..gold_limit()
        };
        let mixed = request(vec![transfer_entry(vec![])], vec![gold_limit(), other_kind]);
        assert_eq!(refused_field(mixed), "permissions.limits[1].asset");
        // A limited token may not be allowed with `*`.
        let open = proto::CallPermission {
            function: "*".into(),
            ..transfer_entry(vec![])
        };
        assert_eq!(
            refused_field(request(vec![open], vec![gold_limit()])),
            "permissions.limits[0].token"
        );
    }

    #[test]
    fn usage_shows_the_current_period_from_zero_once_it_is_new() {
        let parsed =
            permissions(request(vec![transfer_entry(vec![])], vec![gold_limit()])).unwrap();
        let usage = Usage {
            limits: vec![crate::session::LimitUsage {
                spent: 1_200,
                period: 1,
                period_spent: 700,
            }],
            ..Usage::default()
        };
        let today = usage_message(&parsed, &usage, 86_400 + 10);
        assert_eq!(
            (
                today.limits[0].period_spent.as_str(),
                today.limits[0].period_left.as_str()
            ),
            ("700", "300")
        );
        assert_eq!(
            (today.limits[0].period_start, today.limits[0].period_end),
            (86_400, 172_799)
        );
        let tomorrow = usage_message(&parsed, &usage, 2 * 86_400);
        assert_eq!(
            (
                tomorrow.limits[0].period_spent.as_str(),
                tomorrow.limits[0].period_left.as_str()
            ),
            ("0", "1000")
        );
        assert_eq!(tomorrow.limits[0].left, "3800");
    }
}
