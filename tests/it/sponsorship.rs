//! Gas sponsorship end to end: policies created over gRPC, sessions and intents that name
//! them relayed through the dev chain's SponsorPaymaster, players that hold no ETH, every
//! rule type inside and outside its limit, limits under concurrency and across a restart,
//! and spend recorded against the chain's own `UserOperationEvent`s.

use std::collections::HashMap;

use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::Filter,
    signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
use latchkey::{
    api::proto::{self, policy_rule::Rule as ProtoRule},
    chain::contracts::EntryPoint,
};
use tonic::Code;

use crate::{
    daemon::{
        Clients, TestDaemon, account_address, mint_interaction, mint_session_request, refused,
    },
    harness::TestChain,
};

/// Every account function: register, revoke, deploy.
pub fn account_functions() -> proto::PolicyRule {
    proto::PolicyRule {
        rule: Some(ProtoRule::AccountFunctions(proto::AccountFunctionsRule {
            register_session: true,
            revoke_session: true,
            deploy_account: true,
        })),
    }
}

/// One contract-functions rule of (contract, function) pairs.
pub fn contract_functions(entries: &[(&str, &str)]) -> proto::PolicyRule {
    proto::PolicyRule {
        rule: Some(ProtoRule::ContractFunctions(proto::ContractFunctionsRule {
            functions: entries
                .iter()
                .map(|(contract, function)| proto::ContractFunction {
                    contract: (*contract).to_owned(),
                    function: (*function).to_owned(),
                })
                .collect(),
        })),
    }
}

fn rule(rule: ProtoRule) -> proto::PolicyRule {
    proto::PolicyRule { rule: Some(rule) }
}

pub async fn create_policy(
    api: &mut Clients,
    name: &str,
    rules: Vec<proto::PolicyRule>,
) -> proto::Policy {
    api.policies
        .create_policy(proto::CreatePolicyRequest {
            display_name: name.to_owned(),
            chain_id: 0,
            strategy: proto::SponsorStrategy::PayForUser as i32,
            rules,
        })
        .await
        .expect("create policy")
        .into_inner()
}

/// A policy that sponsors every account function and every call, without limits.
pub async fn open_policy(api: &mut Clients) -> proto::Policy {
    create_policy(
        api,
        "registrations",
        vec![account_functions(), contract_functions(&[("*", "*")])],
    )
    .await
}

/// A policy that sponsors any call, at most `max_operations` per `interval_seconds`.
async fn operations_limited(
    api: &mut Clients,
    max_operations: u64,
    interval_seconds: u64,
) -> proto::Policy {
    create_policy(
        api,
        &format!("{max_operations} per {interval_seconds} s"),
        vec![
            contract_functions(&[("*", "*")]),
            rule(ProtoRule::OperationsPerInterval(
                proto::OperationsPerIntervalRule {
                    max_operations,
                    interval_seconds,
                },
            )),
        ],
    )
    .await
}

pub async fn get_policy(api: &mut Clients, name: &str) -> proto::Policy {
    api.policies
        .get_policy(proto::GetPolicyRequest {
            name: name.to_owned(),
        })
        .await
        .expect("get policy")
        .into_inner()
}

/// A player with no ETH whose session is registered (and the account deployed) under
/// `policy`, allowed every function of GameItems 100 times. Nobody funds anything.
async fn sponsored_player(
    api: &mut Clients,
    chain: &TestChain,
    policy: &str,
) -> (PrivateKeySigner, proto::Session) {
    let owner = PrivateKeySigner::random();
    let mut request = mint_session_request(chain, owner.address(), 100).await;
    request.policy = policy.to_owned();
    if let Some(permissions) = request.permissions.as_mut() {
        permissions.calls[0].function = "*".into();
    }
    let session = api
        .sessions
        .create_session(request)
        .await
        .expect("create a sponsored session")
        .into_inner();
    assert_eq!(session.policy, policy);
    // Before anything happens, neither the owner nor the account holds any ETH.
    assert_eq!(balance(chain, owner.address()).await, U256::ZERO);
    assert_eq!(
        balance(chain, account_address(&session.account)).await,
        U256::ZERO
    );
    let sponsorship = session
        .registration_sponsorship
        .as_ref()
        .expect("the registration is sponsored");
    assert_eq!(sponsorship.policy, policy);
    assert_eq!(
        sponsorship.paymaster,
        chain.chain.paymaster.to_string(),
        "the dev chain's paymaster pays"
    );
    let session = api.sign_and_activate(&owner, session).await;
    (owner, session)
}

/// The account of `session`, as a call argument.
fn holder(session: &proto::Session) -> String {
    account_address(&session.account).to_string()
}

fn intent_request(
    session: &proto::Session,
    interactions: Vec<proto::Interaction>,
    policy: &str,
) -> proto::CreateTransactionIntentRequest {
    proto::CreateTransactionIntentRequest {
        session: session.name.clone(),
        interactions,
        idempotency_key: String::new(),
        policy: policy.to_owned(),
    }
}

/// A call of `signature` with `args` on GameItems.
fn game_call(chain: &TestChain, signature: &str, args: &[&str]) -> proto::Interaction {
    proto::Interaction {
        to: chain.chain.deployment.game_items.to_string(),
        value: String::new(),
        call: Some(proto::interaction::Call::FunctionCall(
            proto::FunctionCall {
                signature: signature.to_owned(),
                args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            },
        )),
    }
}

/// Creates an intent and waits until it is CONFIRMED.
async fn confirmed(
    api: &mut Clients,
    request: proto::CreateTransactionIntentRequest,
) -> proto::TransactionIntent {
    let intent = api
        .intents
        .create_transaction_intent(request)
        .await
        .expect("create intent")
        .into_inner();
    let done = api.wait_final(&intent.name).await;
    assert_eq!(
        done.status,
        proto::TransactionIntentStatus::Confirmed as i32,
        "{done:?}"
    );
    done
}

/// `actualGasCost` of every operation the paymaster paid for, by userOpHash.
async fn paid_by(chain: &TestChain, paymaster: Address) -> HashMap<B256, U256> {
    let filter = Filter::new()
        .address(chain.chain.deployment.entry_point)
        .event_signature(EntryPoint::UserOperationEvent::SIGNATURE_HASH)
        .topic3(paymaster.into_word())
        .from_block(0);
    chain
        .relayer
        .get_logs(&filter)
        .await
        .expect("logs")
        .iter()
        .map(|log| {
            let event = EntryPoint::UserOperationEvent::decode_log(&log.inner)
                .expect("a UserOperationEvent");
            assert_eq!(event.paymaster, paymaster);
            (event.userOpHash, event.actualGasCost)
        })
        .collect()
}

async fn deposit(chain: &TestChain) -> U256 {
    chain
        .entry_point()
        .balanceOf(chain.chain.paymaster)
        .call()
        .await
        .expect("deposit")
}

async fn balance(chain: &TestChain, address: Address) -> U256 {
    chain.relayer.get_balance(address).await.expect("balance")
}

pub fn settled(policy: &proto::Policy) -> (u64, U256) {
    let amount = policy
        .usage
        .as_ref()
        .and_then(|usage| usage.settled.as_ref())
        .expect("settled usage");
    (amount.operations, amount.wei.parse().expect("wei"))
}

pub fn pending_operations(policy: &proto::Policy) -> u64 {
    policy
        .usage
        .as_ref()
        .and_then(|usage| usage.pending.as_ref())
        .expect("pending usage")
        .operations
}

#[tokio::test]
async fn players_holding_no_eth_register_and_mint_while_the_paymaster_pays_every_wei() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let game = chain.chain.deployment.game_items.to_string();
    let policy = create_policy(
        &mut daemon,
        "players",
        vec![
            account_functions(),
            contract_functions(&[(&game, "mint(address,uint256,uint256)")]),
        ],
    )
    .await;
    let deposit_before = deposit(&chain).await;

    let mut players = Vec::new();
    for _ in 0..2 {
        let (owner, session) = sponsored_player(&mut daemon, &chain, &policy.name).await;
        players.push((owner, session));
    }
    let mut names = Vec::new();
    for (_, session) in &players {
        for id in 1..=3 {
            let intent = confirmed(
                &mut daemon,
                intent_request(
                    session,
                    vec![mint_interaction(&chain, &holder(session), id, 1)],
                    "",
                ),
            )
            .await;
            let sponsorship = intent.sponsorship.as_ref().expect("sponsored");
            assert_eq!(sponsorship.policy, policy.name, "the session's policy");
            names.push(intent.name);
        }
    }

    // Nobody but the paymaster paid: the players' owners and accounts still hold nothing.
    for (owner, session) in &players {
        let account = account_address(&session.account);
        assert_eq!(balance(&chain, owner.address()).await, U256::ZERO);
        assert_eq!(balance(&chain, account).await, U256::ZERO);
        for id in 1..=3u64 {
            let held = latchkey::chain::contracts::GameItems::new(
                chain.chain.deployment.game_items,
                &chain.relayer,
            )
            .balanceOf(account, U256::from(id))
            .call()
            .await
            .expect("item balance");
            assert_eq!(held, U256::from(1), "item {id} minted");
        }
    }

    // The paymaster's deposit went down by exactly what the EntryPoint charged for these
    // eight operations, and the policy recorded exactly that.
    let paid = paid_by(&chain, chain.chain.paymaster).await;
    assert_eq!(paid.len(), 8, "2 registrations and 6 mints");
    let total: U256 = paid.values().copied().sum();
    assert_eq!(deposit_before - deposit(&chain).await, total);
    let policy = get_policy(&mut daemon, &policy.name).await;
    assert_eq!(settled(&policy), (8, total));
    assert_eq!(pending_operations(&policy), 0);
    for name in &names {
        let intent = crate::daemon::stored_intent(&daemon, name);
        let cost = paid
            .get(&intent.user_op_hash)
            .expect("paid by the paymaster");
        assert_eq!(intent.result.as_ref().expect("result").actual_cost, *cost);
    }
}

#[tokio::test]
async fn each_rule_sponsors_what_it_covers_and_refuses_the_rest_by_name() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let game = chain.chain.deployment.game_items.to_string();
    let mint = "mint(address,uint256,uint256)";

    // Contract functions: mint is covered, burn is not.
    let mints = create_policy(
        &mut daemon,
        "mints only",
        vec![account_functions(), contract_functions(&[(&game, mint)])],
    )
    .await;
    let (owner, session) = sponsored_player(&mut daemon, &chain, &mints.name).await;
    confirmed(
        &mut daemon,
        intent_request(
            &session,
            vec![mint_interaction(&chain, &holder(&session), 1, 2)],
            "",
        ),
    )
    .await;
    let burn = game_call(&chain, "burn(uint256,uint256)", &["1", "1"]);
    let mut api = daemon.api.clone();
    refused(
        &daemon,
        "a call no entry covers",
        api.intents
            .create_transaction_intent(intent_request(&session, vec![burn.clone()], "")),
        Code::FailedPrecondition,
        &format!(
            "contract_functions: interactions[0] calls selector 0xb390c0ab on {game}, which no \
             contract_functions rule of policy {} covers",
            mints.id
        ),
    )
    .await;

    // A wildcard entry (any contract, any function), named by the intent itself.
    let anything = create_policy(
        &mut daemon,
        "anything",
        vec![contract_functions(&[("*", "*")])],
    )
    .await;
    let burned = confirmed(
        &mut daemon,
        intent_request(&session, vec![burn.clone()], &anything.name),
    )
    .await;
    assert_eq!(
        burned.sponsorship.as_ref().expect("sponsored").policy,
        anything.name
    );

    // Account functions: a registration needs register_session, one that deploys needs
    // deploy_account too, and a session's policy must cover its revocation as well.
    for (flags, needle) in [
        ((false, true, true), "covers session registration"),
        ((true, true, false), "covers account deployment"),
        (
            (true, false, true),
            "covers session revocation; a session a policy sponsors must be revocable under it",
        ),
    ] {
        let (register_session, revoke_session, deploy_account) = flags;
        let partial = create_policy(
            &mut daemon,
            "some account functions",
            vec![rule(ProtoRule::AccountFunctions(
                proto::AccountFunctionsRule {
                    register_session,
                    revoke_session,
                    deploy_account,
                },
            ))],
        )
        .await;
        let mut request =
            mint_session_request(&chain, PrivateKeySigner::random().address(), 1).await;
        request.policy = partial.name.clone();
        refused(
            &daemon,
            needle,
            api.sessions.create_session(request),
            Code::FailedPrecondition,
            &format!(
                "account_functions: no account_functions rule of policy {} {needle}",
                partial.id
            ),
        )
        .await;
    }

    // Operations per interval: two, then no more within the hour.
    let two_an_hour = operations_limited(&mut daemon, 2, 3_600).await;
    for id in 3..5 {
        confirmed(
            &mut daemon,
            intent_request(
                &session,
                vec![mint_interaction(&chain, &holder(&session), id, 1)],
                &two_an_hour.name,
            ),
        )
        .await;
    }
    refused(
        &daemon,
        "a third operation in the hour",
        api.intents.create_transaction_intent(intent_request(
            &session,
            vec![mint_interaction(&chain, &holder(&session), 5, 1)],
            &two_an_hour.name,
        )),
        Code::FailedPrecondition,
        "operations_per_interval: rules[1] operations_per_interval: 2 of 2 used",
    )
    .await;

    // Gas per operation, gas per interval and spend per interval: one mint (about 350k gas
    // with all its limits) fits in 600k gas, and in 600k gas at the fee cap of the moment;
    // sixteen mints (over 1.4M gas) do not, even if fees fall a little meanwhile.
    let sixteen_mints: Vec<_> = (0..16)
        .map(|id| mint_interaction(&chain, &holder(&session), 100 + id, 1))
        .collect();
    let mut limited = vec![two_an_hour.name.clone()];
    for (id, kind) in [
        "gas_per_operation",
        "gas_per_interval",
        "spend_per_interval",
    ]
    .into_iter()
    .enumerate()
    {
        let fees = chain.relayer.estimate_eip1559_fees().await.expect("fees");
        let budget = 600_000u128 * fees.max_fee_per_gas;
        let limit = match kind {
            "gas_per_operation" => {
                ProtoRule::GasPerOperation(proto::GasPerOperationRule { max_gas: 600_000 })
            }
            "gas_per_interval" => ProtoRule::GasPerInterval(proto::GasPerIntervalRule {
                max_gas: 600_000,
                interval_seconds: 3_600,
            }),
            _ => ProtoRule::SpendPerInterval(proto::SpendPerIntervalRule {
                max_wei: budget.to_string(),
                interval_seconds: 86_400,
            }),
        };
        let needle = format!("{kind}: rules[1] {kind}: ");
        let policy = create_policy(
            &mut daemon,
            &format!("limit {id}"),
            vec![contract_functions(&[("*", "*")]), rule(limit)],
        )
        .await;
        confirmed(
            &mut daemon,
            intent_request(
                &session,
                vec![mint_interaction(
                    &chain,
                    &holder(&session),
                    6 + id as u64,
                    1,
                )],
                &policy.name,
            ),
        )
        .await;
        refused(
            &daemon,
            kind,
            api.intents.create_transaction_intent(intent_request(
                &session,
                sixteen_mints.clone(),
                &policy.name,
            )),
            Code::FailedPrecondition,
            &needle,
        )
        .await;
        let policy = get_policy(&mut daemon, &policy.name).await;
        let spent = settled(&policy).1;
        assert!(
            spent > U256::ZERO && spent < U256::from(budget),
            "{policy:?}"
        );
        limited.push(policy.name);
    }

    // A disabled policy sponsors nothing more.
    let disabled = daemon
        .policies
        .disable_policy(proto::DisablePolicyRequest {
            name: mints.name.clone(),
        })
        .await
        .expect("disable")
        .into_inner();
    assert!(!disabled.enabled);
    refused(
        &daemon,
        "an operation under a disabled policy",
        api.intents.create_transaction_intent(intent_request(
            &session,
            vec![mint_interaction(&chain, &holder(&session), 8, 1)],
            "",
        )),
        Code::FailedPrecondition,
        &format!("policy_disabled: policy {} is disabled", mints.id),
    )
    .await;

    // A policy that does not exist, and a name that is not a policy's.
    refused(
        &daemon,
        "an unknown policy",
        api.intents.create_transaction_intent(intent_request(
            &session,
            vec![mint_interaction(&chain, &holder(&session), 8, 1)],
            "policies/pol_01JAAAAAAAAAAAAAAAAAAAAAAA",
        )),
        Code::NotFound,
        "policies/pol_01JAAAAAAAAAAAAAAAAAAAAAAA not found",
    )
    .await;
    refused(
        &daemon,
        "a malformed policy name",
        api.intents.create_transaction_intent(intent_request(
            &session,
            vec![mint_interaction(&chain, &holder(&session), 8, 1)],
            "pol_x",
        )),
        Code::InvalidArgument,
        "policy: expected a policy name",
    )
    .await;

    // The disabled policy's sessions' keys stay revocable, sponsored, even so.
    let (revoking, _) = daemon.revoke(&owner, &session).await;
    assert_eq!(
        revoking
            .revocation_sponsorship
            .as_ref()
            .expect("sponsored")
            .policy,
        mints.name
    );
    assert_eq!(
        balance(&chain, account_address(&session.account)).await,
        U256::ZERO
    );

    // Every operation the paymaster paid for is recorded against its policy, exactly.
    let paid = paid_by(&chain, chain.chain.paymaster).await;
    let mut recorded = U256::ZERO;
    let mut operations = 0;
    for name in [&mints.name, &anything.name].into_iter().chain(&limited) {
        let (ops, wei) = settled(&get_policy(&mut daemon, name).await);
        operations += ops;
        recorded += wei;
    }
    assert_eq!(operations, paid.len() as u64);
    assert_eq!(recorded, paid.values().copied().sum::<U256>());
}

#[tokio::test]
async fn a_daemon_without_a_paymaster_refuses_to_sponsor_rather_than_charge_the_account() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start_with(&chain, |config| {
        config.sponsor.paymaster = None;
        config.sponsor.signer_private_key = None;
    })
    .await;
    let policy = create_policy(&mut daemon, "orphan", vec![account_functions()]).await;
    let owner = PrivateKeySigner::random();
    let mut request = mint_session_request(&chain, owner.address(), 1).await;
    request.policy = policy.name.clone();
    let mut api = daemon.api.clone();
    refused(
        &daemon,
        "a sponsored session without a paymaster",
        api.sessions.create_session(request),
        Code::FailedPrecondition,
        "sponsorship: this daemon has no paymaster configured",
    )
    .await;
    let status = api
        .policies
        .get_paymaster(proto::GetPaymasterRequest {})
        .await
        .expect_err("no paymaster");
    assert_eq!(status.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn a_hundred_concurrent_intents_against_ten_an_interval_sponsor_exactly_ten() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let everything = open_policy(&mut daemon).await;
    let ten = operations_limited(&mut daemon, 10, 3_600).await;
    // 25 players with 4 intents each: every intent of a session races the others for the
    // session's record, and at most 3 + 4 writers can beat one to it, under the retries.
    let mut sessions = Vec::new();
    for _ in 0..25 {
        sessions.push(
            sponsored_player(&mut daemon, &chain, &everything.name)
                .await
                .1,
        );
    }
    let tasks: Vec<_> = (0..100)
        .map(|index| {
            let session = sessions[index % sessions.len()].clone();
            let request = intent_request(
                &session,
                vec![mint_interaction(&chain, &holder(&session), index as u64, 1)],
                &ten.name,
            );
            let mut api = daemon.api.clone();
            tokio::spawn(async move { api.intents.create_transaction_intent(request).await })
        })
        .collect();
    let mut created = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            Ok(intent) => created.push(intent.into_inner().name),
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert!(
                    status.message().starts_with(
                        "operations_per_interval: rules[1] operations_per_interval: 10 of 10 used"
                    ),
                    "{status:?}"
                );
            }
        }
    }
    assert_eq!(created.len(), 10, "exactly the limit is sponsored");
    for name in &created {
        let done = daemon.wait_final(name).await;
        assert_eq!(
            done.status,
            proto::TransactionIntentStatus::Confirmed as i32
        );
    }
    let policy = get_policy(&mut daemon, &ten.name).await;
    let paid = paid_by(&chain, chain.chain.paymaster).await;
    let expected: U256 = created
        .iter()
        .map(|name| {
            let hash = crate::daemon::stored_intent(&daemon, name).user_op_hash;
            *paid.get(&hash).expect("paid by the paymaster")
        })
        .sum();
    assert_eq!(settled(&policy), (10, expected));
    assert_eq!(pending_operations(&policy), 0);
    let window = policy.windows.first().expect("the hour's window");
    assert_eq!(
        window
            .usage
            .as_ref()
            .and_then(|usage| usage.settled.as_ref())
            .map(|amount| amount.operations),
        Some(10)
    );
}

#[tokio::test]
async fn limits_and_recorded_spend_survive_a_restart() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let everything = open_policy(&mut daemon).await;
    let three = operations_limited(&mut daemon, 3, 86_400).await;
    let (_, session) = sponsored_player(&mut daemon, &chain, &everything.name).await;
    for id in 0..2 {
        confirmed(
            &mut daemon,
            intent_request(
                &session,
                vec![mint_interaction(&chain, &holder(&session), id, 1)],
                &three.name,
            ),
        )
        .await;
    }
    let before = get_policy(&mut daemon, &three.name).await;
    let dir = daemon.keep_dir();
    let data_dir = daemon.data_dir.clone();
    let api_key = daemon.api_key.clone();
    daemon.stop().await;

    let mut daemon = TestDaemon::start_on(&chain, data_dir, &api_key).await;
    let after = get_policy(&mut daemon, &three.name).await;
    assert_eq!(settled(&after), settled(&before));
    assert_eq!(settled(&after).0, 2);
    confirmed(
        &mut daemon,
        intent_request(
            &session,
            vec![mint_interaction(&chain, &holder(&session), 2, 1)],
            &three.name,
        ),
    )
    .await;
    let mut api = daemon.api.clone();
    refused(
        &daemon,
        "a fourth operation after the restart",
        api.intents.create_transaction_intent(intent_request(
            &session,
            vec![mint_interaction(&chain, &holder(&session), 3, 1)],
            &three.name,
        )),
        Code::FailedPrecondition,
        "3 of 3 used",
    )
    .await;
    let listed = daemon
        .policies
        .list_policies(proto::ListPoliciesRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(
        listed
            .policies
            .iter()
            .map(|policy| policy.name.as_str())
            .collect::<Vec<_>>(),
        [three.name.as_str(), everything.name.as_str()],
        "newest first"
    );
    // The store's directory outlives the daemon that uses it.
    daemon.stop().await;
    drop(dir);
}
