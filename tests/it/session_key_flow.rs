//! The foundation story, on a real chain: a counterfactual account deploys itself while its
//! owner registers a session key; the session key then mints a game item through
//! `handleOps`; after `validUntil` the EntryPoint refuses the same kind of operation (AA22).

use alloy::{
    primitives::{U256, aliases::U192},
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};
use latchkey::chain::{
    contracts::{EntryPoint, GameItems, SessionKeyAccount},
    user_operation::sign_user_op_hash,
};

use crate::harness::{TestChain, execute_call, register_session_key_call, user_operation_event};

const SWORD: u64 = 7;
const SESSION_LENGTH_SECS: u64 = 3_600;

#[tokio::test]
async fn session_key_registers_with_deployment_then_mints_until_expiry() {
    let chain = TestChain::start().await;
    let deployment = chain.chain.deployment;
    let entry_point = deployment.entry_point;
    let player = chain.new_player().await;
    let session_key = PrivateKeySigner::random();

    // 1. The account is counterfactual: an address with no code yet.
    assert!(
        chain.relayer_code(player.account).await.is_empty(),
        "account must not exist yet"
    );

    // 2. The owner registers a session key in the op that also deploys the account.
    // The EntryPoint accepts an op only when validAfter < block.timestamp <= validUntil, and
    // anvil may mine the next blocks within the same second: open the window a second ago.
    let now = chain.latest_timestamp().await;
    let valid_after = now - 1;
    let valid_until = now + SESSION_LENGTH_SECS;
    let permissions = SessionKeyAccount::SessionPermissions {
        callLimit: 10,
        valuePerCallLimit: 0,
        valueBudget: 0,
        calls: vec![SessionKeyAccount::CallPermission {
            target: deployment.game_items,
            selector: GameItems::mintCall::SELECTOR.into(),
            anySelector: false,
        }],
    };
    let call_data = register_session_key_call(
        player.account,
        session_key.address(),
        valid_after,
        valid_until,
        permissions,
    );
    let mut registration = chain.op(player.account, U192::ZERO, call_data).await;
    player.deploy_with(&chain, &mut registration);
    let hash = registration
        .hash_v08(entry_point, chain.chain_id())
        .expect("hash");
    registration.signature = sign_user_op_hash(&player.owner, hash)
        .await
        .expect("owner signs");

    let receipt = chain
        .handle_op(&registration)
        .await
        .expect("registration op relayed");
    let event = user_operation_event(&receipt);
    assert!(event.success, "registration op must succeed");
    assert_eq!(event.userOpHash, hash);
    assert!(
        !chain.relayer_code(player.account).await.is_empty(),
        "account deployed"
    );
    println!(
        "registration op (deploy + register): handleOps gas {}, op actualGasUsed {}",
        receipt.gas_used, event.actualGasUsed
    );

    let account = SessionKeyAccount::new(player.account, &chain.relayer);
    let stored = account
        .getSessionKey(session_key.address())
        .call()
        .await
        .expect("view");
    assert!(stored.registered);
    assert_eq!(stored.validUntil.to::<u64>(), valid_until);
    assert_eq!(stored.callLimit, 10);

    // 3. The session key mints a game item; its ops use their own EntryPoint nonce key.
    let session_nonce_key = U192::from_be_slice(session_key.address().as_slice());
    let mint = GameItems::mintCall {
        to: player.account,
        id: U256::from(SWORD),
        amount: U256::from(3),
    };
    let mint_call = execute_call(deployment.game_items, U256::ZERO, mint.abi_encode().into());
    let mut mint_op = chain
        .op(player.account, session_nonce_key, mint_call.clone())
        .await;
    let hash = mint_op
        .hash_v08(entry_point, chain.chain_id())
        .expect("hash");
    mint_op.signature = sign_user_op_hash(&session_key, hash)
        .await
        .expect("session key signs");

    let receipt = chain.handle_op(&mint_op).await.expect("mint op relayed");
    let event = user_operation_event(&receipt);
    assert!(event.success, "mint op must succeed");
    println!(
        "session-key mint op: handleOps gas {}, op actualGasUsed {}",
        receipt.gas_used, event.actualGasUsed
    );

    // 4. The item is on-chain, and the call was counted.
    let items = GameItems::new(deployment.game_items, &chain.relayer);
    let balance = items
        .balanceOf(player.account, U256::from(SWORD))
        .call()
        .await
        .expect("balanceOf");
    assert_eq!(balance, U256::from(3));
    let stored = account
        .getSessionKey(session_key.address())
        .call()
        .await
        .expect("view");
    assert_eq!(stored.callsUsed, 1);

    // 5. After validUntil the EntryPoint refuses the same kind of op: AA22.
    chain.mine_at(valid_until + 1).await;
    let mut late_op = chain.op(player.account, session_nonce_key, mint_call).await;
    let hash = late_op
        .hash_v08(entry_point, chain.chain_id())
        .expect("hash");
    late_op.signature = sign_user_op_hash(&session_key, hash)
        .await
        .expect("session key signs");

    let error = chain
        .handle_op(&late_op)
        .await
        .expect_err("an expired session key is refused");
    match error.as_decoded_interface_error::<EntryPoint::EntryPointErrors>() {
        Some(EntryPoint::EntryPointErrors::FailedOp(failed)) => {
            assert_eq!(failed.opIndex, U256::ZERO);
            assert_eq!(failed.reason, "AA22 expired or not due");
        }
        other => panic!("expected FailedOp AA22, got {other:?} from {error}"),
    }
    let balance = items
        .balanceOf(player.account, U256::from(SWORD))
        .call()
        .await
        .expect("balanceOf");
    assert_eq!(balance, U256::from(3), "nothing minted after expiry");
}
