//! Players without wallets: a passkey owns the account, and session keys are P-256 keys of
//! the kinds a browser holds (a WebCrypto key, a WebAuthn credential). Every signature is
//! made here as the browser and the authenticator would make it: a software authenticator
//! on the p256 crate.

use alloy::{primitives::B256, providers::Provider, signers::local::PrivateKeySigner};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use latchkey::{
    api::proto::{self, TransactionIntentStatus as S},
    chain::contracts::SessionKeyAccount,
};
use p256::ecdsa::{Signature, SigningKey, signature::Signer as _};
use sha2::{Digest, Sha256};
use tonic::Code;

use crate::{
    daemon::{
        TestDaemon, account_address, mint_interaction, mint_session_request, next_action_hash,
        refused, registration,
    },
    harness::TestChain,
};

/// User present and user verified.
const UP_UV: u8 = 0x05;

/// A P-256 key as a browser or an authenticator holds it.
struct Device {
    key: SigningKey,
}

impl Device {
    fn new() -> Self {
        let key = std::iter::repeat_with(rand::random::<[u8; 32]>)
            .find_map(|bytes| SigningKey::from_slice(&bytes).ok())
            .expect("a scalar");
        Self { key }
    }

    /// The public key as WebCrypto's `exportKey("raw")` gives it: 0x04 ‖ x ‖ y.
    fn signer(&self, kind: proto::SignerKind) -> proto::Signer {
        let point = self.key.verifying_key().to_encoded_point(false);
        proto::Signer {
            kind: kind as i32,
            key: format!("0x{}", alloy::hex::encode(point.as_bytes())),
            id: String::new(),
        }
    }

    /// WebCrypto's `sign({name: "ECDSA", hash: "SHA-256"}, key, hash)`: 64 bytes r ‖ s.
    fn sign_raw(&self, hash: B256) -> String {
        let signature: Signature = self.key.sign(hash.as_slice());
        format!("0x{}", alloy::hex::encode(signature.to_bytes()))
    }

    /// What `navigator.credentials.get({publicKey: {challenge}})` returns, with `flags`.
    fn assert(&self, challenge: &str, flags: u8) -> proto::WebAuthnAssertion {
        let rp_id_hash: [u8; 32] = Sha256::digest(b"game.example").into();
        let mut authenticator_data = rp_id_hash.to_vec();
        authenticator_data.push(flags);
        authenticator_data.extend_from_slice(&7u32.to_be_bytes());
        let client_data_json = format!(
            r#"{{"type":"webauthn.get","challenge":"{challenge}","origin":"https://game.example","crossOrigin":false}}"#
        );
        let client_data_hash: [u8; 32] = Sha256::digest(client_data_json.as_bytes()).into();
        let signature: Signature = self
            .key
            .sign(&[&authenticator_data[..], &client_data_hash].concat());
        proto::WebAuthnAssertion {
            authenticator_data: format!("0x{}", alloy::hex::encode(&authenticator_data)),
            client_data_json: format!("0x{}", alloy::hex::encode(client_data_json)),
            signature: format!("0x{}", alloy::hex::encode(signature.to_der().as_bytes())),
        }
    }
}

/// The challenge of a next action, checked against its hash.
fn challenge_of(action: Option<&proto::NextAction>) -> String {
    let action = action.expect("a next action");
    assert_eq!(
        action.webauthn_challenge,
        URL_SAFE_NO_PAD.encode(next_action_hash(Some(action))),
        "the challenge is the signable hash, base64url"
    );
    assert!(action.typed_data.is_empty(), "no typed data for a passkey");
    action.webauthn_challenge.clone()
}

#[tokio::test]
async fn a_passkey_owner_registers_a_webcrypto_key_that_mints() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let passkey = Device::new();
    let browser_key = Device::new();

    let owner_signer = passkey.signer(proto::SignerKind::Webauthn);
    let computed = daemon
        .accounts
        .compute_account_address(proto::ComputeAccountAddressRequest {
            owner_signer: Some(owner_signer.clone()),
            ..Default::default()
        })
        .await
        .expect("address of a passkey's account")
        .into_inner();
    let mut request = mint_session_request(&chain, alloy::primitives::Address::ZERO, 3).await;
    request.owner = String::new();
    request.owner_signer = Some(owner_signer);
    request.custody = proto::KeyCustody::External as i32;
    request.key_signer = Some(browser_key.signer(proto::SignerKind::P256));
    let session = daemon
        .sessions
        .create_session(request)
        .await
        .expect("create session")
        .into_inner();
    assert_eq!(session.account, computed.account);
    let account = account_address(&session.account);
    chain.fund(account).await;
    let owner = session.owner_signer.clone().expect("owner signer");
    assert_eq!(owner.kind, proto::SignerKind::Webauthn as i32);
    assert_eq!(session.owner, owner.id);
    let key = session.key_signer.clone().expect("key signer");
    assert_eq!(key.kind, proto::SignerKind::P256 as i32);
    assert_eq!(session.key_address, key.id);

    // The passkey signs the registration: an assertion of its challenge. One without user
    // verification is refused by name, before any gas.
    let challenge = challenge_of(session.next_action.as_ref());
    let unverified = daemon
        .sessions
        .submit_session_signature(proto::SubmitSessionSignatureRequest {
            name: session.name.clone(),
            webauthn: Some(passkey.assert(&challenge, 0x01)),
            ..Default::default()
        })
        .await
        .expect_err("UV is required");
    assert_eq!(unverified.code(), Code::InvalidArgument);
    assert!(
        unverified.message().contains("webauthn.authenticator_data"),
        "{unverified:?}"
    );
    let stranger = Device::new().assert(&challenge, UP_UV);
    let refused = daemon
        .sessions
        .submit_session_signature(proto::SubmitSessionSignatureRequest {
            name: session.name.clone(),
            webauthn: Some(stranger),
            ..Default::default()
        })
        .await
        .expect_err("another credential");
    assert!(
        refused.message().contains("webauthn.signature"),
        "{refused:?}"
    );
    daemon
        .sessions
        .submit_session_signature(proto::SubmitSessionSignatureRequest {
            name: session.name.clone(),
            webauthn: Some(passkey.assert(&challenge, UP_UV)),
            ..Default::default()
        })
        .await
        .expect("the passkey's assertion");
    let active = daemon
        .wait_session(&session.name, proto::SessionStatus::Active)
        .await;

    report_registration_gas(
        &chain,
        "passkey owner: deploy + register a P-256 key",
        &active,
    )
    .await;
    let contract = SessionKeyAccount::new(account, &chain.relayer);
    assert_eq!(contract.ownerKind().call().await.expect("view"), 2);
    let stored = contract
        .getSessionKey(registration(&active))
        .call()
        .await
        .expect("view");
    assert!(stored.registered);
    assert_eq!(stored.kind, 1, "a raw P-256 key");

    // The browser key signs each intent touch-free, as WebCrypto does; another key's
    // signature is refused.
    for id in [4, 5] {
        let intent = create_mint(&mut daemon, &chain, &active, id).await;
        let hash = next_action_hash(intent.next_action.as_ref());
        let wrong = daemon
            .intents
            .submit_intent_signature(proto::SubmitIntentSignatureRequest {
                name: intent.name.clone(),
                signature: Device::new().sign_raw(hash),
                ..Default::default()
            })
            .await
            .expect_err("another key");
        assert_eq!(wrong.code(), Code::InvalidArgument);
        assert!(wrong.message().contains("signature"), "{wrong:?}");
        let signed = proto::SubmitIntentSignatureRequest {
            name: intent.name.clone(),
            signature: browser_key.sign_raw(hash),
            ..Default::default()
        };
        let what = format!("P-256 (WebCrypto) session-key mint of item {id}");
        sign_and_confirm(&chain, &mut daemon, signed, &what).await;
    }
}

#[tokio::test]
async fn a_webauthn_session_key_mints() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let owner = PrivateKeySigner::random();
    let credential = Device::new();
    let mut request = mint_session_request(&chain, owner.address(), 3).await;
    request.custody = proto::KeyCustody::External as i32;
    request.key_signer = Some(credential.signer(proto::SignerKind::Webauthn));
    let session = daemon
        .sessions
        .create_session(request)
        .await
        .expect("create session")
        .into_inner();
    chain.fund(account_address(&session.account)).await;
    let active = daemon.sign_and_activate(&owner, session).await;

    for id in [5, 6] {
        let intent = create_mint(&mut daemon, &chain, &active, id).await;
        let challenge = challenge_of(intent.next_action.as_ref());
        let signed = proto::SubmitIntentSignatureRequest {
            name: intent.name.clone(),
            webauthn: Some(credential.assert(&challenge, UP_UV)),
            ..Default::default()
        };
        let what = format!("WebAuthn session-key mint of item {id}");
        sign_and_confirm(&chain, &mut daemon, signed, &what).await;
    }
}

#[tokio::test]
async fn signer_fields_are_checked_at_the_edge_by_name_and_write_nothing() {
    let chain = TestChain::start().await;
    let daemon = TestDaemon::start(&chain).await;
    let mut sessions = daemon.sessions.clone();
    let device = Device::new();
    let base = mint_session_request(&chain, alloy::primitives::Address::ZERO, 3).await;
    let passkey_owner = proto::CreateSessionRequest {
        owner: String::new(),
        owner_signer: Some(device.signer(proto::SignerKind::Webauthn)),
        ..base.clone()
    };
    let mut off_curve = device.signer(proto::SignerKind::P256);
    off_curve.key.replace_range(off_curve.key.len() - 2.., "00");
    let cases: Vec<(&str, proto::CreateSessionRequest, &str)> = vec![
        (
            "a raw P-256 owner",
            proto::CreateSessionRequest {
                owner_signer: Some(device.signer(proto::SignerKind::P256)),
                ..passkey_owner.clone()
            },
            "owner_signer.kind",
        ),
        (
            "no kind",
            proto::CreateSessionRequest {
                owner_signer: Some(device.signer(proto::SignerKind::Unspecified)),
                ..passkey_owner.clone()
            },
            "owner_signer.kind",
        ),
        (
            "both owner forms",
            proto::CreateSessionRequest {
                owner: PrivateKeySigner::random().address().to_string(),
                ..passkey_owner.clone()
            },
            "owner_signer",
        ),
        (
            "a key off the curve",
            proto::CreateSessionRequest {
                custody: proto::KeyCustody::External as i32,
                key_signer: Some(off_curve),
                ..passkey_owner.clone()
            },
            "key_signer.key",
        ),
        (
            "both key forms",
            proto::CreateSessionRequest {
                custody: proto::KeyCustody::External as i32,
                key_address: PrivateKeySigner::random().address().to_string(),
                key_signer: Some(device.signer(proto::SignerKind::P256)),
                ..passkey_owner.clone()
            },
            "key_signer",
        ),
        (
            "a signer for a HELD key",
            proto::CreateSessionRequest {
                key_signer: Some(device.signer(proto::SignerKind::P256)),
                ..passkey_owner.clone()
            },
            "key_signer",
        ),
        (
            "the owner's passkey as its session key",
            proto::CreateSessionRequest {
                custody: proto::KeyCustody::External as i32,
                key_signer: Some(device.signer(proto::SignerKind::Webauthn)),
                ..passkey_owner.clone()
            },
            "key_signer",
        ),
    ];
    for (what, request, field) in cases {
        refused(
            &daemon,
            what,
            sessions.create_session(request),
            Code::InvalidArgument,
            field,
        )
        .await;
    }

    // A passkey's registration takes an assertion, not signature bytes, and never both.
    let session = sessions
        .create_session(passkey_owner)
        .await
        .expect("create session")
        .into_inner();
    let challenge = challenge_of(session.next_action.as_ref());
    let hash = next_action_hash(session.next_action.as_ref());
    for (what, signature, webauthn, field) in [
        (
            "bytes for a passkey",
            device.sign_raw(hash),
            None,
            "signature",
        ),
        (
            "both forms",
            device.sign_raw(hash),
            Some(device.assert(&challenge, UP_UV)),
            "webauthn",
        ),
        (
            "an assertion that is not hex",
            String::new(),
            Some(proto::WebAuthnAssertion {
                client_data_json: "{}".into(),
                ..device.assert(&challenge, UP_UV)
            }),
            "webauthn.client_data_json",
        ),
    ] {
        refused(
            &daemon,
            what,
            sessions.submit_session_signature(proto::SubmitSessionSignatureRequest {
                name: session.name.clone(),
                signature,
                webauthn,
            }),
            Code::InvalidArgument,
            field,
        )
        .await;
    }
}

/// The baseline for the gas of the two tests above: the same mints, signed by an EXTERNAL
/// secp256k1 key.
#[tokio::test]
async fn a_secp256k1_session_key_mints_for_comparison() {
    let chain = TestChain::start().await;
    let mut daemon = TestDaemon::start(&chain).await;
    let owner = PrivateKeySigner::random();
    let key = PrivateKeySigner::random();
    let session = daemon
        .active_external_session(&chain, &owner, key.address(), 3)
        .await;
    report_registration_gas(
        &chain,
        "Ethereum owner: deploy + register a secp256k1 key",
        &session,
    )
    .await;
    for id in [5, 6] {
        let intent = create_mint(&mut daemon, &chain, &session, id).await;
        let hash = next_action_hash(intent.next_action.as_ref());
        let signature = latchkey::chain::signature::sign_hash(&key, hash).expect("sign");
        let signed = proto::SubmitIntentSignatureRequest {
            name: intent.name.clone(),
            signature: signature.to_string(),
            ..Default::default()
        };
        let what = format!("secp256k1 session-key mint of item {id}");
        sign_and_confirm(&chain, &mut daemon, signed, &what).await;
    }
}

async fn create_mint(
    daemon: &mut TestDaemon,
    chain: &TestChain,
    session: &proto::Session,
    id: u64,
) -> proto::TransactionIntent {
    daemon
        .intents
        .create_transaction_intent(proto::CreateTransactionIntentRequest {
            session: session.name.clone(),
            interactions: vec![mint_interaction(
                chain,
                &account_address(&session.account).to_string(),
                id,
                1,
            )],
            ..Default::default()
        })
        .await
        .expect("create intent")
        .into_inner()
}

/// Submits `signed`, waits for its intent to confirm, and prints the gas of the bundle that
/// carried it as `what`.
async fn sign_and_confirm(
    chain: &TestChain,
    daemon: &mut TestDaemon,
    signed: proto::SubmitIntentSignatureRequest,
    what: &str,
) {
    let name = signed.name.clone();
    daemon
        .intents
        .submit_intent_signature(signed)
        .await
        .unwrap_or_else(|status| panic!("{what}: the signature is refused: {status:?}"));
    let done = daemon.wait_final(&name).await;
    assert_eq!(done.status, S::Confirmed as i32, "{what}: {done:?}");
    report_gas(chain, what, &done).await;
}

/// Prints what the session's registration transaction used.
async fn report_registration_gas(chain: &TestChain, what: &str, session: &proto::Session) {
    let receipt = chain
        .relayer
        .get_transaction_receipt(session.registration_transaction_hash.parse().expect("hash"))
        .await
        .expect("receipt")
        .expect("mined");
    println!("{what}: handleOps gas {}", receipt.gas_used);
}

/// Prints what the operation's one-operation `handleOps` transaction used: the figure the
/// closing gas table compares across signer kinds.
async fn report_gas(chain: &TestChain, what: &str, intent: &proto::TransactionIntent) {
    let result = intent.result.as_ref().expect("a result");
    let receipt = chain
        .relayer
        .get_transaction_receipt(result.transaction_hash.parse().expect("hash"))
        .await
        .expect("receipt")
        .expect("mined");
    println!(
        "{what}: handleOps gas {}, op actualGasUsed {}",
        receipt.gas_used, result.gas_used
    );
}
