//! A game currency guarded by a session's permissions, on a real chain through the daemon:
//! the session may transfer GameGold only to the game's treasury, at most 1,000 a day. The
//! transfers within the allowance confirm; the next is refused by the daemon's check before
//! any gas, naming the limit and what is left; and the same transfer, signed by the key
//! directly and sent past the daemon, is refused by the account on chain.

use alloy::{
    primitives::{Address, U256},
    providers::Provider,
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};
use latchkey::{
    api::proto::{self, TransactionIntentStatus as Status},
    chain::{
        contracts::{GameGold, SessionKeyAccount},
        ops::session_nonce,
        signature::{session_operation_hash, session_signature, sign_hash},
    },
};
use tonic::Code;

use crate::{
    daemon::{TestDaemon, account_address, mint_session_request, registration},
    harness::{TestChain, execute_call},
};

const TREASURY: Address = Address::repeat_byte(0x7e);
const DAY: u32 = 86_400;

fn gold_transfer(chain: &TestChain, to: Address, amount: u64) -> proto::Interaction {
    proto::Interaction {
        to: chain.chain.deployment.game_gold.to_string(),
        value: String::new(),
        call: Some(proto::interaction::Call::FunctionCall(
            proto::FunctionCall {
                signature: "transfer(address,uint256)".into(),
                args: vec![to.to_string(), amount.to_string()],
            },
        )),
    }
}

#[tokio::test]
async fn a_daily_gold_allowance_confirms_within_and_is_refused_beyond_on_and_off_chain() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let gold = chain.chain.deployment.game_gold;
    let owner = PrivateKeySigner::random();
    let key = PrivateKeySigner::random();

    // The test needs today's allowance for a while: near midnight UTC, move to tomorrow.
    let now = chain.latest_timestamp().await;
    let day_end = (now / u64::from(DAY) + 1) * u64::from(DAY) - 1;
    if day_end - now < 600 {
        chain.mine_at(day_end + 3_600).await;
    }
    let mut request = mint_session_request(&chain, owner.address(), 100).await;
    request.custody = proto::KeyCustody::External as i32;
    request.key_address = key.address().to_string();
    let permissions = request.permissions.as_mut().expect("permissions");
    permissions.calls.push(proto::CallPermission {
        target: gold.to_string(),
        function: "transfer(address,uint256)".into(),
        rules: vec![proto::ArgumentRule {
            param: 0,
            condition: proto::ArgumentCondition::Equal as i32,
            values: vec![TREASURY.to_string()],
            ..Default::default()
        }],
        ..Default::default()
    });
    permissions.limits.push(proto::SpendLimit {
        asset: proto::AssetKind::Erc20 as i32,
        token: gold.to_string(),
        total: "5000".into(),
        per_period: "1000".into(),
        period_seconds: DAY,
        ..Default::default()
    });
    let session = daemon.activate(&chain, &owner, request).await;
    let account = account_address(&session.account);
    let registration_receipt = chain
        .relayer
        .get_transaction_receipt(
            session
                .registration_transaction_hash
                .parse()
                .expect("a hash"),
        )
        .await
        .expect("receipt")
        .expect("mined");
    println!(
        "deploy + register with 2 entries, 1 argument rule, 1 spend limit: handleOps gas {}",
        registration_receipt.gas_used
    );
    GameGold::new(gold, &chain.relayer)
        .mint(account, U256::from(10_000))
        .send()
        .await
        .expect("mint gold")
        .get_receipt()
        .await
        .expect("mined");

    // The session echoes its rule and limit, and nothing is used yet.
    let shown = &session.permissions.as_ref().expect("permissions");
    assert_eq!(shown.calls[1].rules[0].r#type, "address");
    assert_eq!(shown.calls[1].rules[0].values, [TREASURY.to_string()]);
    assert_eq!(shown.limits[0].per_period, "1000");

    // Within the allowance: 600, then 400, confirm.
    for amount in [600, 400] {
        let intent = daemon
            .intents
            .create_transaction_intent(proto::CreateTransactionIntentRequest {
                session: session.name.clone(),
                interactions: vec![gold_transfer(&chain, TREASURY, amount)],
                ..Default::default()
            })
            .await
            .expect("within the allowance")
            .into_inner();
        let hash = crate::daemon::next_action_hash(intent.next_action.as_ref());
        daemon
            .intents
            .submit_intent_signature(proto::SubmitIntentSignatureRequest {
                name: intent.name.clone(),
                signature: sign_hash(&key, hash).expect("sign").to_string(),
                ..Default::default()
            })
            .await
            .expect("signature accepted");
        let done = daemon.wait_final(&intent.name).await;
        assert_eq!(done.status, Status::Confirmed as i32, "{done:?}");
        let result = done.result.as_ref().expect("a result");
        println!(
            "GOLD transfer of {amount} under a rule and a daily limit: op actualGasUsed {}",
            result.gas_used
        );
    }
    let treasury_balance = GameGold::new(gold, &chain.relayer)
        .balanceOf(TREASURY)
        .call()
        .await
        .expect("balance");
    assert_eq!(treasury_balance, U256::from(1_000));

    // GetSession shows what is used and left, in all and today.
    let current = daemon
        .sessions
        .get_session(proto::GetSessionRequest {
            name: session.name.clone(),
        })
        .await
        .expect("get session")
        .into_inner();
    let usage = current.usage.expect("usage");
    let limit = &usage.limits[0];
    assert_eq!(
        (limit.spent.as_str(), limit.left.as_str()),
        ("1000", "4000")
    );
    assert_eq!(
        (limit.period_spent.as_str(), limit.period_left.as_str()),
        ("1000", "0")
    );
    let now = chain.latest_timestamp().await;
    let day_end = (now / u64::from(DAY) + 1) * u64::from(DAY) - 1;
    assert_eq!(limit.period_end, i64::try_from(day_end).expect("fits"));
    // And the account on chain agrees.
    let on_chain = SessionKeyAccount::new(account, &chain.relayer)
        .getSpendLimit(registration(&session), gold, U256::ZERO)
        .call()
        .await
        .expect("getSpendLimit");
    assert_eq!(
        (on_chain.spent, on_chain.periodSpent),
        (1_000u128, 1_000u128)
    );

    // The next transfer is refused before any gas, naming the limit and what is left.
    let status = daemon
        .intents
        .create_transaction_intent(proto::CreateTransactionIntentRequest {
            session: session.name.clone(),
            interactions: vec![gold_transfer(&chain, TREASURY, 1)],
            ..Default::default()
        })
        .await
        .expect_err("past today's allowance");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status
            .message()
            .contains("permissions.limits[0] has 0 left in the period"),
        "{status:?}"
    );
    let details = tonic_types::StatusExt::get_error_details(&status);
    let info = details.error_info().expect("error info");
    assert_eq!(info.reason, "PERIOD_ALLOWANCE_EXCEEDED");
    assert_eq!(info.metadata.get("left").map(String::as_str), Some("0"));
    assert_eq!(info.metadata.get("period_end"), Some(&day_end.to_string()));
    // The allowance comes back after the day's last second.
    let retry = details.retry_info().expect("retry info");
    let wait = retry.retry_delay.expect("a delay").as_secs();
    let latest = chain.latest_timestamp().await;
    assert!(
        wait <= day_end + 1 - now && wait + 5 >= (day_end + 1).saturating_sub(latest),
        "retry in {wait} s, with the day ending at {day_end} and the chain at {latest}"
    );

    // Another recipient breaks the argument rule.
    let status = daemon
        .intents
        .create_transaction_intent(proto::CreateTransactionIntentRequest {
            session: session.name.clone(),
            interactions: vec![gold_transfer(&chain, Address::repeat_byte(0x99), 1)],
            ..Default::default()
        })
        .await
        .expect_err("not the treasury");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let details = tonic_types::StatusExt::get_error_details(&status);
    assert_eq!(
        details.error_info().expect("error info").reason,
        "ARGUMENT_NOT_ALLOWED"
    );

    // The key signs the refused transfer itself and sends it past the daemon: the account
    // refuses it in validation.
    let transfer = GameGold::transferCall {
        to: TREASURY,
        value: U256::from(1),
    };
    let call_data = execute_call(gold, U256::ZERO, transfer.abi_encode().into());
    let nonce_key = latchkey::chain::ops::nonce_key(session_nonce(key.address(), 4_000));
    let mut op = chain.op(account, nonce_key, call_data).await;
    let deadline = (now + 300).min(day_end);
    let user_op_hash = op
        .hash_v08(chain.chain.deployment.entry_point, chain.chain_id())
        .expect("hash");
    let message = session_operation_hash(user_op_hash, registration(&session), deadline);
    op.signature = session_signature(
        registration(&session),
        deadline,
        &sign_hash(&key, message).expect("sign"),
    );
    let error = chain
        .handle_op(&op)
        .await
        .expect_err("the account refuses it");
    let text = format!("{error:?}");
    let refusal = SessionKeyAccount::SessionKeyPeriodAllowanceExceeded {
        token: gold,
        id: U256::ZERO,
        amount: U256::from(1),
        left: 0,
    };
    let encoded = alloy::primitives::hex::encode(alloy::sol_types::SolError::abi_encode(&refusal));
    assert!(
        text.contains("AA23") || text.contains(&encoded),
        "expected the account's refusal, got {text}"
    );
    assert!(text.contains(&encoded), "{text}");
}
