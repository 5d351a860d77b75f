//! The story of a game backend with a HELD session key: create the session, have the owner
//! sign its registration with an independent signer, then mint ten items through ten
//! intents, all CONFIRMED and all on chain.

use alloy::{primitives::U256, signers::local::PrivateKeySigner};
use latchkey::{api::proto, chain::contracts::GameItems};

use crate::{
    daemon::{TestDaemon, account_address, mint_interaction},
    harness::TestChain,
};

const INTENTS: u64 = 10;

#[tokio::test]
async fn held_session_mints_ten_items_through_ten_confirmed_intents() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let owner = PrivateKeySigner::random();

    let session = daemon.active_held_session(&chain, &owner, 20).await;
    assert!(
        session.next_action.is_none(),
        "an ACTIVE session waits for nothing"
    );
    assert!(!session.registration_transaction_hash.is_empty());
    // The session echoes the function as it was asked, with the selector the chain checks.
    let permission = &session.permissions.as_ref().expect("permissions").calls[0];
    assert_eq!(permission.function, "mint(address,uint256,uint256)");
    assert_eq!(permission.selector, "0x156e29f6");
    let account = account_address(&session.account);
    assert!(
        !chain.relayer_code(account).await.is_empty(),
        "account deployed by registration"
    );

    let mut names = Vec::new();
    for id in 0..INTENTS {
        let intent = daemon
            .intents
            .create_transaction_intent(proto::CreateTransactionIntentRequest {
                session: session.name.clone(),
                interactions: vec![mint_interaction(&chain, &account.to_string(), id, 1)],
                idempotency_key: format!("mint-{id}"),
                policy: String::new(),
            })
            .await
            .expect("create intent")
            .into_inner();
        assert!(intent.next_action.is_none(), "a HELD key signs at once");
        names.push(intent.name);
    }

    let items = GameItems::new(chain.chain.deployment.game_items, &chain.relayer);
    for (id, name) in names.iter().enumerate() {
        let intent = daemon.wait_final(name).await;
        assert_eq!(
            intent.status,
            proto::TransactionIntentStatus::Confirmed as i32,
            "{intent:?}"
        );
        let result = intent.result.expect("a result");
        assert!(result.success);
        assert!(result.block_number > 0);
        assert_ne!(result.gas_used, "0");
        let balance = items
            .balanceOf(account, U256::from(id))
            .call()
            .await
            .expect("balanceOf");
        assert_eq!(balance, U256::from(1), "item {id} on chain");
    }
}
