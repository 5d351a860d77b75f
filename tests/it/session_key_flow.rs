//! The foundation story, on a real chain: a counterfactual account deploys itself while its
//! owner registers a session key; the session key then mints game items through
//! `handleOps`; after `validUntil` the EntryPoint refuses the same kind of operation (AA22).

use alloy::{
    primitives::{Address, B256, Bytes, U256, aliases::U192},
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};
use latchkey::chain::{
    contracts::{EntryPoint, GameItems, SessionKeyAccount},
    ops::{ContractSigner, registration_call_data},
    signature::{
        owner_signature, session_operation_hash, session_signature, sign_hash, sign_personal,
    },
    user_operation::{UserOperation, session_nonce_key},
};

use crate::harness::{TestChain, execute_call, user_operation_event};

const SWORD: u64 = 7;
const SESSION_LENGTH_SECS: u64 = 3_600;
/// What the session key's ops may cost the account in fees (0.1 ETH).
const GAS_BUDGET_WEI: u128 = 100_000_000_000_000_000;

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
        gasBudget: GAS_BUDGET_WEI,
        calls: vec![SessionKeyAccount::CallPermission {
            target: deployment.game_items,
            selector: GameItems::mintCall::SELECTOR.into(),
            anySelector: false,
            rules: Vec::new(),
        }],
        limits: Vec::new(),
    };
    let registration_id = B256::repeat_byte(0x5e);
    let call_data = registration_call_data(
        player.account,
        registration_id,
        &ContractSigner::ethereum(session_key.address()),
        valid_after,
        valid_until,
        permissions,
    );
    let mut registration = chain.op(player.account, U192::ZERO, call_data).await;
    player.deploy_with(&chain, &mut registration);
    let hash = registration
        .hash_v08(entry_point, chain.chain_id())
        .expect("hash");
    registration.signature =
        owner_signature(&sign_personal(&player.owner, hash).expect("owner signs"));

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
        .getSessionKey(registration_id)
        .call()
        .await
        .expect("view");
    assert!(stored.registered);
    assert_eq!(stored.validUntil.to::<u64>(), valid_until);
    assert_eq!(stored.callLimit, 10);

    // 3. The session key mints a game item; its ops use their own EntryPoint nonce key.
    let session_nonce_key = session_nonce_key(session_key.address(), 0);
    let mint = GameItems::mintCall {
        to: player.account,
        id: U256::from(SWORD),
        amount: U256::from(3),
    };
    let mint_call = execute_call(deployment.game_items, U256::ZERO, mint.abi_encode().into());
    let key = SessionKey {
        signer: &session_key,
        registration: registration_id,
        valid_until,
    };
    let first_mint = signed_op(&chain, &key, player.account, session_nonce_key, &mint_call).await;
    let receipt = chain.handle_op(&first_mint).await.expect("mint op relayed");
    let event = user_operation_event(&receipt);
    assert!(event.success, "mint op must succeed");
    println!(
        "first session-key mint op: handleOps gas {}, op actualGasUsed {}",
        receipt.gas_used, event.actualGasUsed
    );
    // A second mint pays no first-write costs (nonce lane, usage counters, item balance):
    // the steady-state cost of a session-key op.
    let second_mint = signed_op(&chain, &key, player.account, session_nonce_key, &mint_call).await;
    let receipt = chain
        .handle_op(&second_mint)
        .await
        .expect("mint op relayed");
    let event = user_operation_event(&receipt);
    assert!(event.success, "second mint op must succeed");
    println!(
        "steady-state session-key mint op: handleOps gas {}, op actualGasUsed {}",
        receipt.gas_used, event.actualGasUsed
    );

    // 4. The item is on-chain, and the call was counted.
    let items = GameItems::new(deployment.game_items, &chain.relayer);
    let balance = items
        .balanceOf(player.account, U256::from(SWORD))
        .call()
        .await
        .expect("balanceOf");
    assert_eq!(balance, U256::from(6));
    let stored = account
        .getSessionKey(registration_id)
        .call()
        .await
        .expect("view");
    assert_eq!(stored.callsUsed, 2);
    // The gas budget was charged each op's worst case, not its actual cost.
    assert_eq!(
        stored.gasSpent,
        worst_case_cost(&first_mint) + worst_case_cost(&second_mint)
    );

    // 5. After validUntil the EntryPoint refuses the same kind of op: AA22.
    chain.mine_at(valid_until + 1).await;
    let late_op = signed_op(&chain, &key, player.account, session_nonce_key, &mint_call).await;
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
    assert_eq!(balance, U256::from(6), "nothing minted after expiry");
}

/// A registered session key and the deadline its operations carry.
struct SessionKey<'a> {
    signer: &'a PrivateKeySigner,
    registration: B256,
    valid_until: u64,
}

/// An op from `sender` in `nonce_key` carrying `call_data`, signed by `key`: its session
/// operation hash, signed raw, in the session key's frame.
async fn signed_op(
    chain: &TestChain,
    key: &SessionKey<'_>,
    sender: Address,
    nonce_key: U192,
    call_data: &Bytes,
) -> UserOperation {
    let mut op = chain.op(sender, nonce_key, call_data.clone()).await;
    let hash = op
        .hash_v08(chain.chain.deployment.entry_point, chain.chain_id())
        .expect("hash");
    let signable = session_operation_hash(hash, key.registration, key.valid_until);
    let signature = sign_hash(key.signer, signable).expect("sign");
    op.signature = session_signature(key.registration, key.valid_until, &signature);
    op
}

/// What the account charges a session key's gas budget for `op`.
fn worst_case_cost(op: &UserOperation) -> u128 {
    let gas = op.verification_gas_limit + op.call_gas_limit + op.pre_verification_gas.to::<u128>();
    gas * op.max_fee_per_gas
}
