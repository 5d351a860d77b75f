//! The daemon's off-chain check and SessionKeyAccount agree: random batches of token
//! transfers, approvals, mints and value transfers, some within a session's argument rules
//! and spend limits and some past them, across period boundaries, are judged by both. The
//! account judges each in a real `validateUserOp` (an `eth_call` from the EntryPoint); what
//! both admit is then relayed through `handleOps`, so the account's counters and the
//! daemon's usage move together, and they are compared as they go.
//!
//! `AGREEMENT_SEED=<n>` replays a run; every run prints its seed.

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    signers::local::PrivateKeySigner,
    sol,
    sol_types::SolCall,
};
use latchkey::{
    call::{Interaction, SelectorRule},
    chain::{
        contracts::SessionKeyAccount,
        ops::{ContractSigner, intent_call_data, nonce_key, registration_call_data, session_nonce},
        signature::{
            owner_signature, session_operation_hash, session_signature, sign_hash, sign_personal,
        },
    },
    intent::IntentId,
    session::{
        ArgumentRule, Asset, CallPermission, Condition, KeyCustody, Permissions, Session,
        SessionId, SessionStatus, SpendLimit, Usage,
        rules::{CheckContext, check_intent},
    },
};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::harness::{TestChain, user_operation_event};

sol! {
    function transfer(address to, uint256 amount);
    function approve(address spender, uint256 amount);
    function transferFrom(address from, address to, uint256 amount);
    function mint(address to, uint256 id, uint256 amount);
    function safeTransferFrom(address from, address to, uint256 id, uint256 amount, bytes data);
}

const CASES: usize = 60;
/// A short period, so a run crosses several.
const PERIOD: u32 = 60;
const TREASURY: Address = Address::repeat_byte(0x7e);
const PAYEE: Address = Address::repeat_byte(0x5a);
const REGISTRATION: B256 = B256::repeat_byte(0xa9);

fn word(address: Address) -> U256 {
    U256::from_be_slice(address.as_slice())
}

fn rule(param: u8, param_type: &str, condition: Condition, values: Vec<U256>) -> ArgumentRule {
    ArgumentRule {
        param,
        param_type: param_type.into(),
        width: if param_type == "address" { 20 } else { 32 },
        condition,
        values,
    }
}

fn entry(target: Address, selector: [u8; 4], rules: Vec<ArgumentRule>) -> CallPermission {
    CallPermission {
        target,
        selector: SelectorRule::Exact(selector.into()),
        signature: None,
        rules,
    }
}

fn call(to: Address, value: u64, data: Vec<u8>) -> Interaction {
    Interaction {
        to,
        value: U256::from(value),
        data: data.into(),
        function: None,
    }
}

/// One random call from the menu: within the rules or past them, spending or not.
fn random_call(rng: &mut StdRng, gold: Address, items: Address, account: Address) -> Interaction {
    let anyone = Address::repeat_byte(rng.random_range(1..=3));
    let recipient = [TREASURY, account, PAYEE, anyone][rng.random_range(0..4)];
    match rng.random_range(0..8) {
        0 | 1 => call(
            gold,
            0,
            transferCall {
                to: recipient,
                amount: U256::from(rng.random_range(0..700u64)),
            }
            .abi_encode(),
        ),
        2 => {
            // The treasury with a dirty bit above its 20 bytes.
            let mut data = transferCall {
                to: TREASURY,
                amount: U256::from(rng.random_range(0..50u64)),
            }
            .abi_encode();
            data[4 + rng.random_range(0..12)] = 1;
            call(gold, 0, data)
        }
        3 => call(
            gold,
            0,
            approveCall {
                spender: anyone,
                amount: U256::from(rng.random_range(0..500u64)),
            }
            .abi_encode(),
        ),
        4 => call(
            gold,
            0,
            transferFromCall {
                from: [account, anyone][rng.random_range(0..2)],
                to: account,
                amount: U256::from(rng.random_range(0..300u64)),
            }
            .abi_encode(),
        ),
        5 => call(
            items,
            0,
            mintCall {
                to: [account, anyone][rng.random_range(0..2)],
                id: U256::from(rng.random_range(1..=2u64)),
                amount: U256::from(rng.random_range(0..8u64)),
            }
            .abi_encode(),
        ),
        6 => call(
            items,
            0,
            safeTransferFromCall {
                from: account,
                to: PAYEE,
                id: U256::from(rng.random_range(1..=2u64)),
                amount: U256::from(rng.random_range(0..6u64)),
                data: Bytes::new(),
            }
            .abi_encode(),
        ),
        _ => call(PAYEE, rng.random_range(0..900u64), Vec::new()),
    }
}

#[tokio::test]
async fn the_daemons_check_and_the_account_agree_on_random_calls() {
    let seed = std::env::var("AGREEMENT_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("agreement seed {seed} (AGREEMENT_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);

    let chain = TestChain::start().await;
    let deployment = chain.chain.deployment;
    let (gold, items) = (deployment.game_gold, deployment.game_items);
    let player = chain.new_player().await;
    let account = player.account;
    let key = PrivateKeySigner::random();
    let permissions = Permissions {
        call_limit: 10_000,
        value_per_call_limit: 1_000,
        value_budget: 1_000_000,
        gas_budget: u128::MAX / 2,
        calls: vec![
            entry(
                gold,
                transferCall::SELECTOR,
                vec![
                    rule(
                        0,
                        "address",
                        Condition::OneOf,
                        vec![word(TREASURY), word(account)],
                    ),
                    rule(
                        1,
                        "uint256",
                        Condition::AtMost,
                        vec![U256::from(rng.random_range(200..600u64))],
                    ),
                ],
            ),
            entry(
                gold,
                transferCall::SELECTOR,
                vec![rule(0, "address", Condition::Equal, vec![word(PAYEE)])],
            ),
            entry(gold, approveCall::SELECTOR, Vec::new()),
            entry(
                gold,
                transferFromCall::SELECTOR,
                vec![rule(1, "address", Condition::IsAccount, Vec::new())],
            ),
            entry(
                items,
                mintCall::SELECTOR,
                vec![
                    rule(0, "address", Condition::IsAccount, Vec::new()),
                    rule(2, "uint256", Condition::AtLeast, vec![U256::from(1)]),
                ],
            ),
            entry(items, safeTransferFromCall::SELECTOR, Vec::new()),
            entry(PAYEE, [0; 4], Vec::new()),
        ],
        limits: vec![
            SpendLimit {
                asset: Asset::Erc20,
                token: gold,
                id: U256::ZERO,
                total: rng.random_range(1_500..4_000),
                per_period: rng.random_range(300..1_200),
                period_secs: PERIOD,
            },
            SpendLimit {
                asset: Asset::Erc1155,
                token: items,
                id: U256::from(1),
                total: 30,
                per_period: 10,
                period_secs: PERIOD,
            },
            SpendLimit {
                asset: Asset::Native,
                token: Address::ZERO,
                id: U256::ZERO,
                total: 3_000,
                per_period: 800,
                period_secs: 2 * PERIOD,
            },
        ],
    };

    // The owner registers the key with these permissions as the account deploys.
    let now = chain.latest_timestamp().await;
    let (valid_after, valid_until) = (now - 1, now + 86_400);
    let call_data = registration_call_data(
        account,
        REGISTRATION,
        &ContractSigner::ethereum(key.address()),
        valid_after,
        valid_until,
        permissions.to_contract(),
    );
    let mut registration = chain
        .op(account, alloy::primitives::aliases::U192::ZERO, call_data)
        .await;
    player.deploy_with(&chain, &mut registration);
    registration.call_gas_limit = 3_000_000;
    let hash = registration
        .hash_v08(deployment.entry_point, chain.chain_id())
        .expect("hash");
    registration.signature = owner_signature(&sign_personal(&player.owner, hash).expect("sign"));
    let receipt = chain.handle_op(&registration).await.expect("registration");
    assert!(user_operation_event(&receipt).success, "registration");

    let mut session = Session {
        tenant: Default::default(),
        id: SessionId::generate(),
        account,
        owner: player.owner.address(),
        owner_p256: None,
        salt: player.salt,
        chain_id: chain.chain_id(),
        key: key.address(),
        key_p256: None,
        custody: KeyCustody::External,
        valid_after,
        valid_until,
        permissions: permissions.clone(),
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
    };
    let contract = SessionKeyAccount::new(account, &chain.relayer);
    let (mut admitted, mut refused) = (0, 0);
    let mut reasons = std::collections::BTreeMap::<&str, usize>::new();
    for case in 0..CASES {
        // Time moves on, sometimes past a period's end; no case starts in a period's last
        // seconds, where its next block could already fall in the next one.
        let mut now = chain.latest_timestamp().await;
        if rng.random_bool(0.3) {
            now += rng.random_range(1..90);
            chain.mine_at(now).await;
        }
        let period_end =
            |now: u64, length: u32| (now / u64::from(length) + 1) * u64::from(length) - 1;
        if period_end(now, PERIOD) < now + 5 {
            now = period_end(now, PERIOD) + 2;
            chain.mine_at(now).await;
        }
        let interactions: Vec<Interaction> = (0..rng.random_range(1..=3))
            .map(|_| random_call(&mut rng, gold, items, account))
            .collect();
        let ctx = CheckContext {
            now,
            window_margin_secs: 0,
            forbidden: [account, deployment.entry_point],
            deadline: now + 300,
        };
        let verdict = check_intent(&session, &interactions, 0, &ctx);
        let deadline = match &verdict {
            Ok(admission) => admission.deadline,
            Err(_) => (now + 300).min(period_end(now, PERIOD)),
        };

        let lane = u32::try_from(case).expect("fits");
        let nonce = session_nonce(key.address(), lane);
        let mut op = chain
            .op(account, nonce_key(nonce), intent_call_data(&interactions))
            .await;
        op.verification_gas_limit = 2_000_000;
        let user_op_hash = op
            .hash_v08(deployment.entry_point, chain.chain_id())
            .expect("hash");
        let message = session_operation_hash(user_op_hash, REGISTRATION, deadline);
        op.signature = session_signature(
            REGISTRATION,
            deadline,
            &sign_hash(&key, message).expect("sign"),
        );
        let packed = op.pack();
        let packed = SessionKeyAccount::PackedUserOperation {
            sender: packed.sender,
            nonce: packed.nonce,
            initCode: packed.initCode,
            callData: packed.callData,
            accountGasLimits: packed.accountGasLimits,
            preVerificationGas: packed.preVerificationGas,
            gasFees: packed.gasFees,
            paymasterAndData: packed.paymasterAndData,
            signature: packed.signature,
        };
        let on_chain = contract
            .validateUserOp(packed, user_op_hash, U256::ZERO)
            .from(deployment.entry_point)
            .call()
            .await;
        let described = || {
            format!(
                "case {case} (seed {seed}) at {now}: {interactions:?}\n  daemon: {verdict:?}\n  account: {on_chain:?}"
            )
        };
        match (&verdict, &on_chain) {
            (Ok(admission), Ok(validation)) => {
                let data: U256 = *validation;
                let aggregator = data & ((U256::from(1) << 160usize) - U256::from(1));
                assert_eq!(aggregator, U256::ZERO, "signature: {}", described());
                let valid_until = ((data >> 160usize) & U256::from((1u64 << 48) - 1)).to::<u64>();
                let valid_after = (data >> 208usize).to::<u64>();
                assert_eq!(valid_until, admission.deadline, "deadline: {}", described());
                let period_start = admission
                    .usage
                    .limits
                    .iter()
                    .zip(&session.permissions.limits)
                    .filter(|(used, limit)| used.spent != 0 && limit.period_secs != 0)
                    .map(|(used, limit)| limit.period_bounds(used.period).0 - 1)
                    .max()
                    .unwrap_or(0);
                assert_eq!(
                    valid_after,
                    period_start.max(session.valid_after),
                    "window start: {}",
                    described()
                );
                let receipt = chain.handle_op(&op).await.unwrap_or_else(|error| {
                    panic!("relaying an admitted op: {error}\n{}", described())
                });
                assert!(receipt.status(), "{}", described());
                session.usage = session.usage.checked_add(&admission.usage).expect("usage");
                admitted += 1;
            }
            (Err(error), Err(_)) => {
                refused += 1;
                *reasons.entry(error.reason()).or_default() += 1;
            }
            _ => panic!("the daemon and the account disagree: {}", described()),
        }

        // The account's counters are the daemon's usage.
        for (index, limit) in session.permissions.limits.iter().enumerate() {
            let state = contract
                .getSpendLimit(REGISTRATION, limit.token, limit.id)
                .call()
                .await
                .expect("getSpendLimit");
            let used = session.usage.limit(index);
            assert_eq!(
                state.spent,
                used.spent,
                "limit {index} total: {}",
                described()
            );
            assert_eq!(
                state.periodSpent,
                used.spent_in(state.periodIndex),
                "limit {index} period: {}",
                described()
            );
        }
    }
    println!(
        "{CASES} random cases: {admitted} admitted by both, {refused} refused by both {reasons:?}"
    );
    assert!(
        admitted > 5 && refused > 5,
        "the cases must exercise both verdicts"
    );
}
