//! The off-chain mirror of SessionKeyAccount's session-key rules: an intent is checked against its
//! session before latchkey builds, signs or relays anything, so a request the account would
//! refuse never costs gas. The contract stays the authority; this check only answers early
//! and with a precise reason.

use alloy::primitives::{Address, FixedBytes, U256};

use crate::{
    call::Interaction,
    session::{
        Asset, LimitUsage, Refusal, Session, Usage,
        spend::{self, SpendError},
    },
};

/// Why an intent breaks its session's rules. Each names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The window has not opened yet.
    #[error("the session's window opens after {valid_after} (unix seconds); it is {now} now")]
    WindowNotOpen {
        /// Start of the window (exclusive).
        valid_after: u64,
        /// The current time.
        now: u64,
    },
    /// The window closes too soon for the operation to land safely.
    #[error(
        "the session's window closes at {valid_until} (unix seconds), within {margin_secs} s of now ({now}); create a new session"
    )]
    WindowClosing {
        /// End of the window.
        valid_until: u64,
        /// The refusal margin.
        margin_secs: u64,
        /// The current time.
        now: u64,
    },
    /// An intent needs at least one interaction.
    #[error("an intent needs at least one interaction")]
    NoInteractions,
    /// The account itself and the EntryPoint are never valid targets for a session key.
    #[error(
        "interactions[{index}]: a session key may never call {target} (the account or the EntryPoint)"
    )]
    ForbiddenTarget {
        /// Index of the interaction.
        index: usize,
        /// Its target.
        target: Address,
    },
    /// Calldata of one to three bytes has no selector.
    #[error("interactions[{index}]: calldata of {len} bytes has no 4-byte selector")]
    MalformedCalldata {
        /// Index of the interaction.
        index: usize,
        /// The calldata length.
        len: usize,
    },
    /// The allowlist does not cover the call.
    #[error("interactions[{index}]: the session may not call selector {selector} on {target}")]
    CallNotAllowed {
        /// Index of the interaction.
        index: usize,
        /// Its target.
        target: Address,
        /// Its selector (0x00000000 for a plain transfer).
        selector: FixedBytes<4>,
    },
    /// The call's arguments break a rule of every entry that lists it.
    #[error(
        "interactions[{index}]: argument {param} of selector {selector} on {target} breaks the session's argument rules"
    )]
    ArgumentNotAllowed {
        /// Index of the interaction.
        index: usize,
        /// Its target.
        target: Address,
        /// Its selector.
        selector: FixedBytes<4>,
        /// The failing parameter (of the last entry tried, as the account reports it).
        param: u8,
    },
    /// A call to a limited token that no limit can count.
    #[error("interactions[{index}]: a spend limit guards {token}, and {error}")]
    SpendNotCountable {
        /// Index of the interaction.
        index: usize,
        /// The token.
        token: Address,
        /// Why.
        error: SpendError,
    },
    /// Not enough left of a spend limit's total.
    #[error(
        "the intent spends {} of {} {} id {}, but permissions.limits[{}] has {} left in all",
        .0.requested, .0.asset, .0.token, .0.id, .0.limit, .0.left
    )]
    SpendLimitExceeded(Box<LimitRefusal>),
    /// Not enough left of a spend limit's allowance in the current period.
    #[error(
        "the intent spends {} of {} {} id {}, but permissions.limits[{}] has {} left in the period that ends at {} (unix seconds)",
        .0.requested, .0.asset, .0.token, .0.id, .0.limit, .0.left, .0.period_end
    )]
    PeriodAllowanceExceeded(Box<LimitRefusal>),
    /// The current period of a periodic limit the intent spends ends too soon for the
    /// operation to land within it, where the account charges it.
    #[error(
        "the current period of permissions.limits[{limit}] ends at {period_end} (unix seconds), within {margin_secs} s of now ({now}); retry in the next period"
    )]
    PeriodEnding {
        /// Index of the limit.
        limit: usize,
        /// The period's last second.
        period_end: u64,
        /// The refusal margin.
        margin_secs: u64,
        /// The current time.
        now: u64,
    },
    /// One call carries more value than the per-call limit.
    #[error(
        "interactions[{index}]: value {value} wei is over the session's per-call limit of {limit} wei"
    )]
    ValuePerCallExceeded {
        /// Index of the interaction.
        index: usize,
        /// The value.
        value: U256,
        /// The per-call limit.
        limit: u128,
    },
    /// Not enough calls left.
    #[error("the intent makes {requested} calls but the session has {left} left of its call limit")]
    CallLimitReached {
        /// Calls the intent makes.
        requested: u32,
        /// Calls left, counting intents already on their way.
        left: u32,
    },
    /// Not enough value budget left.
    #[error(
        "the intent sends {requested} wei but the session has {left} wei left of its value budget"
    )]
    ValueBudgetExceeded {
        /// Value the intent sends.
        requested: U256,
        /// Budget left.
        left: u128,
    },
    /// Not enough gas budget left.
    #[error(
        "the operation may cost up to {requested} wei in fees but the session has {left} wei left of its gas budget"
    )]
    GasBudgetExceeded {
        /// Worst-case fees of the operation.
        requested: u128,
        /// Budget left.
        left: u128,
    },
}

impl RuleError {
    /// The rule that refused the intent, as a short stable name for clients and metrics.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::WindowNotOpen { .. } | Self::WindowClosing { .. } => "window",
            Self::NoInteractions | Self::MalformedCalldata { .. } => "interactions",
            Self::ForbiddenTarget { .. } | Self::CallNotAllowed { .. } => "allowlist",
            Self::ArgumentNotAllowed { .. } => "argument_rules",
            Self::SpendNotCountable { .. }
            | Self::SpendLimitExceeded(_)
            | Self::PeriodAllowanceExceeded(_)
            | Self::PeriodEnding { .. } => "spend_limits",
            Self::ValuePerCallExceeded { .. } => "value_per_call_limit",
            Self::CallLimitReached { .. } => "call_limit",
            Self::ValueBudgetExceeded { .. } => "value_budget",
            Self::GasBudgetExceeded { .. } => "gas_budget",
        }
    }

    /// How long until a refused periodic allowance comes back, in seconds: the rest of its
    /// period. `None` for every other refusal.
    pub fn retry_after_secs(&self) -> Option<u64> {
        let (period_end, now) = match self {
            Self::PeriodAllowanceExceeded(refusal) => (refusal.period_end, refusal.now),
            Self::PeriodEnding {
                period_end, now, ..
            } => (*period_end, *now),
            _ => return None,
        };
        Some(period_end.saturating_add(1).saturating_sub(now).max(1))
    }

    /// The stable machine-readable reason of the refusal.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::WindowNotOpen { .. } => "SESSION_WINDOW_NOT_OPEN",
            Self::WindowClosing { .. } => "SESSION_WINDOW_CLOSED",
            Self::NoInteractions => "NO_INTERACTIONS",
            Self::MalformedCalldata { .. } => "CALLDATA_MALFORMED",
            Self::ForbiddenTarget { .. } => "CALL_FORBIDDEN",
            Self::CallNotAllowed { .. } => "CALL_NOT_ALLOWED",
            Self::ArgumentNotAllowed { .. } => "ARGUMENT_NOT_ALLOWED",
            Self::SpendNotCountable { .. } => "SPEND_NOT_COUNTABLE",
            Self::SpendLimitExceeded(_) => "SPEND_LIMIT_EXCEEDED",
            Self::PeriodAllowanceExceeded(_) => "PERIOD_ALLOWANCE_EXCEEDED",
            Self::PeriodEnding { .. } => "PERIOD_ENDING",
            Self::ValuePerCallExceeded { .. } => "VALUE_PER_CALL_EXCEEDED",
            Self::CallLimitReached { .. } => "CALL_LIMIT_REACHED",
            Self::ValueBudgetExceeded { .. } => "VALUE_BUDGET_EXCEEDED",
            Self::GasBudgetExceeded { .. } => "GAS_BUDGET_EXCEEDED",
        }
    }
}

/// Which spend limit refused an intent, and the numbers it was decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRefusal {
    /// Index of the limit in the session's permissions.
    pub limit: usize,
    /// The asset kind's API name.
    pub asset: &'static str,
    /// The token (zero for native value).
    pub token: Address,
    /// The ERC-1155 id (0 otherwise).
    pub id: U256,
    /// What the intent spends.
    pub requested: U256,
    /// What is left, counting intents already on their way: in all, or in the period.
    pub left: u128,
    /// The last second of the period the intent was charged to (0 for a total).
    pub period_end: u64,
    /// The time the check ran at.
    pub now: u64,
}

/// The clock and margin a check runs with.
#[derive(Debug, Clone, Copy)]
pub struct CheckContext {
    /// Now, unix seconds.
    pub now: u64,
    /// Refuse when `valid_until`, or the end of the current period of a periodic limit the
    /// intent spends, is closer than this.
    pub window_margin_secs: u64,
    /// Addresses no session key may call: the account itself and the EntryPoint.
    pub forbidden: [Address; 2],
    /// The deadline the operation gets unless a periodic limit it spends needs an earlier
    /// one (unix seconds).
    pub deadline: u64,
}

/// What an admitted intent reserves, and the deadline its operation must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admission {
    /// What it uses of the session's limits.
    pub usage: Usage,
    /// Its operation's deadline: the context's, or the end of the current period of a
    /// periodic limit it spends, whichever is first. The account charges a periodic limit
    /// to the period that holds the deadline and makes the op valid only from that period's
    /// start, so an operation must end in the period it was admitted in.
    pub deadline: u64,
    /// How many spend-limit charges the account will make, to size validation gas.
    pub charges: usize,
}

/// The window check alone: intents need it before an operation is even built.
pub fn check_window(session: &Session, ctx: &CheckContext) -> Result<(), RuleError> {
    // The EntryPoint wants valid_after < block.timestamp; a block mined now may carry `now`.
    if ctx.now <= session.valid_after {
        return Err(RuleError::WindowNotOpen {
            valid_after: session.valid_after,
            now: ctx.now,
        });
    }
    if ctx.now.saturating_add(ctx.window_margin_secs) > session.valid_until {
        return Err(RuleError::WindowClosing {
            valid_until: session.valid_until,
            margin_secs: ctx.window_margin_secs,
            now: ctx.now,
        });
    }
    Ok(())
}

/// Checks `interactions`, costing at most `gas_cost` wei in fees, against `session`'s rules
/// and what its intents have used. Returns what the intent uses, to reserve.
pub fn check_intent(
    session: &Session,
    interactions: &[Interaction],
    gas_cost: u128,
    ctx: &CheckContext,
) -> Result<Admission, RuleError> {
    check_window(session, ctx)?;
    if interactions.is_empty() {
        return Err(RuleError::NoInteractions);
    }
    let rules = &session.permissions;
    let mut total_value = U256::ZERO;
    let mut amounts = vec![U256::ZERO; rules.limits.len()];
    let mut charges = 0;
    for (index, interaction) in interactions.iter().enumerate() {
        let target = interaction.to;
        if ctx.forbidden.contains(&target) || target == Address::ZERO {
            return Err(RuleError::ForbiddenTarget { index, target });
        }
        let Some(callee) = interaction.callee() else {
            return Err(RuleError::MalformedCalldata {
                index,
                len: interaction.data.len(),
            });
        };
        match rules.admits(target, callee, &interaction.data, session.account) {
            Ok(()) => {}
            Err(Refusal::NotListed) => {
                return Err(RuleError::CallNotAllowed {
                    index,
                    target,
                    selector: callee.selector(),
                });
            }
            Err(Refusal::Argument { param }) => {
                return Err(RuleError::ArgumentNotAllowed {
                    index,
                    target,
                    selector: callee.selector(),
                    param,
                });
            }
        }
        if interaction.value > U256::from(rules.value_per_call_limit) {
            return Err(RuleError::ValuePerCallExceeded {
                index,
                value: interaction.value,
                limit: rules.value_per_call_limit,
            });
        }
        total_value = total_value.saturating_add(interaction.value);
        if let Some(asset) = rules.limited_asset(target) {
            let spends =
                spend::spends(asset, &interaction.data, session.account).map_err(|error| {
                    RuleError::SpendNotCountable {
                        index,
                        token: target,
                        error,
                    }
                })?;
            for spent in spends {
                if let Some(limit) = rules.limit_index(target, spent.id) {
                    amounts[limit] = amounts[limit].saturating_add(spent.amount);
                    charges += usize::from(spent.amount != U256::ZERO);
                }
            }
        }
    }
    if let Some(limit) = rules.limit_index(Address::ZERO, U256::ZERO) {
        amounts[limit] = total_value;
        charges += usize::from(total_value != U256::ZERO);
    }
    let (limits, deadline) = check_spend_limits(session, &amounts, ctx)?;

    let used = &session.usage;
    let calls_left = rules.call_limit.saturating_sub(used.calls);
    let calls = u32::try_from(interactions.len()).unwrap_or(u32::MAX);
    if calls > calls_left {
        return Err(RuleError::CallLimitReached {
            requested: calls,
            left: calls_left,
        });
    }
    let value_left = rules.value_budget.saturating_sub(used.value);
    let value = u128::try_from(total_value)
        .ok()
        .filter(|value| *value <= value_left);
    let Some(value) = value else {
        return Err(RuleError::ValueBudgetExceeded {
            requested: total_value,
            left: value_left,
        });
    };
    let gas_left = rules.gas_budget.saturating_sub(used.gas);
    if gas_cost > gas_left {
        return Err(RuleError::GasBudgetExceeded {
            requested: gas_cost,
            left: gas_left,
        });
    }
    Ok(Admission {
        usage: Usage {
            calls,
            value,
            gas: gas_cost,
            limits,
        },
        deadline,
        charges,
    })
}

/// Checks what the intent spends of each limit (`amounts`, in the order of the session's
/// limits) against what is left, in all and in the period it is charged to. Returns the
/// usage to reserve and the operation's deadline.
fn check_spend_limits(
    session: &Session,
    amounts: &[U256],
    ctx: &CheckContext,
) -> Result<(Vec<LimitUsage>, u64), RuleError> {
    let limits = &session.permissions.limits;
    let spent = |index: &usize| amounts[*index] != U256::ZERO;
    // Every periodic limit the intent spends must be charged to the current period, so the
    // operation must end within it, and the period must leave it time to land, as the
    // session's window must.
    let mut deadline = ctx.deadline;
    for index in (0..limits.len()).filter(spent) {
        let limit = &limits[index];
        let Some(period) = limit.period_of(ctx.now) else {
            continue;
        };
        let period_end = limit.period_bounds(period).1;
        if ctx.now.saturating_add(ctx.window_margin_secs) > period_end {
            return Err(RuleError::PeriodEnding {
                limit: index,
                period_end,
                margin_secs: ctx.window_margin_secs,
                now: ctx.now,
            });
        }
        deadline = deadline.min(period_end);
    }
    let mut usage = vec![LimitUsage::default(); limits.len()];
    for index in (0..limits.len()).filter(spent) {
        let limit = &limits[index];
        let requested = amounts[index];
        let used = session.usage.limit(index);
        let asset = Asset::api_name(limit.asset);
        let left = limit.total.saturating_sub(used.spent);
        let Some(amount) = u128::try_from(requested)
            .ok()
            .filter(|amount| *amount <= left)
        else {
            return Err(RuleError::SpendLimitExceeded(Box::new(LimitRefusal {
                limit: index,
                asset,
                token: limit.token,
                id: limit.id,
                requested,
                left,
                period_end: 0,
                now: ctx.now,
            })));
        };
        usage[index].spent = amount;
        let Some(period) = limit.period_of(deadline) else {
            continue;
        };
        // A period before the latest one spent in can no longer be charged at all.
        let period_left = if period < used.period {
            0
        } else {
            limit.per_period.saturating_sub(used.spent_in(period))
        };
        if amount > period_left {
            return Err(RuleError::PeriodAllowanceExceeded(Box::new(LimitRefusal {
                limit: index,
                asset,
                token: limit.token,
                id: limit.id,
                requested,
                left: period_left,
                period_end: limit.period_bounds(period).1,
                now: ctx.now,
            })));
        }
        usage[index].period = period;
        usage[index].period_spent = amount;
    }
    // Trailing limits the intent does not touch need no entry.
    while usage
        .last()
        .is_some_and(|last| *last == LimitUsage::default())
    {
        usage.pop();
    }
    Ok((usage, deadline))
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Bytes, fixed_bytes};

    use super::*;
    use crate::{
        intent::IntentId,
        session::{
            CallPermission, KeyCustody, Permissions, SelectorRule, SessionId, SessionStatus,
        },
    };

    const GAME: Address = Address::repeat_byte(0x11);
    const ACCOUNT: Address = Address::repeat_byte(0xaa);
    const ENTRY_POINT: Address = Address::repeat_byte(0xee);
    const MINT: FixedBytes<4> = fixed_bytes!("40c10f19");

    fn session() -> Session {
        Session {
            tenant: Default::default(),
            id: SessionId::generate(),
            account: ACCOUNT,
            owner: Address::repeat_byte(1),
            owner_p256: None,
            salt: U256::ZERO,
            chain_id: 31337,
            key: Address::repeat_byte(2),
            key_p256: None,
            custody: KeyCustody::Held,
            valid_after: 1_000,
            valid_until: 2_000,
            permissions: Permissions {
                call_limit: 3,
                value_per_call_limit: 10,
                value_budget: 15,
                gas_budget: 100,
                calls: vec![
                    CallPermission {
                        target: GAME,
                        selector: SelectorRule::Exact(MINT),
                        signature: None,
                        rules: Vec::new(),
                    },
                    CallPermission {
                        target: Address::repeat_byte(0x22),
                        selector: SelectorRule::Exact(FixedBytes::ZERO),
                        signature: None,
                        rules: Vec::new(),
                    },
                ],
                limits: Vec::new(),
            },
            policy: None,
            client_access: Default::default(),
            status: SessionStatus::Active,
            registration_intent: IntentId::generate(),
            revocation_intent: None,
            failure_reason: None,
            usage: Usage::default(),
            next_intent_lane: 0,
            revision: 1,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    fn ctx(now: u64) -> CheckContext {
        CheckContext {
            now,
            window_margin_secs: 30,
            forbidden: [ACCOUNT, ENTRY_POINT],
            deadline: now + 60,
        }
    }

    fn mint(value: u64) -> Interaction {
        Interaction {
            to: GAME,
            value: U256::from(value),
            data: Bytes::from(MINT.to_vec()),
            function: None,
        }
    }

    #[test]
    fn an_allowed_intent_reports_what_it_uses() {
        let admission = check_intent(&session(), &[mint(4), mint(5)], 7, &ctx(1_500)).unwrap();
        assert_eq!(admission.deadline, 1_560);
        assert_eq!(
            admission.usage,
            Usage {
                calls: 2,
                value: 9,
                gas: 7,
                limits: Vec::new(),
            }
        );
    }

    #[test]
    fn the_window_is_exclusive_at_the_start_and_keeps_a_margin_at_the_end() {
        let s = session();
        assert!(matches!(
            check_window(&s, &ctx(1_000)),
            Err(RuleError::WindowNotOpen { .. })
        ));
        assert!(check_window(&s, &ctx(1_001)).is_ok());
        assert!(check_window(&s, &ctx(1_970)).is_ok());
        assert!(matches!(
            check_window(&s, &ctx(1_971)),
            Err(RuleError::WindowClosing { .. })
        ));
    }

    #[test]
    fn a_plain_transfer_entry_admits_empty_calldata_only_as_the_account_does() {
        let s = session();
        let transfer = Interaction {
            to: Address::repeat_byte(0x22),
            value: U256::from(1),
            data: Bytes::new(),
            function: None,
        };
        assert!(check_intent(&s, std::slice::from_ref(&transfer), 1, &ctx(1_500)).is_ok());
        let zero_prefixed = Interaction {
            data: Bytes::from(vec![0, 0, 0, 0, 0xde, 0xad]),
            ..transfer
        };
        let error = check_intent(&s, &[zero_prefixed], 1, &ctx(1_500)).unwrap_err();
        assert!(
            matches!(error, RuleError::CallNotAllowed { index: 0, .. }),
            "{error}"
        );
    }

    #[test]
    fn the_allowlist_refuses_other_selectors_targets_and_forbidden_ones() {
        let s = session();
        let mut burn = mint(0);
        burn.data = Bytes::from(vec![0x42, 0x96, 0x6c, 0x68]);
        let error = check_intent(&s, &[mint(0), burn], 1, &ctx(1_500)).unwrap_err();
        assert_eq!(error.rule(), "allowlist");
        assert!(matches!(error, RuleError::CallNotAllowed { index: 1, .. }));

        let mut to_account = mint(0);
        to_account.to = ACCOUNT;
        assert!(matches!(
            check_intent(&s, &[to_account], 1, &ctx(1_500)),
            Err(RuleError::ForbiddenTarget { index: 0, .. })
        ));

        let transfer = Interaction {
            to: Address::repeat_byte(0x22),
            value: U256::from(1),
            data: Bytes::new(),
            function: None,
        };
        assert!(check_intent(&s, &[transfer], 1, &ctx(1_500)).is_ok());

        let mut short = mint(0);
        short.data = Bytes::from(vec![1, 2]);
        assert!(matches!(
            check_intent(&s, &[short], 1, &ctx(1_500)),
            Err(RuleError::MalformedCalldata { len: 2, .. })
        ));
    }

    #[test]
    fn limits_count_what_earlier_intents_used() {
        let mut s = session();
        assert!(matches!(
            check_intent(&s, &[mint(11)], 1, &ctx(1_500)),
            Err(RuleError::ValuePerCallExceeded { limit: 10, .. })
        ));
        s.usage = Usage {
            calls: 2,
            value: 10,
            gas: 95,
            limits: Vec::new(),
        };
        assert!(matches!(
            check_intent(&s, &[mint(0), mint(0)], 1, &ctx(1_500)),
            Err(RuleError::CallLimitReached {
                requested: 2,
                left: 1
            })
        ));
        assert!(matches!(
            check_intent(&s, &[mint(6)], 1, &ctx(1_500)),
            Err(RuleError::ValueBudgetExceeded { left: 5, .. })
        ));
        assert!(matches!(
            check_intent(&s, &[mint(5)], 6, &ctx(1_500)),
            Err(RuleError::GasBudgetExceeded {
                requested: 6,
                left: 5
            })
        ));
        assert!(check_intent(&s, &[mint(5)], 5, &ctx(1_500)).is_ok());
        assert!(matches!(
            check_intent(&s, &[], 1, &ctx(1_500)),
            Err(RuleError::NoInteractions)
        ));
    }

    #[test]
    fn a_periodic_allowance_caps_the_deadline_and_counts_only_its_own_period() {
        use crate::session::{Asset, LimitUsage, SpendLimit};
        let gold = Address::repeat_byte(0x60);
        let mut s = session();
        s.permissions.calls.push(CallPermission {
            target: gold,
            selector: SelectorRule::Exact(fixed_bytes!("a9059cbb")),
            signature: None,
            rules: Vec::new(),
        });
        s.permissions.limits.push(SpendLimit {
            asset: Asset::Erc20,
            token: gold,
            id: U256::ZERO,
            total: 1_000,
            per_period: 100,
            period_secs: 100,
        });
        let transfer = |amount: u64| {
            let mut data = fixed_bytes!("a9059cbb").to_vec();
            data.extend_from_slice(&U256::from(0x77).to_be_bytes::<32>());
            data.extend_from_slice(&U256::from(amount).to_be_bytes::<32>());
            Interaction {
                to: gold,
                value: U256::ZERO,
                data: Bytes::from(data),
                function: None,
            }
        };
        // 1,550 is in period 15, which ends at 1,599: before the context's deadline.
        s.usage.limits = vec![LimitUsage {
            spent: 90,
            period: 15,
            period_spent: 90,
        }];
        let error = check_intent(&s, &[transfer(20)], 1, &ctx(1_550)).unwrap_err();
        let RuleError::PeriodAllowanceExceeded(refusal) = &error else {
            panic!("{error}");
        };
        assert_eq!((refusal.left, refusal.period_end), (10, 1_599));
        assert_eq!(error.retry_after_secs(), Some(50));
        assert_eq!(error.reason(), "PERIOD_ALLOWANCE_EXCEEDED");
        let admission = check_intent(&s, &[transfer(6), transfer(4)], 1, &ctx(1_550)).unwrap();
        assert_eq!(admission.deadline, 1_599);
        assert_eq!(
            admission.usage.limits,
            [LimitUsage {
                spent: 10,
                period: 15,
                period_spent: 10,
            }]
        );
        assert_eq!(admission.charges, 2);
        // What an earlier period spent does not count in a later one, but counts in all.
        s.usage.limits[0].period = 14;
        s.usage.limits[0].spent = 990;
        assert!(check_intent(&s, &[transfer(10)], 1, &ctx(1_550)).is_ok());
        let error = check_intent(&s, &[transfer(11)], 1, &ctx(1_550)).unwrap_err();
        assert!(
            matches!(&error, RuleError::SpendLimitExceeded(refusal) if refusal.left == 10),
            "{error}"
        );
        // Within the margin of the period's end, the intent could not land in time.
        let error = check_intent(&s, &[transfer(1)], 1, &ctx(1_570)).unwrap_err();
        assert_eq!(
            error,
            RuleError::PeriodEnding {
                limit: 0,
                period_end: 1_599,
                margin_secs: 30,
                now: 1_570,
            }
        );
        assert_eq!(error.retry_after_secs(), Some(30));
        // A mint spends nothing, and keeps the context's deadline.
        assert_eq!(
            check_intent(&s, &[mint(0)], 1, &ctx(1_550))
                .unwrap()
                .deadline,
            1_610
        );
    }
}
