//! The first operation of an account that someone else deployed first. Anyone may call the
//! factory's `createAccount` for any owner; the owner's signed registration, which deploys
//! the account through its initCode, would then fail with AA10. It is rebuilt without the
//! initCode and handed back to the owner, so nothing is lost.

use alloy::{
    network::EthereumWallet,
    primitives::{Address, U256, utils::parse_ether},
    providers::{ProviderBuilder, ext::AnvilApi},
    signers::local::PrivateKeySigner,
};
use latchkey::{
    api::proto::{self, TransactionIntentStatus as S},
    chain::{
        contracts::SessionKeyAccountFactory,
        ops::{ContractSigner, factory_owner},
    },
};

use crate::{
    daemon::{
        TestDaemon, account_address, admin_client, mint_session_request, next_action_hash,
        stored_intent,
    },
    harness::TestChain,
    sponsorship::open_policy,
};

#[tokio::test]
async fn a_registration_whose_account_someone_else_deployed_is_rebuilt_and_not_lost() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let owner = PrivateKeySigner::random();
    let request = mint_session_request(&chain, owner.address(), 3).await;
    let account = front_run_registration(&chain, &mut daemon, &owner, request).await;
    // The account paid for its own registration, deployed by someone else or not.
    assert!(!chain.relayer_code(account).await.is_empty());
}

#[tokio::test]
async fn a_sponsored_registration_is_approved_again_when_rebuilt() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let policy = open_policy(&mut daemon.api).await;
    let owner = PrivateKeySigner::random();
    let mut request = mint_session_request(&chain, owner.address(), 3).await;
    request.policy = policy.name;
    front_run_registration(&chain, &mut daemon, &owner, request).await;
}

/// Creates the session `request` asks for, has the owner sign while the relay is paused,
/// deploys the account from a stranger's wallet, and checks the registration comes back
/// rebuilt, is signed again, and leads to a key that mints. Returns the account.
async fn front_run_registration(
    chain: &TestChain,
    daemon: &mut TestDaemon,
    owner: &PrivateKeySigner,
    request: proto::CreateSessionRequest,
) -> Address {
    let mut admin = admin_client(daemon.admin_addr.expect("admin")).await;
    admin
        .pause_relay(proto::PauseRelayRequest {
            reason: "a stranger deploys the account first".into(),
        })
        .await
        .expect("pause");
    let sponsored = !request.policy.is_empty();
    let session = daemon
        .sessions
        .create_session(request)
        .await
        .expect("create session")
        .into_inner();
    let account = account_address(&session.account);
    if !sponsored {
        chain.fund(account).await;
    }
    daemon.submit_owner_signature(owner, &session).await;
    let first_hash = next_action_hash(session.next_action.as_ref());

    deploy_as_stranger(chain, owner.address()).await;
    assert!(
        !chain.relayer_code(account).await.is_empty(),
        "the stranger deployed the account"
    );

    admin
        .resume_relay(proto::ResumeRelayRequest {})
        .await
        .expect("resume");
    let pending = daemon
        .wait_session(&session.name, proto::SessionStatus::PendingSignature)
        .await;
    assert!(
        pending.failure_reason.contains("AA10"),
        "the session says why: {}",
        pending.failure_reason
    );
    let second_hash = next_action_hash(pending.next_action.as_ref());
    assert_ne!(second_hash, first_hash, "a new operation to sign");
    let registration = stored_intent(daemon, &pending.registration_intent);
    assert_eq!(registration.user_op_hash, second_hash);
    assert!(registration.user_op.factory.is_none(), "no initCode now");
    assert_eq!(registration.user_op.paymaster.is_some(), sponsored);

    // The first signature is no good for the new operation; the owner signs it again.
    let active = daemon.sign_and_activate(owner, pending).await;
    assert!(
        active.failure_reason.is_empty(),
        "{}",
        active.failure_reason
    );
    let mint = daemon.create_mint(chain, &active, 1).await;
    let done = daemon.wait_final(&mint.name).await;
    assert_eq!(done.status, S::Confirmed as i32, "{done:?}");
    account
}

/// `createAccount(owner, 0)` sent from a stranger's funded wallet.
async fn deploy_as_stranger(chain: &TestChain, owner: Address) {
    let stranger = PrivateKeySigner::random();
    chain
        .relayer
        .anvil_set_balance(stranger.address(), parse_ether("1").expect("constant"))
        .await
        .expect("fund the stranger");
    let wallet = ProviderBuilder::new()
        .wallet(EthereumWallet::from(stranger))
        .connect_http(chain.chain.rpc_url());
    SessionKeyAccountFactory::new(chain.chain.deployment.factory, &wallet)
        .createAccount(factory_owner(&ContractSigner::ethereum(owner)), U256::ZERO)
        .send()
        .await
        .expect("send createAccount")
        .get_receipt()
        .await
        .expect("createAccount mined");
}
