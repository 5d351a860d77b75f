//! Sponsorship approvals made in Rust against the real SponsorPaymaster: the hash matches
//! the contract's `getHash` for random operations, and an approved operation from an account
//! holding no ETH deploys it and mints, paid for from the paymaster's deposit.

use alloy::{
    primitives::{Address, Bytes, U256, aliases::U192, utils::parse_ether},
    providers::{Provider, ext::AnvilApi},
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};
use latchkey::chain::{
    contracts::{GameItems, SponsorPaymaster},
    signature::{owner_signature, sign_personal},
    sponsor::{Sponsorship, approve, sponsor_hash},
    user_operation::UserOperation,
};
use rand::Rng;

use crate::harness::{TestChain, execute_call, user_operation_event};

/// A SponsorPaymaster on `chain`, owned by the deployer, approving with `signer`, with a
/// deposit of 1 ETH at the EntryPoint.
async fn deploy_paymaster(
    chain: &TestChain,
    signer: Address,
) -> SponsorPaymaster::SponsorPaymasterInstance<alloy::providers::DynProvider> {
    let owner = chain.chain.dev_accounts()[0];
    let paymaster = SponsorPaymaster::deploy(
        chain.chain.provider.clone(),
        chain.chain.deployment.entry_point,
        owner,
        signer,
    )
    .await
    .expect("deploy the paymaster");
    paymaster
        .deposit()
        .value(parse_ether("1").expect("constant"))
        .send()
        .await
        .expect("deposit")
        .get_receipt()
        .await
        .expect("deposit mined");
    paymaster
}

/// The contract's own view of an operation, as getHash takes it.
fn as_contract_op(op: &UserOperation) -> SponsorPaymaster::PackedUserOperation {
    let packed = op.pack();
    SponsorPaymaster::PackedUserOperation {
        sender: packed.sender,
        nonce: packed.nonce,
        initCode: packed.initCode,
        callData: packed.callData,
        accountGasLimits: packed.accountGasLimits,
        preVerificationGas: packed.preVerificationGas,
        gasFees: packed.gasFees,
        paymasterAndData: packed.paymasterAndData,
        signature: packed.signature,
    }
}

#[tokio::test]
async fn the_rust_approval_hash_matches_get_hash_for_random_operations() {
    let chain = TestChain::start().await;
    let paymaster = deploy_paymaster(&chain, PrivateKeySigner::random().address()).await;
    let seed: u64 = rand::random();
    println!("sponsor hash seed {seed}");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    for _ in 0..32 {
        let mut op = UserOperation {
            sender: Address::from(rng.random::<[u8; 20]>()),
            nonce: U256::from(rng.random::<u128>()),
            factory: rng.random_bool(0.5).then(|| Address::repeat_byte(0x42)),
            factory_data: Bytes::from(rng.random::<[u8; 24]>().to_vec()),
            call_data: Bytes::from(rng.random::<[u8; 32]>().to_vec()),
            call_gas_limit: rng.random::<u64>().into(),
            verification_gas_limit: rng.random::<u64>().into(),
            pre_verification_gas: U256::from(rng.random::<u64>()),
            max_fee_per_gas: rng.random::<u64>().into(),
            max_priority_fee_per_gas: rng.random::<u32>().into(),
            ..Default::default()
        };
        let sponsorship = Sponsorship {
            paymaster: *paymaster.address(),
            verification_gas_limit: rng.random::<u32>().into(),
            post_op_gas_limit: rng.random::<u16>().into(),
            valid_until: rng.random_range(0..1 << 48),
            valid_after: rng.random_range(0..1 << 48),
        };
        let ours = sponsor_hash(&op, &sponsorship, chain.chain_id()).expect("hash");
        // The contract reads the paymaster's gas limits from paymasterAndData.
        op.paymaster = Some(sponsorship.paymaster);
        op.paymaster_verification_gas_limit = sponsorship.verification_gas_limit;
        op.paymaster_post_op_gas_limit = sponsorship.post_op_gas_limit;
        let theirs = paymaster
            .getHash(
                as_contract_op(&op),
                alloy::primitives::aliases::U48::from(sponsorship.valid_until),
                alloy::primitives::aliases::U48::from(sponsorship.valid_after),
            )
            .call()
            .await
            .expect("getHash");
        assert_eq!(ours, theirs, "seed {seed}: {op:?} {sponsorship:?}");
    }
}

#[tokio::test]
async fn an_account_with_no_eth_deploys_and_mints_on_a_rust_approval() {
    let chain = TestChain::start().await;
    let sponsor = PrivateKeySigner::random();
    let paymaster = deploy_paymaster(&chain, sponsor.address()).await;
    let player = chain.new_player().await;
    chain
        .relayer
        .anvil_set_balance(player.account, U256::ZERO)
        .await
        .expect("empty the account");
    let deposit_before = paymaster.getDeposit().call().await.expect("deposit");

    let mint = GameItems::mintCall {
        to: player.account,
        id: U256::from(1),
        amount: U256::from(1),
    }
    .abi_encode();
    let call_data = execute_call(chain.chain.deployment.game_items, U256::ZERO, mint.into());
    let mut op = chain.op(player.account, U192::ZERO, call_data).await;
    player.deploy_with(&chain, &mut op);
    let now = chain.latest_timestamp().await;
    let sponsorship = Sponsorship {
        paymaster: *paymaster.address(),
        verification_gas_limit: 100_000,
        post_op_gas_limit: 0,
        valid_until: now + 600,
        valid_after: now - 1,
    };
    approve(&mut op, &sponsorship, chain.chain_id(), &sponsor).expect("approve");
    let hash = op
        .hash_v08(chain.chain.deployment.entry_point, chain.chain_id())
        .expect("hash");
    op.signature = owner_signature(&sign_personal(&player.owner, hash).expect("owner signs"));

    let receipt = chain.handle_op(&op).await.expect("sponsored op relayed");
    let event = user_operation_event(&receipt);
    assert!(event.success, "the sponsored op executed");
    assert_eq!(event.paymaster, *paymaster.address());
    let game = GameItems::new(chain.chain.deployment.game_items, &chain.relayer);
    let items = game
        .balanceOf(player.account, U256::from(1))
        .call()
        .await
        .expect("balance");
    assert_eq!(items, U256::from(1));
    assert_eq!(
        chain
            .relayer
            .get_balance(player.account)
            .await
            .expect("balance"),
        U256::ZERO,
        "the player paid nothing"
    );
    let deposit_after = paymaster.getDeposit().call().await.expect("deposit");
    assert_eq!(
        deposit_before - deposit_after,
        event.actualGasCost,
        "the paymaster's deposit paid exactly the operation's cost"
    );
    println!(
        "sponsored deploy + mint: handleOps gas {}, actualGasCost {} wei",
        receipt.gas_used, event.actualGasCost
    );
}
