//! What a session key may do, in the shape SessionKeyAccount enforces, and what it has used.

use alloy::primitives::{Address, FixedBytes, U256};
use serde::{Deserialize, Serialize};

pub use crate::call::SelectorRule;
use crate::{
    call::Callee,
    chain::{contracts::SessionKeyAccount, ops},
};

/// One allowlist entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallPermission {
    /// The contract the key may call.
    pub target: Address,
    /// Which of its functions.
    pub selector: SelectorRule,
    /// The function's canonical signature, when the client named it by one, so the session
    /// echoes what was asked and not only its selector. The chain knows only the selector.
    #[serde(default)]
    pub signature: Option<String>,
    /// Conditions on the call's arguments, all of which must hold; none admits any arguments.
    #[serde(default)]
    pub rules: Vec<ArgumentRule>,
}

/// How an argument rule compares its parameter with its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    /// The parameter equals the one value.
    Equal,
    /// The parameter differs from the one value.
    NotEqual,
    /// The parameter is at most the one value (unsigned).
    AtMost,
    /// The parameter is at least the one value (unsigned).
    AtLeast,
    /// The parameter is one of the values.
    OneOf,
    /// The parameter is the account's own address.
    IsAccount,
}

impl Condition {
    /// Its name in the API.
    pub fn api_name(self) -> &'static str {
        match self {
            Self::Equal => "EQUAL",
            Self::NotEqual => "NOT_EQUAL",
            Self::AtMost => "AT_MOST",
            Self::AtLeast => "AT_LEAST",
            Self::OneOf => "ONE_OF",
            Self::IsAccount => "IS_ACCOUNT",
        }
    }
}

/// A condition on one static parameter of a call, as the account checks it: the 32-byte ABI
/// head word at position `param`, read as an unsigned integer, must be a canonical encoding of
/// a `width`-byte value and meet `condition`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgumentRule {
    /// Zero-based position of the parameter.
    pub param: u8,
    /// The parameter's ABI type, as the function's signature gives it (`address`, `uint256`).
    pub param_type: String,
    /// Its size in bytes: 20 for an address, 32 for a uint256, 1 for a bool.
    pub width: u8,
    /// The comparison.
    pub condition: Condition,
    /// One value, a set for ONE_OF, none for IS_ACCOUNT; each a canonical word of `width`.
    pub values: Vec<U256>,
}

impl ArgumentRule {
    /// Whether the rule holds for calldata `data` of a call from `account`: a parameter the
    /// calldata is too short to hold, or one encoded with bits above its width, fails.
    pub fn holds(&self, data: &[u8], account: Address) -> bool {
        let Some(word) = argument(data, usize::from(self.param)) else {
            return false;
        };
        if !fits(word, self.width) {
            return false;
        }
        let first = self.values.first().copied().unwrap_or_default();
        match self.condition {
            Condition::IsAccount => word == U256::from_be_slice(account.as_slice()),
            Condition::OneOf => self.values.contains(&word),
            Condition::Equal => word == first,
            Condition::NotEqual => word != first,
            Condition::AtMost => word <= first,
            Condition::AtLeast => word >= first,
        }
    }

    fn to_contract(&self) -> SessionKeyAccount::ArgumentRule {
        // The order of SessionKeyAccount.Condition.
        let condition: u8 = match self.condition {
            Condition::Equal => 0,
            Condition::NotEqual => 1,
            Condition::AtMost => 2,
            Condition::AtLeast => 3,
            Condition::OneOf => 4,
            Condition::IsAccount => 5,
        };
        SessionKeyAccount::ArgumentRule {
            param: self.param,
            width: self.width,
            condition,
            values: self.values.iter().map(|value| (*value).into()).collect(),
        }
    }
}

/// The head word of parameter `index` of calldata `data` (after its selector), if present.
pub fn argument(data: &[u8], index: usize) -> Option<U256> {
    let at = index.checked_mul(32)?.checked_add(4)?;
    let word = data.get(at..at.checked_add(32)?)?;
    Some(U256::from_be_slice(word))
}

/// Whether `word` is a canonical encoding of a `width`-byte unsigned value.
pub fn fits(word: U256, width: u8) -> bool {
    width >= 32 || word >> (8 * usize::from(width)) == U256::ZERO
}

/// The kind of asset a spend limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Asset {
    /// The chain's native currency, in wei.
    Native,
    /// An ERC-20 token, in its base units.
    Erc20,
    /// An ERC-721 collection, counted in tokens.
    Erc721,
    /// One id of an ERC-1155 contract, in its units.
    Erc1155,
}

impl Asset {
    /// Its name in the API.
    pub fn api_name(self) -> &'static str {
        match self {
            Self::Native => "NATIVE",
            Self::Erc20 => "ERC20",
            Self::Erc721 => "ERC721",
            Self::Erc1155 => "ERC1155",
        }
    }
}

/// A spend limit on one asset: `total` over the key's life, and `per_period` in each period
/// of `period_secs` seconds, periods aligned to unix time 0 (a day runs from 00:00 UTC).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendLimit {
    /// What it counts.
    pub asset: Asset,
    /// The token contract; zero for native value.
    pub token: Address,
    /// The ERC-1155 id; zero for every other asset.
    pub id: U256,
    /// The most the key may spend over its life.
    pub total: u128,
    /// The most it may spend in one period; only with a period.
    pub per_period: u128,
    /// The period's length in seconds; 0 for none.
    pub period_secs: u32,
}

impl SpendLimit {
    /// The period that holds `time` (unix seconds), if the limit has periods.
    pub fn period_of(&self, time: u64) -> Option<u64> {
        (self.period_secs != 0).then(|| time / u64::from(self.period_secs))
    }

    /// The first and last second of period `index`.
    pub fn period_bounds(&self, index: u64) -> (u64, u64) {
        let length = u64::from(self.period_secs);
        let start = index.saturating_mul(length);
        (start, start.saturating_add(length).saturating_sub(1))
    }

    fn to_contract(&self) -> SessionKeyAccount::SpendLimit {
        // The order of SessionKeyAccount.Asset, where 0 is None.
        let asset: u8 = match self.asset {
            Asset::Native => 1,
            Asset::Erc20 => 2,
            Asset::Erc721 => 3,
            Asset::Erc1155 => 4,
        };
        SessionKeyAccount::SpendLimit {
            asset,
            token: self.token,
            id: self.id,
            total: self.total,
            perPeriod: self.per_period,
            period: self.period_secs,
        }
    }
}

/// A session key's limits, as registered on chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// Calls over the key's life; every call of a batch counts.
    pub call_limit: u32,
    /// Largest native value one call may carry, wei.
    pub value_per_call_limit: u128,
    /// Total native value all calls may carry, wei.
    pub value_budget: u128,
    /// Total worst-case gas fees the key's operations may cost the account, wei.
    pub gas_budget: u128,
    /// The allowlist.
    pub calls: Vec<CallPermission>,
    /// Spend limits, at most one per (token, id).
    #[serde(default)]
    pub limits: Vec<SpendLimit>,
}

/// Why the allowlist refuses a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No entry covers the (target, selector).
    NotListed,
    /// Entries cover it, but the arguments break a rule of each; this is the failing
    /// parameter of the last entry tried, as the account reports it.
    Argument {
        /// The parameter's position.
        param: u8,
    },
}

impl Permissions {
    /// Whether the allowlist lets the key make the call `data` (to `callee`) on `target`
    /// from `account`: an entry without rules, or one whose every rule holds.
    pub fn admits(
        &self,
        target: Address,
        callee: Callee,
        data: &[u8],
        account: Address,
    ) -> Result<(), Refusal> {
        let mut refusal = Refusal::NotListed;
        for permission in self
            .calls
            .iter()
            .filter(|permission| permission.target == target && permission.selector.covers(callee))
        {
            match permission
                .rules
                .iter()
                .find(|rule| !rule.holds(data, account))
            {
                None => return Ok(()),
                Some(rule) => refusal = Refusal::Argument { param: rule.param },
            }
        }
        Err(refusal)
    }

    /// The number of argument rules the account evaluates, at most, for a call on `target`.
    pub fn rules_for(&self, target: Address, callee: Callee) -> usize {
        self.calls
            .iter()
            .filter(|permission| permission.target == target && permission.selector.covers(callee))
            .map(|permission| permission.rules.len())
            .sum()
    }

    /// The asset kind `token` is limited as, if any: native value is token zero.
    pub fn limited_asset(&self, token: Address) -> Option<Asset> {
        self.limits
            .iter()
            .find(|limit| limit.token == token)
            .map(|limit| limit.asset)
    }

    /// The index of the limit on (`token`, `id`), if there is one.
    pub fn limit_index(&self, token: Address, id: U256) -> Option<usize> {
        self.limits
            .iter()
            .position(|limit| limit.token == token && limit.id == id)
    }

    /// Execution gas of `registerSessionKey` with these permissions: every entry, rule, value
    /// and limit is a storage write.
    pub fn registration_call_gas(&self) -> u128 {
        let rules = self.calls.iter().flat_map(|call| &call.rules);
        let values: usize = rules.clone().map(|rule| rule.values.len()).sum();
        ops::REGISTRATION_CALL_GAS
            + ops::REGISTRATION_CALL_GAS_PER_PERMISSION * self.calls.len() as u128
            + ops::REGISTRATION_CALL_GAS_PER_RULE * rules.count() as u128
            + ops::REGISTRATION_CALL_GAS_PER_RULE_VALUE * values as u128
            + ops::REGISTRATION_CALL_GAS_PER_LIMIT * self.limits.len() as u128
    }

    /// The struct `registerSessionKey` takes.
    pub fn to_contract(&self) -> SessionKeyAccount::SessionPermissions {
        SessionKeyAccount::SessionPermissions {
            callLimit: self.call_limit,
            valuePerCallLimit: self.value_per_call_limit,
            valueBudget: self.value_budget,
            gasBudget: self.gas_budget,
            calls: self
                .calls
                .iter()
                .map(|permission| {
                    let (selector, any) = match permission.selector {
                        SelectorRule::Exact(selector) => (selector, false),
                        SelectorRule::Any => (FixedBytes::ZERO, true),
                    };
                    SessionKeyAccount::CallPermission {
                        target: permission.target,
                        selector,
                        anySelector: any,
                        rules: permission
                            .rules
                            .iter()
                            .map(ArgumentRule::to_contract)
                            .collect(),
                    }
                })
                .collect(),
            limits: self.limits.iter().map(SpendLimit::to_contract).collect(),
        }
    }
}

/// What a session's intents have used of its limits: spent on chain, or reserved by intents
/// on their way there. The account spends limits at validation, so an intent that reverts in
/// execution still counts; one that never validates is released.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Calls.
    pub calls: u32,
    /// Native value, wei.
    pub value: u128,
    /// Worst-case gas fees, wei.
    pub gas: u128,
    /// What each spend limit has used, in the order of `Permissions::limits`; shorter when
    /// the last limits have used nothing.
    #[serde(default)]
    pub limits: Vec<LimitUsage>,
}

/// What one spend limit has used: in all, and in its latest period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitUsage {
    /// Spent over the key's life.
    pub spent: u128,
    /// The latest period anything was spent in.
    pub period: u64,
    /// Spent in that period.
    pub period_spent: u128,
}

impl LimitUsage {
    /// What is spent in period `index`: nothing in a period later than the latest.
    pub fn spent_in(&self, index: u64) -> u128 {
        if index == self.period {
            self.period_spent
        } else {
            0
        }
    }
}

impl Usage {
    /// The usage of limit `index`.
    pub fn limit(&self, index: usize) -> LimitUsage {
        self.limits.get(index).copied().unwrap_or_default()
    }

    /// `self + other`, or `None` if a counter would overflow. A limit's period counter moves
    /// to the later period, starting from zero there, as the account's does.
    pub fn checked_add(&self, other: &Usage) -> Option<Usage> {
        let len = self.limits.len().max(other.limits.len());
        let limits = (0..len)
            .map(|index| {
                let (mine, theirs) = (self.limit(index), other.limit(index));
                let (period, period_spent) = match mine.period.cmp(&theirs.period) {
                    std::cmp::Ordering::Less => (theirs.period, theirs.period_spent),
                    std::cmp::Ordering::Equal => (
                        mine.period,
                        mine.period_spent.checked_add(theirs.period_spent)?,
                    ),
                    std::cmp::Ordering::Greater => (mine.period, mine.period_spent),
                };
                Some(LimitUsage {
                    spent: mine.spent.checked_add(theirs.spent)?,
                    period,
                    period_spent,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Usage {
            calls: self.calls.checked_add(other.calls)?,
            value: self.value.checked_add(other.value)?,
            gas: self.gas.checked_add(other.gas)?,
            limits,
        })
    }

    /// `self - other`, never below zero; a period counter gives back only what was reserved
    /// in the same period.
    pub fn saturating_sub(&self, other: &Usage) -> Usage {
        let limits = (0..self.limits.len())
            .map(|index| {
                let (mine, theirs) = (self.limit(index), other.limit(index));
                let period_spent = if mine.period == theirs.period {
                    mine.period_spent.saturating_sub(theirs.period_spent)
                } else {
                    mine.period_spent
                };
                LimitUsage {
                    spent: mine.spent.saturating_sub(theirs.spent),
                    period: mine.period,
                    period_spent,
                }
            })
            .collect();
        Usage {
            calls: self.calls.saturating_sub(other.calls),
            value: self.value.saturating_sub(other.value),
            gas: self.gas.saturating_sub(other.gas),
            limits,
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::fixed_bytes;

    use super::*;

    fn permissions(calls: Vec<CallPermission>) -> Permissions {
        Permissions {
            call_limit: 3,
            value_per_call_limit: 0,
            value_budget: 0,
            gas_budget: 1,
            calls,
            limits: Vec::new(),
        }
    }

    #[test]
    fn allowlist_matches_exact_selectors_and_wildcards_per_target() {
        let game = Address::repeat_byte(1);
        let shop = Address::repeat_byte(2);
        let mint = fixed_bytes!("40c10f19");
        let burn = fixed_bytes!("42966c68");
        let rules = permissions(vec![
            CallPermission {
                target: game,
                selector: SelectorRule::Exact(mint),
                signature: None,
                rules: Vec::new(),
            },
            CallPermission {
                target: shop,
                selector: SelectorRule::Any,
                signature: None,
                rules: Vec::new(),
            },
        ]);
        let allows = |target, selector| {
            rules
                .admits(
                    target,
                    Callee::Function(selector),
                    selector.as_slice(),
                    game,
                )
                .is_ok()
        };
        assert!(allows(game, mint));
        assert!(!allows(game, burn));
        assert!(allows(shop, burn));
        assert!(!allows(Address::repeat_byte(3), mint));
    }

    fn rule(param: u8, width: u8, condition: Condition, values: &[u64]) -> ArgumentRule {
        ArgumentRule {
            param,
            param_type: "uint256".into(),
            width,
            condition,
            values: values.iter().map(|value| U256::from(*value)).collect(),
        }
    }

    /// `selector ‖ words`, each word a big-endian uint256.
    fn call(selector: FixedBytes<4>, words: &[U256]) -> Vec<u8> {
        let mut data = selector.to_vec();
        for word in words {
            data.extend_from_slice(&word.to_be_bytes::<32>());
        }
        data
    }

    #[test]
    fn rules_of_an_entry_combine_with_and_and_entries_with_or() {
        let token = Address::repeat_byte(7);
        let account = Address::repeat_byte(0xaa);
        let transfer = fixed_bytes!("a9059cbb");
        let entry = |rules| CallPermission {
            target: token,
            selector: SelectorRule::Exact(transfer),
            signature: None,
            rules,
        };
        let treasury = U256::from(0x7e);
        let rules = permissions(vec![
            entry(vec![
                rule(0, 20, Condition::Equal, &[0x7e]),
                rule(1, 32, Condition::AtMost, &[100]),
            ]),
            entry(vec![ArgumentRule {
                condition: Condition::IsAccount,
                values: Vec::new(),
                ..rule(0, 20, Condition::IsAccount, &[])
            }]),
        ]);
        let check = |words: &[U256]| {
            rules.admits(
                token,
                Callee::Function(transfer),
                &call(transfer, words),
                account,
            )
        };
        assert_eq!(check(&[treasury, U256::from(100)]), Ok(()));
        // The first entry fails on the amount, the second (tried last) on the recipient.
        assert_eq!(
            check(&[treasury, U256::from(101)]),
            Err(Refusal::Argument { param: 0 })
        );
        let to_account = U256::from_be_slice(account.as_slice());
        assert_eq!(check(&[to_account, U256::from(u64::MAX)]), Ok(()));
        // Dirty bits above the address are not the account, nor the treasury.
        let dirty = to_account | (U256::from(1) << 200);
        assert!(check(&[dirty, U256::from(1)]).is_err());
        // Too short for the parameter.
        assert!(check(&[treasury]).is_err());
        assert_eq!(
            rules.admits(
                token,
                Callee::Function(fixed_bytes!("095ea7b3")),
                &[],
                account
            ),
            Err(Refusal::NotListed)
        );
    }

    #[test]
    fn each_condition_compares_the_word_unsigned() {
        let word = |value: u64| call(FixedBytes::ZERO, &[U256::from(value)]);
        let holds = |rule: ArgumentRule, value| rule.holds(&word(value), Address::ZERO);
        assert!(holds(rule(0, 32, Condition::NotEqual, &[5]), 4));
        assert!(!holds(rule(0, 32, Condition::NotEqual, &[5]), 5));
        assert!(holds(rule(0, 32, Condition::AtLeast, &[5]), 5));
        assert!(!holds(rule(0, 32, Condition::AtLeast, &[5]), 4));
        assert!(holds(rule(0, 32, Condition::OneOf, &[1, 3, 9]), 9));
        assert!(!holds(rule(0, 32, Condition::OneOf, &[1, 3, 9]), 2));
        // A uint8 parameter holding 256 is not canonical.
        assert!(!holds(rule(0, 1, Condition::AtLeast, &[0]), 256));
        assert!(holds(rule(0, 1, Condition::AtLeast, &[0]), 255));
    }

    #[test]
    fn usage_moves_a_limit_to_the_later_period_and_releases_only_its_own() {
        let day = |period, spent| LimitUsage {
            spent,
            period,
            period_spent: spent,
        };
        let used = Usage {
            limits: vec![day(10, 30)],
            ..Usage::default()
        };
        let same_day = Usage {
            limits: vec![day(10, 5)],
            ..Usage::default()
        };
        let next_day = Usage {
            limits: vec![day(11, 7)],
            ..Usage::default()
        };
        let both = used.checked_add(&same_day).unwrap();
        assert_eq!(
            both.limit(0),
            LimitUsage {
                spent: 35,
                period: 10,
                period_spent: 35
            }
        );
        let rolled = both.checked_add(&next_day).unwrap();
        assert_eq!(
            rolled.limit(0),
            LimitUsage {
                spent: 42,
                period: 11,
                period_spent: 7
            }
        );
        // Giving back yesterday's reservation frees its total, not today's allowance.
        let released = rolled.saturating_sub(&same_day);
        assert_eq!(
            released.limit(0),
            LimitUsage {
                spent: 37,
                period: 11,
                period_spent: 7
            }
        );
        assert_eq!(rolled.limit(3), LimitUsage::default());
        assert_eq!(used.limit(0).spent_in(11), 0);
    }

    #[test]
    fn contract_form_marks_wildcards() {
        let target = Address::repeat_byte(9);
        let form = permissions(vec![CallPermission {
            target,
            selector: SelectorRule::Any,
            signature: None,
            rules: Vec::new(),
        }])
        .to_contract();
        assert_eq!(form.calls.len(), 1);
        assert!(form.calls[0].anySelector);
        assert_eq!(form.callLimit, 3);
    }

    #[test]
    fn usage_adds_checked_and_subtracts_saturating() {
        let a = Usage {
            calls: 1,
            value: 2,
            gas: 3,
            limits: Vec::new(),
        };
        assert_eq!(
            a.checked_add(&a),
            Some(Usage {
                calls: 2,
                value: 4,
                gas: 6,
                limits: Vec::new(),
            })
        );
        assert_eq!(
            a.checked_add(&Usage {
                calls: u32::MAX,
                ..a.clone()
            }),
            None
        );
        assert_eq!(Usage::default().saturating_sub(&a), Usage::default());
    }
}
