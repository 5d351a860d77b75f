//! Sessions: created with the registration the owner signs, signed, read, listed, and
//! revoked with the revocation the owner signs.

use alloy::primitives::{Address, B256, U256};
use tracing::info;

use super::{App, AppError, intents::check_deadline, reasons};
use crate::{
    auth::{ClientAccess, TenantId, Visibility},
    chain::{ops, signature::registration_id, user_operation::UserOperation},
    clock::now_ms,
    intent::{Intent, IntentEvent, IntentId, IntentKind, IntentStatus},
    keys,
    policy::{Charge, Operation, PolicyId},
    session::{
        DEFAULT_LIFETIME_SECS, KeyCustody, Permissions, Session, SessionEvent, SessionId,
        SessionStatus, Usage,
    },
    signer::{self, PublicKey, Role, SubmittedSignature},
    store::{Page, PageRequest, SessionFilter, retry_lost_races},
};

/// What a client asks for when it creates a session.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The tenant the session belongs to: the caller's.
    pub tenant: TenantId,
    /// The account owner: an Ethereum key or a passkey.
    pub owner: PublicKey,
    /// The account's salt.
    pub salt: U256,
    /// Who holds the key.
    pub custody: KeyCustody,
    /// The key, of any kind, for external custody.
    pub external_key: Option<PublicKey>,
    /// Start of the window (exclusive), unix seconds; 0 for no start.
    pub valid_after: u64,
    /// End of the window, unix seconds; 0 for [`DEFAULT_LIFETIME_SECS`] from now.
    pub valid_until: u64,
    /// What the key may do.
    pub permissions: Permissions,
    /// The policy that sponsors the session's operations, if any.
    pub policy: Option<PolicyId>,
    /// What the session's own client may do with stamps of its key.
    pub client_access: ClientAccess,
    /// The most client access the caller's API key may grant.
    pub may_grant: ClientAccess,
}

/// Whether the caller may open the session to its client as asked: its API key must grant
/// that much, and the client's stamps need a key the browser holds, a raw P-256 one.
fn check_client_access(request: &NewSession) -> Result<(), AppError> {
    if request.client_access == ClientAccess::None {
        return Ok(());
    }
    if request.client_access > request.may_grant {
        return Err(AppError::PermissionDenied {
            reason: reasons::CLIENT_ACCESS_NOT_GRANTED,
            field: "client_access",
            message: format!(
                "{} is more than this API key may grant ({}); an operator sets it when \
                 creating the key",
                request.client_access, request.may_grant
            ),
        });
    }
    if !matches!(request.external_key, Some(PublicKey::P256(_))) {
        return Err(AppError::invalid(
            "key_signer",
            "a session with client access needs an EXTERNAL SIGNER_KIND_P256 key: the \
             client's WebCrypto key, which signs its stamps",
        ));
    }
    Ok(())
}

/// A session with the intent that waits for the owner's signature, if any.
#[derive(Debug, Clone)]
pub struct SessionView {
    /// The session.
    pub session: Session,
    /// Its registration intent.
    pub registration: Intent,
    /// Its revocation intent, once requested.
    pub revocation: Option<Intent>,
}

impl SessionView {
    /// The intent whose userOpHash the owner must sign next, if the session waits for a
    /// signature: its registration or its revocation.
    pub fn pending_signature(&self) -> Option<&Intent> {
        [Some(&self.registration), self.revocation.as_ref()]
            .into_iter()
            .flatten()
            .find(|intent| intent.status == IntentStatus::PendingSignature)
    }
}

impl App {
    /// Creates a session in `PendingSignature`, with the registration operation the owner
    /// must sign. Nothing is written unless every check passes.
    pub async fn create_session(&self, mut request: NewSession) -> Result<SessionView, AppError> {
        check_client_access(&request)?;
        let chain = self.chain();
        let now = chain.inclusion_time().await?;
        if request.valid_until == 0 {
            request.valid_until = now.saturating_add(DEFAULT_LIFETIME_SECS);
        }
        if request.valid_until <= now.saturating_add(self.config().window_margin_secs) {
            return Err(AppError::invalid(
                "valid_until",
                format!(
                    "must be more than {} s after now ({now}, the later of the latest block's \
                     time and the wall clock)",
                    self.config().window_margin_secs
                ),
            ));
        }
        if request.valid_after >= request.valid_until {
            return Err(AppError::invalid(
                "valid_after",
                "must be before valid_until",
            ));
        }
        let owner_field = match request.owner {
            PublicKey::Secp256k1(_) => "owner",
            _ => "owner_signer",
        };
        if matches!(request.owner, PublicKey::P256(_)) {
            return Err(AppError::invalid(
                "owner_signer.kind",
                "an account's owner is SIGNER_KIND_SECP256K1 or SIGNER_KIND_WEBAUTHN",
            ));
        }
        let account = chain
            .account_address(&request.owner.to_contract(), request.salt)
            .await?;
        let deployed = chain.is_deployed(account).await?;
        if deployed {
            let owner = chain.owner_of(account).await?;
            if owner != request.owner.id() {
                return Err(AppError::precondition(
                    reasons::OWNER_MISMATCH,
                    owner_field,
                    format!(
                        "account {account} is now owned by {owner}, not {}",
                        request.owner
                    ),
                ));
            }
        }
        let policy = self
            .named_policy(request.policy.as_ref(), &request.tenant)
            .await?;
        if let Some(policy) = &policy {
            policy.check(
                Operation::Registration {
                    deploys_account: !deployed,
                },
                chain.chain_id(),
            )?;
        }
        if let Some(policy) = &policy
            && let Err(refusal) = policy.check(Operation::Revocation, chain.chain_id())
        {
            // Its player holds no ETH: if the policy would not pay to revoke the key,
            // nobody could.
            return Err(AppError::precondition(
                refusal.reason(),
                refusal.rule(),
                format!("{refusal}; a session a policy sponsors must be revocable under it"),
            ));
        }
        let deployment = chain.deployment();
        for permission in &request.permissions.calls {
            if [account, deployment.entry_point, Address::ZERO].contains(&permission.target) {
                return Err(AppError::invalid(
                    "permissions.calls.target",
                    format!("{} is the account or the EntryPoint", permission.target),
                ));
            }
        }

        let held = match request.custody {
            KeyCustody::Held => Some(keys::generate()),
            KeyCustody::External => None,
        };
        let key = match (&held, request.external_key) {
            (Some(generated), _) => PublicKey::Secp256k1(generated.address),
            (None, Some(key)) => key,
            (None, None) => {
                return Err(AppError::invalid(
                    "key_address",
                    "required for EXTERNAL (or key_signer)",
                ));
            }
        };
        let key_id = key.id();
        if key_id == request.owner.id() || key_id == account || key_id == Address::ZERO {
            return Err(AppError::invalid(
                match key {
                    PublicKey::Secp256k1(_) => "key_address",
                    _ => "key_signer",
                },
                "must differ from the owner, the account and the zero address",
            ));
        }

        let now_ms = now_ms();
        let session_id = SessionId::generate();
        let intent_id = IntentId::generate();
        let fees = chain.fees().await?;
        let mut op = UserOperation {
            sender: account,
            nonce: ops::owner_nonce(intent_id.as_str().as_bytes()),
            call_data: ops::registration_call_data(
                account,
                registration_id(session_id.as_str()),
                &key.to_contract(),
                request.valid_after,
                request.valid_until,
                request.permissions.to_contract(),
            ),
            call_gas_limit: request.permissions.registration_call_gas(),
            verification_gas_limit: ops::owner_verification_gas(
                request.owner.is_p256().then(|| chain.p256_path()),
            ) + if deployed { 0 } else { ops::DEPLOYMENT_GAS },
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            ..Default::default()
        };
        if !deployed {
            op.factory = Some(deployment.factory);
            op.factory_data = ops::factory_data(&request.owner.to_contract(), request.salt);
        }
        let charge = self.finish_op(
            policy.as_ref(),
            Operation::Registration {
                deploys_account: !deployed,
            },
            &mut op,
            now,
            now_ms,
        )?;
        let user_op_hash = op.hash_v08(deployment.entry_point, chain.chain_id())?;

        let mut session = Session {
            tenant: request.tenant,
            id: session_id,
            account,
            owner: request.owner.id(),
            owner_p256: request.owner.is_p256().then_some(request.owner),
            salt: request.salt,
            chain_id: chain.chain_id(),
            key: key_id,
            key_p256: key.is_p256().then_some(key),
            custody: request.custody,
            valid_after: request.valid_after,
            valid_until: request.valid_until,
            permissions: request.permissions,
            policy: request.policy,
            client_access: request.client_access,
            status: SessionStatus::PendingSignature,
            registration_intent: intent_id.clone(),
            revocation_intent: None,
            failure_reason: None,
            usage: Usage::default(),
            next_intent_lane: 0,
            revision: 0,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        };
        // A key registered again (an EXTERNAL key can be) must not reuse its old lanes.
        session.next_intent_lane = ops::first_intent_lane(session.id.as_str().as_bytes());
        let mut registration = self.awaiting_owner(
            intent_id,
            IntentKind::Registration,
            &session,
            (op, user_op_hash),
            charge,
            now_ms,
        );
        let sealed = held
            .as_ref()
            .map(|generated| {
                keys::seal(
                    &self.config().master_key,
                    generated.address,
                    &generated.secret,
                )
                .map(|sealed| (generated.address, sealed))
            })
            .transpose()
            .map_err(|_| AppError::Internal("sealing the new session key failed"))?;
        let held_key = sealed
            .as_ref()
            .map(|(address, sealed)| (*address, sealed.as_slice()));
        self.store()
            .create_session(&mut session, &mut registration, held_key)
            .await?;
        // Acknowledged means durable: the client may act on the answer at once.
        self.store().flush().await?;
        info!(target: "session", session = %session.id, tenant = %session.tenant, %account, key = %key_id, "created");
        self.session(&session.id, &Visibility::All).await
    }

    /// A new intent of `session` that waits for the owner's signature until the signature
    /// timeout, charged to its policy when sponsored.
    fn awaiting_owner(
        &self,
        id: IntentId,
        kind: IntentKind,
        session: &Session,
        operation: (UserOperation, B256),
        charge: Option<Charge>,
        now_ms: u64,
    ) -> Intent {
        let mut intent = Intent::new(
            id,
            kind,
            session,
            operation,
            self.chain().deployment().entry_point,
            IntentStatus::PendingSignature,
            now_ms,
        );
        intent.signature_deadline_ms = Some(now_ms.saturating_add(self.signature_timeout_ms()));
        intent.charge = charge;
        intent
    }

    /// A session `visibility` covers, named by the request's `field`; any other is not
    /// found, exactly like one that never existed, so a tenant learns nothing of another's
    /// ids.
    pub(super) async fn visible_session(
        &self,
        field: &'static str,
        id: &SessionId,
        visibility: &Visibility,
    ) -> Result<Session, AppError> {
        super::visible(
            self.store().session(id).await?,
            visibility,
            field,
            id.resource_name(),
        )
    }

    /// A session with its registration and revocation intents.
    pub async fn session(
        &self,
        id: &SessionId,
        visibility: &Visibility,
    ) -> Result<SessionView, AppError> {
        let session = self.visible_session("name", id, visibility).await?;
        let registration = self
            .store()
            .intent(&session.registration_intent)
            .await?
            .ok_or(AppError::Internal("a session's registration is missing"))?;
        let revocation = match &session.revocation_intent {
            Some(id) => Some(
                self.store()
                    .intent(id)
                    .await?
                    .ok_or(AppError::Internal("a session's revocation is missing"))?,
            ),
            None => None,
        };
        Ok(SessionView {
            session,
            registration,
            revocation,
        })
    }

    /// Sessions, newest first.
    pub async fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: &PageRequest,
    ) -> Result<Page<SessionView>, AppError> {
        let sessions = self.store().list_sessions(filter, page).await?;
        let mut items = Vec::with_capacity(sessions.items.len());
        for session in &sessions.items {
            items.push(self.session(&session.id, &Visibility::All).await?);
        }
        Ok(Page {
            items,
            next_token: sessions.next_token,
        })
    }

    /// Attaches the owner's signature to the session's pending registration or revocation,
    /// and queues it for relay. A signature from anyone but the owner is refused here,
    /// before any gas is spent.
    pub async fn submit_session_signature(
        &self,
        id: &SessionId,
        visibility: &Visibility,
        signature: SubmittedSignature,
    ) -> Result<SessionView, AppError> {
        let signature = &signature;
        retry_lost_races(|| async move {
            let view = self.session(id, visibility).await?;
            let mut session = view.session;
            let nothing_pending = || {
                AppError::precondition(
                    reasons::NO_SIGNATURE_PENDING,
                    "status",
                    format!(
                        "the session is {}: no signature is pending",
                        session.status.api_name()
                    ),
                )
            };
            if session.status.is_final() {
                return Err(nothing_pending());
            }
            let mut intent = [Some(view.registration), view.revocation]
                .into_iter()
                .flatten()
                .find(|intent| intent.status == IntentStatus::PendingSignature)
                .ok_or_else(nothing_pending)?;
            check_deadline(&intent)?;
            if intent.kind == IntentKind::Registration
                && self.chain().inclusion_time().await? >= session.valid_until
            {
                return Err(AppError::precondition(
                    reasons::SESSION_WINDOW_CLOSED,
                    "valid_until",
                    "the session's window has closed; create a new session",
                ));
            }
            let accepted =
                signer::verify(&session.owner_key(), Role::Owner, intent.user_op_hash, signature)
                    .map_err(|error| {
                        AppError::invalid(
                            error.field(),
                            format!("{error}: the account owner signs it"),
                        )
                    })?;
            let now_ms = now_ms();
            intent.user_op.signature = intent.framed_signature(&accepted);
            // A rebuilt registration said why it needed signing again; now it is signed.
            intent.failure_reason = None;
            session.failure_reason = None;
            intent.apply(&IntentEvent::Signed, now_ms)?;
            intent.settle_session(&mut session, now_ms)?;
            self.store().save(&mut [&mut session], &mut [&mut intent]).await?;
                self.store().flush().await?;
                info!(target: "session", session = %id, user_op_hash = %intent.user_op_hash, "owner signed");
            self.session(id, &Visibility::All).await
        })
        .await
    }

    /// Starts revoking an active session: a revocation operation for the owner to sign.
    pub async fn revoke_session(
        &self,
        id: &SessionId,
        visibility: &Visibility,
    ) -> Result<SessionView, AppError> {
        // Not found before anything is asked of the chain, whoever's session it is.
        self.visible_session("name", id, visibility).await?;
        let chain = self.chain();
        let inclusion_time = chain.inclusion_time().await?;
        let fees = &chain.fees().await?;
        retry_lost_races(|| async move {
            let mut session = self
                .store()
                .session(id).await?
                .ok_or_else(|| AppError::not_found("name", id.resource_name()))?;
            if session.status != SessionStatus::Active {
                return Err(AppError::precondition(
                    reasons::SESSION_NOT_REVOCABLE,
                    "status",
                    format!(
                        "only a SESSION_STATUS_ACTIVE session can be revoked; this one is {}",
                        session.status.api_name()
                    ),
                ));
            }
            let now_ms = now_ms();
            let intent_id = IntentId::generate();
            let mut op = UserOperation {
                sender: session.account,
                nonce: ops::owner_nonce(intent_id.as_str().as_bytes()),
                call_data: ops::revocation_call_data(
                    session.account,
                    registration_id(session.id.as_str()),
                ),
                call_gas_limit: ops::REVOCATION_CALL_GAS,
                verification_gas_limit: ops::owner_verification_gas(
                    session.owner_p256.map(|_| chain.p256_path()),
                ),
                max_fee_per_gas: fees.max_fee_per_gas,
                max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
                ..Default::default()
            };
            // A session sponsored from its registration is sponsored to its revocation: its
            // policy covered revocation when the session was created, and admits a
            // revocation even when disabled or at its limits.
            let policy = self.named_policy(session.policy.as_ref(), &session.tenant).await?;
            let charge = self.finish_op(
                policy.as_ref(),
                Operation::Revocation,
                &mut op,
                inclusion_time,
                now_ms,
            )?;
            let user_op_hash = op.hash_v08(chain.deployment().entry_point, chain.chain_id())?;
            let mut revocation = self.awaiting_owner(
                intent_id.clone(),
                IntentKind::Revocation,
                &session,
                (op, user_op_hash),
                charge,
                now_ms,
            );
            session.apply(&SessionEvent::RevocationRequested, now_ms)?;
            session.revocation_intent = Some(intent_id);
            session.failure_reason = None;
            self.store().create_intent(&mut session, &mut revocation).await?;
                self.store().flush().await?;
                info!(target: "session", session = %id, user_op_hash = %user_op_hash, "revocation requested");
            self.session(id, &Visibility::All).await
        })
        .await
    }
}
