//! `latchkey policy`: gas sponsorship policies on a running daemon, through its
//! `PolicyService`.
//!
//! Rules are written as short specs, one per `--rule`, and shown back in the same syntax so
//! that what `show` prints can be pasted into `create`:
//!
//! - `contract:<ADDRESS|*>:<FUNCTION|*>`: a contract call the policy sponsors; FUNCTION is a
//!   signature such as `mint(address,uint256,uint256)` or a `0x` selector. All of them make
//!   one contract-functions rule.
//! - `account:<LIST>`: the account's own functions, from `register`, `revoke`, `deploy`; all
//!   of them make one account-functions rule.
//! - `ops:<N>/<INTERVAL>`, `gas:<N>/<INTERVAL>`, `op-gas:<N>`, `spend:<WEI>/<INTERVAL>`:
//!   limits on operations, gas and wei per interval, and on the gas of one operation.
//! - INTERVAL is `<n>s`, `<n>m`, `<n>h`, `<n>d` or plain seconds.

use alloy::primitives::{Address, utils::Unit};
use serde::Serialize;

use super::{
    BadValue, ClientArgs, WEI_SYNTAX, collect_pages, enum_name, format_eth, in_unit, parse_wei,
    print_output, rpc_error, session::or_zero, table,
};
use crate::{
    api::proto::{
        self, policy_rule::Rule as ProtoRule, policy_service_client::PolicyServiceClient,
    },
    intent::calldata::FunctionSignature,
    policy::{MAX_INTERVAL_SECS, PolicyId},
};

/// What `latchkey policy` does.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Create a policy, enabled, and print it.
    ///
    /// Example: latchkey policy create --name "mint only" --rule
    /// 'contract:0x5FbDB2315678afecb367f032d93F642f64180aa3:mint(address,uint256,uint256)'
    /// --rule account:register,revoke,deploy --rule op-gas:3000000 --rule spend:1ether/1d
    Create {
        /// A name for people: 1 to 128 characters.
        #[arg(long)]
        name: String,
        /// The chain the policy sponsors on; the daemon's chain when absent.
        #[arg(long, value_name = "N")]
        chain_id: Option<u64>,
        /// A rule, repeatable (at least one): `contract:<ADDRESS|*>:<FUNCTION|*>`,
        /// `account:<register,revoke,deploy>`, `ops:<N>/<INTERVAL>`, `gas:<N>/<INTERVAL>`,
        /// `op-gas:<N>` or `spend:<WEI>/<INTERVAL>`. WEI may carry an `ether` or `gwei`
        /// suffix (`0.5ether`); INTERVAL is `<n>s|m|h|d` or seconds. All `contract:` specs
        /// make one rule, and so do all `account:` specs.
        #[arg(long = "rule", value_name = "SPEC", required = true, value_parser = parse_rule_spec)]
        rules: Vec<RuleSpec>,
    },
    /// List the policies, newest first, with what they have spent.
    List,
    /// Show a policy: its rules, its usage and the current window of each limit.
    Show {
        /// The policy: `pol_...` or `policies/pol_...`.
        #[arg(value_parser = parse_policy_name)]
        policy: String,
    },
    /// Disable a policy, so that it sponsors no new operation, and print it.
    Disable {
        /// The policy: `pol_...` or `policies/pol_...`.
        #[arg(value_parser = parse_policy_name)]
        policy: String,
    },
}

/// Runs a `latchkey policy` command against the daemon and prints its result.
pub async fn run(client: ClientArgs, command: PolicyCommand) -> anyhow::Result<()> {
    let mut policies = PolicyServiceClient::new(client.connect().await?);
    // Every command but list answers with the policy it created, found or disabled.
    let policy = match command {
        PolicyCommand::Create {
            name,
            chain_id,
            rules,
        } => {
            let request = proto::CreatePolicyRequest {
                display_name: name,
                chain_id: chain_id.unwrap_or(0),
                strategy: proto::SponsorStrategy::PayForUser.into(),
                rules: policy_rules(rules),
            };
            policies.create_policy(request).await
        }
        PolicyCommand::List => {
            let all = list_all(&mut policies).await?;
            let json: Vec<PolicyJson> = all.iter().map(policy_json).collect();
            return print_output(client.json, &json, || render_list(&all));
        }
        PolicyCommand::Show { policy: name } => {
            policies.get_policy(proto::GetPolicyRequest { name }).await
        }
        PolicyCommand::Disable { policy: name } => {
            policies
                .disable_policy(proto::DisablePolicyRequest { name })
                .await
        }
    };
    let policy = policy.map_err(rpc_error)?.into_inner();
    print_output(client.json, &policy_json(&policy), || {
        render_policy(&policy)
    })
}

/// Every page of ListPolicies.
async fn list_all(
    policies: &mut PolicyServiceClient<super::ApiChannel>,
) -> anyhow::Result<Vec<proto::Policy>> {
    collect_pages(u32::MAX, |page_size, page_token| {
        let mut policies = policies.clone();
        async move {
            let page = policies
                .list_policies(proto::ListPoliciesRequest {
                    page_size,
                    page_token,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            Ok((page.policies, page.next_page_token))
        }
    })
    .await
}

/// `pol_...` or `policies/pol_...` as the resource name `policies/pol_...`.
pub fn parse_policy_name(text: &str) -> Result<String, BadValue> {
    let id = text.strip_prefix("policies/").unwrap_or(text);
    match PolicyId::parse(id) {
        Some(id) => Ok(format!("policies/{id}")),
        None => Err(BadValue::new(
            text,
            "a policy: `pol_` and a ULID, optionally after `policies/`",
        )),
    }
}

/// One `--rule`, parsed. Contract and account specs are parts of a rule: [`policy_rules`]
/// merges them.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleSpec {
    /// One entry of the policy's contract-functions rule.
    Contract(proto::ContractFunction),
    /// Account functions of the policy's account-functions rule.
    Account(proto::AccountFunctionsRule),
    /// A whole rule: a limit.
    Limit(proto::PolicyRule),
}

const RULE_SYNTAX: &str = "a rule: `contract:<ADDRESS|*>:<FUNCTION|*>`, \
                           `account:<register,revoke,deploy>`, `ops:<N>/<INTERVAL>`, \
                           `gas:<N>/<INTERVAL>`, `op-gas:<N>` or `spend:<WEI>/<INTERVAL>`";

/// Parses one rule spec; see the [module docs](self).
pub fn parse_rule_spec(text: &str) -> Result<RuleSpec, BadValue> {
    let (kind, rest) = text
        .split_once(':')
        .ok_or_else(|| BadValue::new(text, RULE_SYNTAX))?;
    let limit = |rule| Ok(RuleSpec::Limit(proto::PolicyRule { rule: Some(rule) }));
    match kind {
        "contract" => {
            let (contract, function) = rest.split_once(':').ok_or_else(|| {
                BadValue::new(text, "`contract:<ADDRESS|*>:<FUNCTION|*>`, with both parts")
            })?;
            check_contract(contract)?;
            check_function(function)?;
            Ok(RuleSpec::Contract(proto::ContractFunction {
                contract: contract.to_owned(),
                function: function.to_owned(),
            }))
        }
        "account" => parse_account_functions(rest).map(RuleSpec::Account),
        "ops" => {
            let (max, interval) = limit_per_interval(text, rest)?;
            limit(ProtoRule::OperationsPerInterval(
                proto::OperationsPerIntervalRule {
                    max_operations: positive(max)?,
                    interval_seconds: interval,
                },
            ))
        }
        "gas" => {
            let (max, interval) = limit_per_interval(text, rest)?;
            limit(ProtoRule::GasPerInterval(proto::GasPerIntervalRule {
                max_gas: positive(max)?,
                interval_seconds: interval,
            }))
        }
        "op-gas" => limit(ProtoRule::GasPerOperation(proto::GasPerOperationRule {
            max_gas: positive(rest)?,
        })),
        "spend" => {
            let (max, interval) = limit_per_interval(text, rest)?;
            let wei = parse_wei(max)?;
            if wei == 0 {
                return Err(BadValue::new(max, format!("at least 1 wei: {WEI_SYNTAX}")));
            }
            limit(ProtoRule::SpendPerInterval(proto::SpendPerIntervalRule {
                max_wei: wei.to_string(),
                interval_seconds: interval,
            }))
        }
        _ => Err(BadValue::new(text, RULE_SYNTAX)),
    }
}

/// `<LIMIT>/<INTERVAL>`: the limit as text, the interval in seconds.
fn limit_per_interval<'a>(spec: &str, rest: &'a str) -> Result<(&'a str, u64), BadValue> {
    let (max, interval) = rest
        .split_once('/')
        .ok_or_else(|| BadValue::new(spec, "`<LIMIT>/<INTERVAL>` after the rule's kind"))?;
    Ok((max, parse_interval(interval)?))
}

fn positive(text: &str) -> Result<u64, BadValue> {
    match text.parse::<u64>() {
        Ok(value) if value > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(value),
        _ => Err(BadValue::new(text, "a whole number from 1 to 2^64-1")),
    }
}

/// `*`, or a 0x-prefixed 20-byte address; a mixed-case one must carry a right EIP-55
/// checksum.
fn check_contract(text: &str) -> Result<(), BadValue> {
    if text == "*" {
        return Ok(());
    }
    let expected = "a contract: `*` or a 0x-prefixed 20-byte hex address";
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| BadValue::new(text, expected))?;
    if digits.len() != 40 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BadValue::new(text, expected));
    }
    let mixed = digits.bytes().any(|b| b.is_ascii_lowercase())
        && digits.bytes().any(|b| b.is_ascii_uppercase());
    if mixed && Address::parse_checksummed(text, None).is_err() {
        return Err(BadValue::new(
            text,
            "an address with a right EIP-55 checksum, or all in one case",
        ));
    }
    Ok(())
}

/// `*`, a 4-byte `0x` selector, or a function signature.
fn check_function(text: &str) -> Result<(), BadValue> {
    if text == "*" {
        return Ok(());
    }
    if let Some(digits) = text.strip_prefix("0x") {
        if digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(());
        }
        return Err(BadValue::new(text, "a selector: 0x and 8 hex digits"));
    }
    FunctionSignature::parse(text).map(drop).map_err(|error| {
        BadValue::new(
            text,
            format!(
                "a function: `*`, a 0x selector or a signature such as \
                 `mint(address,uint256,uint256)` ({error})"
            ),
        )
    })
}

fn parse_account_functions(list: &str) -> Result<proto::AccountFunctionsRule, BadValue> {
    let mut rule = proto::AccountFunctionsRule::default();
    for function in list.split(',') {
        match function {
            "register" => rule.register_session = true,
            "revoke" => rule.revoke_session = true,
            "deploy" => rule.deploy_account = true,
            _ => {
                return Err(BadValue::new(
                    function,
                    "account functions: a comma-separated list of `register`, `revoke`, \
                     `deploy`",
                ));
            }
        }
    }
    Ok(rule)
}

/// An interval: `<n>s`, `<n>m`, `<n>h`, `<n>d` or plain seconds, 1 second to 366 days.
pub fn parse_interval(text: &str) -> Result<u64, BadValue> {
    let bad = || {
        BadValue::new(
            text,
            "an interval: `<n>s`, `<n>m`, `<n>h`, `<n>d` or plain seconds, from 1 second to \
             366 days",
        )
    };
    let (number, unit) = match text.as_bytes().last() {
        Some(b's') => (&text[..text.len() - 1], 1),
        Some(b'm') => (&text[..text.len() - 1], 60),
        Some(b'h') => (&text[..text.len() - 1], 3_600),
        Some(b'd') => (&text[..text.len() - 1], 86_400),
        _ => (text, 1),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let seconds = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(bad)?;
    if !(1..=MAX_INTERVAL_SECS).contains(&seconds) {
        return Err(bad());
    }
    Ok(seconds)
}

/// Seconds in the largest unit that divides them: `1d`, `2h`, `90s`.
pub fn render_interval(seconds: u64) -> String {
    match seconds {
        0 => "0s".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A wei limit as [`parse_wei`] reads it back, in the unit that shows it exactly and
/// shortest: `10ether`, `0.5ether`, `20gwei`, `12345`.
pub fn render_wei(wei: &str) -> String {
    const GWEI: u128 = 1_000_000_000;
    const ETHER: u128 = 1_000_000_000_000_000_000;
    let Ok(value) = wei.parse::<u128>() else {
        return wei.to_owned();
    };
    if value >= ETHER / 1_000 && value % (ETHER / 1_000_000) == 0 {
        format!("{}ether", in_unit(value, Unit::ETHER))
    } else if value >= GWEI && value % GWEI == 0 {
        format!("{}gwei", in_unit(value, Unit::GWEI))
    } else {
        value.to_string()
    }
}

/// The specs, merged into rules: all contract entries make one contract-functions rule and
/// all account functions one account-functions rule, each where its first spec stood.
pub fn policy_rules(specs: Vec<RuleSpec>) -> Vec<proto::PolicyRule> {
    let mut rules: Vec<proto::PolicyRule> = Vec::new();
    for spec in specs {
        match spec {
            RuleSpec::Contract(function) => {
                let existing = rules.iter_mut().find_map(|rule| match &mut rule.rule {
                    Some(ProtoRule::ContractFunctions(rule)) => Some(rule),
                    _ => None,
                });
                match existing {
                    Some(rule) if rule.functions.contains(&function) => {}
                    Some(rule) => rule.functions.push(function),
                    None => rules.push(proto::PolicyRule {
                        rule: Some(ProtoRule::ContractFunctions(proto::ContractFunctionsRule {
                            functions: vec![function],
                        })),
                    }),
                }
            }
            RuleSpec::Account(functions) => {
                let existing = rules.iter_mut().find_map(|rule| match &mut rule.rule {
                    Some(ProtoRule::AccountFunctions(rule)) => Some(rule),
                    _ => None,
                });
                match existing {
                    Some(rule) => {
                        rule.register_session |= functions.register_session;
                        rule.revoke_session |= functions.revoke_session;
                        rule.deploy_account |= functions.deploy_account;
                    }
                    None => rules.push(proto::PolicyRule {
                        rule: Some(ProtoRule::AccountFunctions(functions)),
                    }),
                }
            }
            RuleSpec::Limit(rule) => rules.push(rule),
        }
    }
    rules
}

/// A rule as the specs that create it: one per contract entry, one otherwise.
pub fn rule_specs(rule: &proto::PolicyRule) -> Vec<String> {
    let Some(rule) = &rule.rule else {
        return vec!["<a rule this latchkey does not know>".to_owned()];
    };
    let one = |spec: String| vec![spec];
    match rule {
        ProtoRule::ContractFunctions(rule) => rule
            .functions
            .iter()
            .map(|entry| format!("contract:{}:{}", entry.contract, entry.function))
            .collect(),
        ProtoRule::AccountFunctions(rule) => {
            let functions: Vec<&str> = [
                (rule.register_session, "register"),
                (rule.revoke_session, "revoke"),
                (rule.deploy_account, "deploy"),
            ]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
            one(format!("account:{}", functions.join(",")))
        }
        ProtoRule::OperationsPerInterval(rule) => one(format!(
            "ops:{}/{}",
            rule.max_operations,
            render_interval(rule.interval_seconds)
        )),
        ProtoRule::GasPerInterval(rule) => one(format!(
            "gas:{}/{}",
            rule.max_gas,
            render_interval(rule.interval_seconds)
        )),
        ProtoRule::GasPerOperation(rule) => one(format!("op-gas:{}", rule.max_gas)),
        ProtoRule::SpendPerInterval(rule) => one(format!(
            "spend:{}/{}",
            render_wei(&rule.max_wei),
            render_interval(rule.interval_seconds)
        )),
    }
}

/// A policy as JSON: a stable shape, gas and wei as decimal strings.
#[derive(Debug, Serialize)]
pub struct PolicyJson {
    /// `policies/pol_...`.
    pub name: String,
    /// `pol_...`.
    pub id: String,
    /// The name for people.
    pub display_name: String,
    /// The chain it sponsors on.
    pub chain_id: u64,
    /// `pay_for_user`.
    pub strategy: String,
    /// Whether it sponsors new operations.
    pub enabled: bool,
    /// The rules as `--rule` specs; a contract-functions rule gives one spec per entry.
    pub rules: Vec<String>,
    /// What its operations have used in all.
    pub usage: proto::PolicyUsage,
    /// The current interval of each limit over time.
    pub windows: Vec<WindowJson>,
    /// RFC 3339.
    pub create_time: Option<String>,
    /// RFC 3339.
    pub update_time: Option<String>,
}

/// The current interval of one limit.
#[derive(Debug, Serialize)]
pub struct WindowJson {
    /// Index of the rule in the policy's rules (the daemon's order, where a contract-functions
    /// rule counts once).
    pub rule_index: u32,
    /// The rule, as a spec.
    pub rule: String,
    /// RFC 3339.
    pub start: Option<String>,
    /// RFC 3339.
    pub end: Option<String>,
    /// What the interval has used.
    pub usage: proto::PolicyUsage,
}

fn window_rule(policy: &proto::Policy, index: u32) -> String {
    usize::try_from(index)
        .ok()
        .and_then(|index| policy.rules.get(index))
        .map_or_else(
            || "<no such rule>".to_owned(),
            |rule| rule_specs(rule).join(" "),
        )
}

/// The JSON shape of a policy.
pub fn policy_json(policy: &proto::Policy) -> PolicyJson {
    PolicyJson {
        name: policy.name.clone(),
        id: policy.id.clone(),
        display_name: policy.display_name.clone(),
        chain_id: policy.chain_id,
        strategy: enum_name::<proto::SponsorStrategy>(policy.strategy),
        enabled: policy.enabled,
        rules: policy.rules.iter().flat_map(rule_specs).collect(),
        usage: policy.usage.clone().unwrap_or_default(),
        windows: policy
            .windows
            .iter()
            .map(|window| WindowJson {
                rule_index: window.rule_index,
                rule: window_rule(policy, window.rule_index),
                start: window.start_time.map(|time| time.to_string()),
                end: window.end_time.map(|time| time.to_string()),
                usage: window.usage.clone().unwrap_or_default(),
            })
            .collect(),
        create_time: policy.create_time.map(|time| time.to_string()),
        update_time: policy.update_time.map(|time| time.to_string()),
    }
}

fn yes_no(on: bool) -> &'static str {
    if on { "yes" } else { "no" }
}

/// The settled and pending lines of a usage, each after `indent`.
fn usage_lines(indent: &str, usage: &proto::PolicyUsage) -> String {
    format!(
        "{indent}{}{indent}{}",
        amount_line("settled", usage.settled.as_ref()),
        amount_line("pending", usage.pending.as_ref())
    )
}

fn amount_line(label: &str, amount: Option<&proto::PolicyAmount>) -> String {
    let amount = amount.cloned().unwrap_or_default();
    let (gas, wei) = (or_zero(&amount.gas), or_zero(&amount.wei));
    let eth = wei
        .parse::<u128>()
        .map_or_else(|_| "?".to_owned(), format_eth);
    format!(
        "{label:<9}{} ops, {gas} gas, {wei} wei ({eth} ETH)\n",
        amount.operations
    )
}

/// A policy for people: its name first, then its fields, rules as specs, usage and windows.
pub fn render_policy(policy: &proto::Policy) -> String {
    let json = policy_json(policy);
    let mut out = format!("{}\n", json.name);
    let field = |name: &str, value: &str| format!("  {name:<14}{value}\n");
    out.push_str(&field("display name", &json.display_name));
    out.push_str(&field("chain id", &json.chain_id.to_string()));
    out.push_str(&field("strategy", &json.strategy));
    out.push_str(&field("enabled", yes_no(json.enabled)));
    out.push_str(&field(
        "created",
        json.create_time.as_deref().unwrap_or("-"),
    ));
    out.push_str(&field(
        "updated",
        json.update_time.as_deref().unwrap_or("-"),
    ));
    // Numbered as the daemon numbers them, which the windows below refer to; a
    // contract-functions rule is one rule of several specs.
    out.push_str("rules\n");
    for (index, rule) in policy.rules.iter().enumerate() {
        for (line, spec) in rule_specs(rule).iter().enumerate() {
            if line == 0 {
                out.push_str(&format!("  {index:<3}{spec}\n"));
            } else {
                out.push_str(&format!("     {spec}\n"));
            }
        }
    }
    out.push_str("usage\n");
    out.push_str(&usage_lines("  ", &json.usage));
    if !json.windows.is_empty() {
        out.push_str("current windows\n");
        for window in &json.windows {
            out.push_str(&format!("  rule {}: {}\n", window.rule_index, window.rule));
            out.push_str(&format!(
                "    {} .. {}\n",
                window.start.as_deref().unwrap_or("-"),
                window.end.as_deref().unwrap_or("-")
            ));
            out.push_str(&usage_lines("    ", &window.usage));
        }
    }
    out
}

/// Policies as a table: name, display name, enabled, rule count, settled spend and
/// operations.
pub fn render_list(policies: &[proto::Policy]) -> String {
    let rows: Vec<Vec<String>> = policies
        .iter()
        .map(|policy| {
            let settled = policy
                .usage
                .as_ref()
                .and_then(|usage| usage.settled.clone())
                .unwrap_or_default();
            let wei = or_zero(&settled.wei);
            let spent = match wei.parse::<u128>() {
                Ok(value) => format!("{wei} ({} ETH)", format_eth(value)),
                Err(_) => wei,
            };
            vec![
                policy.name.clone(),
                policy.display_name.clone(),
                yes_no(policy.enabled).to_owned(),
                policy.rules.len().to_string(),
                spent,
                settled.operations.to_string(),
            ]
        })
        .collect();
    table(
        &["NAME", "DISPLAY NAME", "ENABLED", "RULES", "SPENT", "OPS"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAME_ITEMS: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";

    fn limit(rule: ProtoRule) -> RuleSpec {
        RuleSpec::Limit(proto::PolicyRule { rule: Some(rule) })
    }

    #[test]
    fn intervals_take_a_unit_or_seconds() {
        for (text, seconds) in [
            ("30s", 30),
            ("5m", 300),
            ("1h", 3_600),
            ("7d", 604_800),
            ("90", 90),
            ("366d", MAX_INTERVAL_SECS),
        ] {
            assert_eq!(parse_interval(text), Ok(seconds), "{text}");
        }
        for text in [
            "",
            "0",
            "0s",
            "s",
            "1w",
            "-1h",
            "1.5h",
            "1 h",
            "367d",
            "h1",
            "99999999999999999999d",
        ] {
            let error = parse_interval(text).expect_err(text);
            assert_eq!(error.text, text);
            assert!(error.expected.contains("interval"));
        }
    }

    #[test]
    fn intervals_render_in_the_largest_whole_unit() {
        assert_eq!(render_interval(86_400), "1d");
        assert_eq!(render_interval(7 * 86_400), "7d");
        assert_eq!(render_interval(7_200), "2h");
        assert_eq!(render_interval(300), "5m");
        assert_eq!(render_interval(90), "90s");
        assert_eq!(render_interval(86_401), "86401s");
        for seconds in [1, 59, 60, 61, 3_600, 5_400, 86_400, MAX_INTERVAL_SECS] {
            assert_eq!(parse_interval(&render_interval(seconds)), Ok(seconds));
        }
    }

    #[test]
    fn wei_limits_render_exactly_in_the_shortest_unit() {
        assert_eq!(render_wei("10000000000000000000"), "10ether");
        assert_eq!(render_wei("500000000000000000"), "0.5ether");
        assert_eq!(render_wei("1000000000000000"), "0.001ether");
        assert_eq!(render_wei("20000000000"), "20gwei");
        assert_eq!(render_wei("1500000000"), "1500000000");
        assert_eq!(render_wei("12345"), "12345");
        assert_eq!(render_wei("1000000000000000001"), "1000000000000000001");
        for wei in [
            1u128,
            999,
            10u128.pow(9),
            10u128.pow(18) + 1,
            123 * 10u128.pow(16),
        ] {
            assert_eq!(parse_wei(&render_wei(&wei.to_string())), Ok(wei));
        }
    }

    #[test]
    fn contract_specs_split_on_the_first_two_colons_only() {
        let spec = format!("contract:{GAME_ITEMS}:mint(address,uint256,uint256)");
        assert_eq!(
            parse_rule_spec(&spec),
            Ok(RuleSpec::Contract(proto::ContractFunction {
                contract: GAME_ITEMS.to_owned(),
                function: "mint(address,uint256,uint256)".to_owned(),
            }))
        );
        assert!(parse_rule_spec("contract:*:*").is_ok());
        assert!(parse_rule_spec("contract:*:0x40c10f19").is_ok());
        assert!(parse_rule_spec(&format!("contract:{}:*", GAME_ITEMS.to_lowercase())).is_ok());
        // The function keeps any further colon, and is then refused as a signature.
        let error = parse_rule_spec("contract:*:mint:x").expect_err("colon in function");
        assert_eq!(error.text, "mint:x");
    }

    #[test]
    fn bad_contract_specs_name_the_part_that_is_wrong() {
        for (spec, part) in [
            ("contract:*", "contract:*"),
            ("contract:0x1234:*", "0x1234"),
            (
                "contract:5FbDB2315678afecb367f032d93F642f64180aa3:*",
                "5FbDB2315678afecb367f032d93F642f64180aa3",
            ),
            (
                "contract:0x5fbDB2315678afecb367f032d93F642f64180aa3:*",
                "0x5fbDB2315678afecb367f032d93F642f64180aa3",
            ),
            ("contract:*:0x40c10f", "0x40c10f"),
            ("contract:*:mint(", "mint("),
            ("contract:*:", ""),
        ] {
            let error = parse_rule_spec(spec).expect_err(spec);
            assert_eq!(error.text, part, "{spec}");
        }
    }

    #[test]
    fn limits_parse_with_their_interval() {
        assert_eq!(
            parse_rule_spec("ops:100/1h"),
            Ok(limit(ProtoRule::OperationsPerInterval(
                proto::OperationsPerIntervalRule {
                    max_operations: 100,
                    interval_seconds: 3_600,
                }
            )))
        );
        assert_eq!(
            parse_rule_spec("gas:30000000/30s"),
            Ok(limit(ProtoRule::GasPerInterval(
                proto::GasPerIntervalRule {
                    max_gas: 30_000_000,
                    interval_seconds: 30,
                }
            )))
        );
        assert_eq!(
            parse_rule_spec("op-gas:3000000"),
            Ok(limit(ProtoRule::GasPerOperation(
                proto::GasPerOperationRule { max_gas: 3_000_000 }
            )))
        );
        assert_eq!(
            parse_rule_spec("spend:0.5ether/1d"),
            Ok(limit(ProtoRule::SpendPerInterval(
                proto::SpendPerIntervalRule {
                    max_wei: "500000000000000000".to_owned(),
                    interval_seconds: 86_400,
                }
            )))
        );
        assert_eq!(
            parse_rule_spec("spend:1000/60"),
            Ok(limit(ProtoRule::SpendPerInterval(
                proto::SpendPerIntervalRule {
                    max_wei: "1000".to_owned(),
                    interval_seconds: 60,
                }
            )))
        );
    }

    #[test]
    fn bad_limits_say_what_is_expected() {
        for (spec, part) in [
            ("ops:100", "ops:100"),
            ("ops:0/1h", "0"),
            ("ops:-1/1h", "-1"),
            ("ops:+5/1h", "+5"),
            ("ops:10/1w", "1w"),
            ("gas:lots/1h", "lots"),
            ("op-gas:0", "0"),
            ("op-gas:3000000/1h", "3000000/1h"),
            ("spend:0/1d", "0"),
            ("spend:1.5/1d", "1.5"),
            (
                "spend:0.0000000000000000001ether/1d",
                "0.0000000000000000001ether",
            ),
            ("spend:1eth/1d", "1eth"),
            ("limit:5/1h", "limit:5/1h"),
            ("ops", "ops"),
            ("", ""),
        ] {
            let error = parse_rule_spec(spec).expect_err(spec);
            assert_eq!(error.text, part, "{spec}");
            assert!(!error.expected.is_empty());
        }
        let unknown = parse_rule_spec("limit:5/1h").expect_err("unknown kind");
        assert!(unknown.expected.contains("op-gas:<N>"));
    }

    #[test]
    fn account_specs_take_a_list() {
        assert_eq!(
            parse_rule_spec("account:register,deploy"),
            Ok(RuleSpec::Account(proto::AccountFunctionsRule {
                register_session: true,
                revoke_session: false,
                deploy_account: true,
            }))
        );
        for (spec, part) in [
            ("account:", ""),
            ("account:register,", ""),
            ("account:mint", "mint"),
            ("account:register revoke", "register revoke"),
        ] {
            assert_eq!(parse_rule_spec(spec).expect_err(spec).text, part, "{spec}");
        }
    }

    #[test]
    fn contract_and_account_specs_merge_into_one_rule_each() {
        let specs = [
            "op-gas:3000000",
            "contract:*:0x40c10f19",
            "account:register",
            &format!("contract:{GAME_ITEMS}:*"),
            "spend:10ether/1d",
            "account:deploy,register",
            "contract:*:0x40c10f19",
        ]
        .into_iter()
        .map(|spec| parse_rule_spec(spec).expect(spec))
        .collect();
        let rules = policy_rules(specs);
        let rendered: Vec<Vec<String>> = rules.iter().map(rule_specs).collect();
        assert_eq!(
            rendered,
            vec![
                vec!["op-gas:3000000".to_owned()],
                vec![
                    "contract:*:0x40c10f19".to_owned(),
                    format!("contract:{GAME_ITEMS}:*")
                ],
                vec!["account:register,deploy".to_owned()],
                vec!["spend:10ether/1d".to_owned()],
            ]
        );
    }

    #[test]
    fn rendered_specs_parse_back_to_the_same_rules() {
        let specs = [
            &format!("contract:{GAME_ITEMS}:mint(address,uint256,uint256)") as &str,
            "contract:*:*",
            "account:register,revoke,deploy",
            "ops:10/30s",
            "gas:1000000/7d",
            "op-gas:21000",
            "spend:123456789/1h",
            "spend:0.25ether/1d",
        ];
        let rules = policy_rules(
            specs
                .iter()
                .map(|spec| parse_rule_spec(spec).expect(spec))
                .collect(),
        );
        let rendered: Vec<String> = rules.iter().flat_map(rule_specs).collect();
        assert_eq!(rendered, specs);
        let again = policy_rules(
            rendered
                .iter()
                .map(|spec| parse_rule_spec(spec).expect(spec))
                .collect(),
        );
        assert_eq!(again, rules);
    }

    #[test]
    fn policy_names_take_the_id_or_the_resource_name() {
        let id = "pol_01J9Z8Q4X5N6M7P8R9S0T1V2W3";
        assert_eq!(parse_policy_name(id), Ok(format!("policies/{id}")));
        assert_eq!(
            parse_policy_name(&format!("policies/{id}")),
            Ok(format!("policies/{id}"))
        );
        for bad in [
            "",
            "pol_",
            "pol_xyz",
            "policies/",
            "ses_01J9Z8Q4X5N6M7P8R9S0T1V2W3",
            "policies/policies/pol_01J9Z8Q4X5N6M7P8R9S0T1V2W3",
        ] {
            assert!(parse_policy_name(bad).is_err(), "{bad}");
        }
    }

    fn sample_policy() -> proto::Policy {
        let amount = |operations, wei: &str| proto::PolicyAmount {
            operations,
            gas: "100000".to_owned(),
            wei: wei.to_owned(),
        };
        let usage = proto::PolicyUsage {
            settled: Some(amount(2, "1500000000000000")),
            pending: Some(amount(1, "0")),
        };
        proto::Policy {
            tenant: "default".to_owned(),
            name: "policies/pol_01J9Z8Q4X5N6M7P8R9S0T1V2W3".to_owned(),
            id: "pol_01J9Z8Q4X5N6M7P8R9S0T1V2W3".to_owned(),
            display_name: "dev default".to_owned(),
            chain_id: 31_337,
            strategy: proto::SponsorStrategy::PayForUser.into(),
            enabled: true,
            rules: policy_rules(vec![
                parse_rule_spec("contract:*:*").expect("spec"),
                parse_rule_spec("spend:10ether/1d").expect("spec"),
            ]),
            usage: Some(usage.clone()),
            windows: vec![proto::PolicyWindow {
                rule_index: 1,
                start_time: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: 0,
                }),
                end_time: Some(prost_types::Timestamp {
                    seconds: 86_400,
                    nanos: 0,
                }),
                usage: Some(usage),
            }],
            create_time: None,
            update_time: None,
        }
    }

    #[test]
    fn policy_json_has_a_stable_shape() {
        let json = serde_json::to_value(policy_json(&sample_policy())).expect("json");
        assert_eq!(json["name"], "policies/pol_01J9Z8Q4X5N6M7P8R9S0T1V2W3");
        assert_eq!(json["chain_id"], 31_337);
        assert_eq!(json["strategy"], "pay_for_user");
        assert_eq!(
            json["rules"],
            serde_json::json!(["contract:*:*", "spend:10ether/1d"])
        );
        assert_eq!(json["usage"]["settled"]["operations"], 2);
        assert_eq!(json["usage"]["settled"]["wei"], "1500000000000000");
        assert_eq!(json["usage"]["settled"]["gas"], "100000");
        assert_eq!(json["windows"][0]["rule_index"], 1);
        assert_eq!(json["windows"][0]["rule"], "spend:10ether/1d");
        assert_eq!(json["windows"][0]["start"], "1970-01-01T00:00:00Z");
        assert_eq!(json["windows"][0]["end"], "1970-01-02T00:00:00Z");
        assert_eq!(json["create_time"], serde_json::Value::Null);
    }

    #[test]
    fn a_policy_reads_name_first_and_a_list_as_a_table() {
        let policy = sample_policy();
        let text = render_policy(&policy);
        assert!(
            text.starts_with("policies/pol_01J9Z8Q4X5N6M7P8R9S0T1V2W3\n"),
            "{text}"
        );
        assert!(
            text.contains("\n  0  contract:*:*\n  1  spend:10ether/1d\n"),
            "{text}"
        );
        assert!(
            text.contains("settled  2 ops, 100000 gas, 1500000000000000 wei (0.0015 ETH)"),
            "{text}"
        );
        assert!(text.contains("rule 1: spend:10ether/1d"), "{text}");
        let list = render_list(&[policy]);
        let mut lines = list.lines();
        assert_eq!(
            lines.next(),
            Some(
                "NAME                                     DISPLAY NAME  ENABLED  RULES  SPENT                          OPS"
            )
        );
        assert_eq!(
            lines.next(),
            Some(
                "policies/pol_01J9Z8Q4X5N6M7P8R9S0T1V2W3  dev default   yes      2      1500000000000000 (0.0015 ETH)  2"
            )
        );
    }
}
