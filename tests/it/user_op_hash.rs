//! The Rust userOpHash equals `EntryPoint.getUserOpHash` on a real chain, for randomized
//! operations.

use alloy::primitives::{Address, Bytes, U256};
use latchkey::chain::user_operation::UserOperation;
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::harness::TestChain;

const CASES: usize = 64;

fn random_bytes(rng: &mut StdRng, max_len: usize) -> Bytes {
    let mut bytes = vec![0u8; rng.random_range(0..=max_len)];
    rng.fill(&mut bytes[..]);
    bytes.into()
}

fn random_op(rng: &mut StdRng) -> UserOperation {
    let maybe_address = |rng: &mut StdRng| {
        rng.random_bool(0.5)
            .then(|| Address::from(rng.random::<[u8; 20]>()))
    };
    UserOperation {
        sender: Address::from(rng.random::<[u8; 20]>()),
        nonce: U256::from_be_bytes(rng.random::<[u8; 32]>()),
        factory: maybe_address(rng),
        factory_data: random_bytes(rng, 300),
        call_data: random_bytes(rng, 1_000),
        call_gas_limit: rng.random(),
        verification_gas_limit: rng.random(),
        pre_verification_gas: U256::from_be_bytes(rng.random::<[u8; 32]>()),
        max_fee_per_gas: rng.random(),
        max_priority_fee_per_gas: rng.random(),
        paymaster: maybe_address(rng),
        paymaster_verification_gas_limit: rng.random(),
        paymaster_post_op_gas_limit: rng.random(),
        paymaster_data: random_bytes(rng, 200),
        signature: random_bytes(rng, 130),
    }
}

#[tokio::test]
async fn rust_hash_matches_entry_point_for_random_operations() {
    let chain = TestChain::start().await;
    let entry_point = chain.entry_point();
    let seed = rand::random::<u64>();
    let mut rng = StdRng::seed_from_u64(seed);

    for case in 0..CASES {
        let op = random_op(&mut rng);
        let local = op
            .hash_v08(chain.chain.deployment.entry_point, chain.chain_id())
            .expect("hash");
        let on_chain = entry_point
            .getUserOpHash(op.pack())
            .call()
            .await
            .expect("getUserOpHash");
        assert_eq!(local, on_chain, "case {case} of seed {seed}: {op:?}");
    }
}
