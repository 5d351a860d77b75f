//! Value sent from an account costs what the recipient makes it cost: 25,000 more to an
//! address that never held anything, a cold access the first time, and whatever a contract
//! recipient's code does. latchkey estimates the account's whole call as the EntryPoint
//! makes it, so each of these confirms, alone or in a batch, and none spends the session's
//! value budget on a revert.

use alloy::{
    primitives::{Address, U256},
    providers::{Provider, ext::AnvilApi},
};
use latchkey::{
    api::proto::{self, TransactionIntentStatus as Status},
    chain::contracts::SessionKeyAccount,
};

use crate::{
    daemon::{Clients, TestDaemon, account_address, mint_session_request, registration},
    harness::TestChain,
};

/// Runtime code that keeps the value it receives in storage slot 0: a fresh slot written on
/// every receipt, 22,100 gas, far past the 2,300 a bare value call passes on.
const STORING_RECIPIENT: &[u8] = &[0x34, 0x5f, 0x55, 0x00];

/// A plain transfer of `wei` to `to`.
fn transfer(to: Address, wei: u64) -> proto::Interaction {
    proto::Interaction {
        to: to.to_string(),
        value: wei.to_string(),
        call: Some(proto::interaction::Call::Calldata(String::new())),
    }
}

/// An active HELD session of a fresh player whose account holds 10^15 wei, allowed plain
/// transfers to each of `payees` and to mint.
async fn paying_session(
    chain: &TestChain,
    api: &mut Clients,
    payees: &[Address],
) -> proto::Session {
    let owner = alloy::signers::local::PrivateKeySigner::random();
    let mut request = mint_session_request(chain, owner.address(), 100).await;
    let permissions = request.permissions.as_mut().expect("permissions");
    permissions.value_per_call_limit = "1000000".into();
    permissions.value_budget = "10000000".into();
    permissions
        .calls
        .extend(payees.iter().map(|payee| proto::CallPermission {
            target: payee.to_string(),
            function: "0x00000000".into(),
            selector: String::new(),
            ..Default::default()
        }));
    // Funded for its own gas; the transfers themselves are a few wei.
    let session = api.activate(chain, &owner, request).await;
    let account = account_address(&session.account);
    chain
        .relayer
        .anvil_set_balance(account, U256::from(10u64.pow(15)))
        .await
        .expect("set the account's balance");
    session
}

async fn send(
    api: &mut Clients,
    session: &proto::Session,
    interactions: Vec<proto::Interaction>,
) -> proto::TransactionIntent {
    let created = api
        .intents
        .create_transaction_intent(proto::CreateTransactionIntentRequest {
            session: session.name.clone(),
            interactions,
            idempotency_key: String::new(),
            policy: String::new(),
        })
        .await
        .expect("create the intent")
        .into_inner();
    api.wait_final(&created.name).await
}

#[tokio::test]
async fn value_reaches_a_fresh_address_a_contract_and_a_batch_of_them() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let fresh = fresh_address();
    let contract = fresh_address();
    chain
        .relayer
        .anvil_set_code(contract, STORING_RECIPIENT.to_vec().into())
        .await
        .expect("deploy the storing recipient");
    let (first, second) = (fresh_address(), fresh_address());
    let session = paying_session(&chain, &mut daemon.api, &[fresh, contract, first, second]).await;
    let provider = &chain.relayer;

    // An address that never held anything: the 25,000 of a new account.
    let alone = send(&mut daemon.api, &session, vec![transfer(fresh, 1)]).await;
    assert_eq!(alone.status, Status::Confirmed as i32, "{alone:?}");
    assert_eq!(
        provider.get_balance(fresh).await.expect("balance"),
        U256::from(1)
    );

    // A contract whose code spends more than the 2,300 a value call passes on.
    let stored = send(&mut daemon.api, &session, vec![transfer(contract, 7)]).await;
    assert_eq!(stored.status, Status::Confirmed as i32, "{stored:?}");
    assert_eq!(
        provider
            .get_storage_at(contract, U256::ZERO)
            .await
            .expect("slot 0"),
        U256::from(7),
        "the recipient's code ran"
    );

    // A batch: two fresh addresses and a mint in one operation.
    let account = account_address(&session.account);
    let batch = send(
        &mut daemon.api,
        &session,
        vec![
            transfer(first, 2),
            transfer(second, 3),
            crate::daemon::mint_interaction(&chain, &account.to_string(), 9, 1),
        ],
    )
    .await;
    assert_eq!(batch.status, Status::Confirmed as i32, "{batch:?}");
    assert_eq!(
        provider.get_balance(first).await.expect("balance"),
        U256::from(2)
    );
    assert_eq!(
        provider.get_balance(second).await.expect("balance"),
        U256::from(3)
    );

    // Every wei of the budget went where it was sent: nothing was spent on a revert.
    let on_chain = SessionKeyAccount::new(account, provider)
        .getSessionKey(registration(&session))
        .call()
        .await
        .expect("getSessionKey");
    assert_eq!(on_chain.valueSpent, 1 + 7 + 2 + 3);
    assert_eq!(on_chain.callsUsed, 1 + 1 + 3);
}

/// An address nothing has ever touched.
fn fresh_address() -> Address {
    Address::from(rand::random::<[u8; 20]>())
}
