//! The dev chain holds EntryPoint v0.8 at its canonical address and latchkey's contracts
//! wired to it, and deploying again changes nothing.

use alloy::providers::Provider;
use latchkey::chain::{
    contracts::{ENTRY_POINT_V08, EntryPoint, SessionKeyAccount, SessionKeyAccountFactory},
    deploy::{deploy_all, expected_addresses},
};

use crate::harness::TestChain;

#[tokio::test]
async fn contracts_are_wired_to_the_canonical_entry_point() {
    let chain = TestChain::start().await;
    let deployment = chain.chain.deployment;
    assert_eq!(deployment.entry_point, ENTRY_POINT_V08);
    assert_eq!(
        deployment,
        expected_addresses(ENTRY_POINT_V08),
        "addresses known offline"
    );

    let entry_point = EntryPoint::new(ENTRY_POINT_V08, &chain.relayer);
    let sender_creator = entry_point
        .senderCreator()
        .call()
        .await
        .expect("senderCreator");
    assert!(
        !chain.relayer_code(sender_creator).await.is_empty(),
        "EntryPoint constructed"
    );

    let factory = SessionKeyAccountFactory::new(deployment.factory, &chain.relayer);
    let implementation = factory
        .accountImplementation()
        .call()
        .await
        .expect("implementation");
    let account = SessionKeyAccount::new(implementation, &chain.relayer);
    assert_eq!(
        account.entryPoint().call().await.expect("entryPoint"),
        ENTRY_POINT_V08
    );
}

#[tokio::test]
async fn deploying_twice_sends_nothing_and_returns_the_same_addresses() {
    let chain = TestChain::start().await;
    let provider = &chain.chain.provider;
    let deployer = chain.chain.dev_accounts()[0];
    let nonce_before = provider
        .get_transaction_count(deployer)
        .await
        .expect("nonce");

    let again = deploy_all(provider).await.expect("second deployment");

    assert_eq!(again, chain.chain.deployment);
    let nonce_after = provider
        .get_transaction_count(deployer)
        .await
        .expect("nonce");
    assert_eq!(nonce_before, nonce_after, "no transaction sent");
}
