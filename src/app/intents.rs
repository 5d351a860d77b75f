//! Transaction intents: created on an active session (signed at once with a held key, or
//! left for the holder of an external one), signed, read and listed.

use super::{App, AppError, reasons};
use crate::{
    auth::Visibility,
    chain::{ChainError, ops, signature::sign_hash, user_operation::UserOperation},
    clock::now_ms,
    intent::{Intent, IntentEvent, IntentId, IntentKind, IntentStatus, Interaction},
    keys,
    policy::{Operation, PolicyId},
    session::{
        KeyCustody, Session, SessionId, SessionStatus,
        rules::{self, CheckContext},
    },
    signer::{self, Role, SubmittedSignature},
    store::{CreateIntent, IntentFilter, Page, PageRequest, retry_lost_races},
};

/// Most intents one session may have waiting for their signature at once. An unsigned
/// intent reserves the session's limits and its policy's until it is signed or expires, so
/// without a bound one caller could tie up a policy with requests it never signs.
pub const MAX_UNSIGNED_INTENTS_PER_SESSION: usize = 8;

/// Refuses anything but an ACTIVE session.
fn check_active(session: &Session) -> Result<(), AppError> {
    if session.status != SessionStatus::Active {
        return Err(AppError::precondition(
            reasons::SESSION_NOT_ACTIVE,
            "session_status",
            format!(
                "{} is {}, not SESSION_STATUS_ACTIVE",
                session.id.resource_name(),
                session.status.api_name()
            ),
        ));
    }
    Ok(())
}

impl App {
    /// Creates an intent on an active session: checks it against the session's rules, builds
    /// its operation and, for a held key, signs and queues it. With an idempotency key, a
    /// repeated request returns the first intent and writes nothing.
    pub async fn create_intent(
        &self,
        session_id: &SessionId,
        visibility: &Visibility,
        interactions: Vec<Interaction>,
        idempotency_key: Option<String>,
        policy: Option<PolicyId>,
    ) -> Result<Intent, AppError> {
        // Whose session it is decides first: another tenant's idempotency keys say nothing.
        let session = self
            .visible_session("session", session_id, visibility)
            .await?;
        if visibility.client().is_some() && policy.is_some() {
            // Which policy pays is the backend's to decide; a client's intents use its
            // session's.
            return Err(AppError::PermissionDenied {
                reason: reasons::CLIENT_NOT_ALLOWED,
                field: "policy",
                message: "a client's intents are sponsored by its session's policy; leave it \
                          empty"
                    .into(),
            });
        }
        if let Some(key) = &idempotency_key
            && let Some(existing) = self
                .store()
                .intent_by_idempotency_key(session_id, key)
                .await?
        {
            return same_request(existing, &interactions, policy.as_ref());
        }
        let chain = self.chain();
        let deployment = chain.deployment();
        // What the chain says is read once, here: the retry loop below only re-reads the
        // session and re-decides, so concurrent intents on one session (which each write
        // its usage) race over microseconds, not over RPC round trips.
        check_active(&session)?;
        let now = chain.inclusion_time().await?;
        let ctx = CheckContext {
            now,
            window_margin_secs: self.config().window_margin_secs,
            forbidden: [session.account, deployment.entry_point],
            deadline: self.operation_deadline(&session, now),
        };
        // Refuse what the rules refuse before asking the chain anything about the calls.
        let charges = rules::check_intent(&session, &interactions, 0, &ctx)?.charges;
        // The intent's own policy, else its session's: named means sponsored or refused.
        let named = policy;
        let policy = self
            .named_policy(named.as_ref().or(session.policy.as_ref()), &session.tenant)
            .await?;
        if let Some(policy) = &policy {
            policy.check(Operation::Calls(&interactions), chain.chain_id())?;
        }
        let call_gas = chain
            .estimate_calls(session.account, &interactions)
            .await
            .map_err(|error| match error {
                // A call that would revert is the request's fault; anything else is the
                // chain's, and the client should retry.
                ChainError::CallWouldRevert { .. } => AppError::precondition(
                    reasons::CALL_WOULD_REVERT,
                    "simulation",
                    error.to_string(),
                ),
                other => AppError::Chain(other),
            })?;
        let fees = &chain.fees().await?;
        let (interactions, idempotency_key, named, policy, ctx) =
            (&interactions, &idempotency_key, &named, &policy, &ctx);
        retry_lost_races(|| async move {
            let mut session = self
                .store()
                .session(session_id).await?
                .ok_or_else(|| AppError::not_found("session", session_id.resource_name()))?;
            check_active(&session)?;
            if session.custody == KeyCustody::External {
                self.check_unsigned_room(&session).await?;
            }
            let calls = interactions.len() as u128;
            let rule_checks = interactions
                .iter()
                .filter_map(|call| Some(session.permissions.rules_for(call.to, call.callee()?)))
                .sum();
            let mut op = UserOperation {
                sender: session.account,
                nonce: ops::session_nonce(session.key, session.next_intent_lane),
                call_data: ops::intent_call_data(interactions),
                call_gas_limit: ops::call_gas_limit(call_gas),
                verification_gas_limit: ops::session_verification_gas(
                    calls,
                    session.key_p256.map(|_| chain.p256_path()),
                ) + ops::permission_verification_gas(rule_checks, charges),
                max_fee_per_gas: fees.max_fee_per_gas,
                max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
                ..Default::default()
            };
            let now_ms = now_ms();
            let charge = self.finish_op(
                policy.as_ref(),
                Operation::Calls(interactions),
                &mut op,
                ctx.now,
                now_ms,
            )?;
            // A sponsored operation costs the account nothing, so it takes nothing of the
            // session's gas budget.
            let admission =
                rules::check_intent(&session, interactions, ops::worst_case_cost(&op), ctx)?;
            let user_op_hash = op.hash_v08(deployment.entry_point, chain.chain_id())?;
            let status = match session.custody {
                KeyCustody::Held => IntentStatus::Queued,
                KeyCustody::External => IntentStatus::PendingSignature,
            };
            let mut intent = Intent::new(
                IntentId::generate(),
                IntentKind::Call,
                &session,
                (op, user_op_hash),
                deployment.entry_point,
                status,
                now_ms,
            );
            intent.valid_until = Some(admission.deadline);
            match session.custody {
                KeyCustody::Held => {
                    let sealed = self
                        .store()
                        .held_key(session.key).await?
                        .ok_or(AppError::Internal("held key missing from the store"))?;
                    let signer = keys::signer(&self.config().master_key, session.key, &sealed)
                        .map_err(|error| {
                            tracing::error!(target: "session", session = %session.id, %error, "held key unusable");
                            AppError::Internal("held key unusable")
                        })?;
                    let signature = sign_hash(&signer, intent.signable_hash())?;
                    intent.user_op.signature = intent.framed_signature(&signature);
                }
                KeyCustody::External => {
                    intent.signature_deadline_ms =
                        Some(now_ms.saturating_add(self.signature_timeout_ms()));
                }
            }
            intent.interactions = interactions.clone();
            intent.idempotency_key = idempotency_key.clone();
            session.usage = session
                .usage
                .checked_add(&admission.usage)
                .ok_or(AppError::Internal("session usage overflow"))?;
            intent.reserved = admission.usage;
            intent.charge = charge;
            session.next_intent_lane =
                session.next_intent_lane.checked_add(1).ok_or_else(|| {
                    AppError::precondition(
                        reasons::SESSION_LANES_EXHAUSTED,
                        "call_limit",
                        "the session has no nonce lanes left; create a new session",
                    )
                })?;
            session.updated_at_ms = now_ms;
            match self.store().create_intent(&mut session, &mut intent).await? {
                CreateIntent::Created => {
                    self.store().flush().await?;
                    Ok(intent)
                }
                CreateIntent::Existing(existing) => {
                    same_request(*existing, interactions, named.as_ref())
                }
            }
        })
        .await
    }

    /// Attaches the session key holder's signature to an EXTERNAL intent and queues it.
    pub async fn submit_intent_signature(
        &self,
        id: &IntentId,
        visibility: &Visibility,
        signature: SubmittedSignature,
    ) -> Result<Intent, AppError> {
        let signature = &signature;
        retry_lost_races(|| async move {
            let mut intent = self.intent(id, visibility).await?;
            if intent.kind != IntentKind::Call {
                return Err(AppError::precondition(
                    reasons::WRONG_SIGNATURE_METHOD,
                    "name",
                    "a registration or revocation is signed with SubmitSessionSignature",
                ));
            }
            if intent.status != IntentStatus::PendingSignature {
                return Err(AppError::precondition(
                    reasons::NO_SIGNATURE_PENDING,
                    "status",
                    format!(
                        "the intent is {}: no signature is pending",
                        intent.status.api_name()
                    ),
                ));
            }
            let session = match &intent.session {
                Some(id) => self.store().session(id).await?,
                None => None,
            }
            .ok_or(AppError::Internal("an intent's session is missing"))?;
            check_deadline(&intent)?;
            check_active(&session)?;
            let accepted = signer::verify(
                &session.session_key(),
                Role::SessionKey,
                intent.signable_hash(),
                signature,
            )
            .map_err(|error| {
                AppError::invalid(error.field(), format!("{error}: the session key signs it"))
            })?;
            intent.user_op.signature = intent.framed_signature(&accepted);
            intent.apply(&IntentEvent::Signed, now_ms())?;
            self.store().save(&mut [], &mut [&mut intent]).await?;
            self.store().flush().await?;
            self.intent(id, &Visibility::All).await
        })
        .await
    }

    /// An intent of any kind (a session's registration and revocation are intents too)
    /// that `visibility` covers; any other is not found.
    pub async fn intent(&self, id: &IntentId, visibility: &Visibility) -> Result<Intent, AppError> {
        super::visible(
            self.store().intent(id).await?,
            visibility,
            "name",
            id.resource_name(),
        )
    }

    /// Intents of every kind `filter` admits, newest first.
    pub async fn list_intents(
        &self,
        filter: &IntentFilter,
        page: &PageRequest,
    ) -> Result<Page<Intent>, AppError> {
        Ok(self.store().list_intents(filter, page).await?)
    }

    /// The deadline a session key's new operation carries (unix seconds, from `now`, the time
    /// an operation sent now is judged at): room for its signature when the key is EXTERNAL,
    /// for its wait in the queue, and for the window margin, and never past the session's
    /// window. The account refuses the operation after it, so the relay can call an operation
    /// that missed it DROPPED for good.
    fn operation_deadline(&self, session: &Session, now: u64) -> u64 {
        let config = self.config();
        let signing = match session.custody {
            KeyCustody::External => config.signature_timeout.as_secs(),
            KeyCustody::Held => 0,
        };
        now.saturating_add(signing)
            .saturating_add(config.queue_timeout.as_secs())
            .saturating_add(config.window_margin_secs)
            .min(session.valid_until)
    }

    /// Refuses one more unsigned intent on `session` when it has
    /// [`MAX_UNSIGNED_INTENTS_PER_SESSION`] already. Read inside the write's retry loop: every
    /// new intent writes its session, so two racing requests cannot both take the last slot.
    async fn check_unsigned_room(&self, session: &Session) -> Result<(), AppError> {
        let filter = IntentFilter {
            session: Some(session.id.clone()),
            status: Some(IntentStatus::PendingSignature),
            kind: Some(IntentKind::Call),
            ..IntentFilter::default()
        };
        let page = PageRequest {
            size: MAX_UNSIGNED_INTENTS_PER_SESSION,
            token: None,
        };
        let waiting = self.store().list_intents(&filter, &page).await?.items.len();
        if waiting >= MAX_UNSIGNED_INTENTS_PER_SESSION {
            return Err(AppError::Exhausted {
                reason: reasons::UNSIGNED_LIMIT_REACHED,
                limit: "unsigned intents per session",
                message: format!(
                    "{} has {waiting} intents waiting for their signature, the most one session \
                     may have; sign them (SubmitIntentSignature) or let them expire at their \
                     signature_deadline",
                    session.id.resource_name()
                ),
            });
        }
        Ok(())
    }
}

/// Refuses a signature that arrives after the intent's deadline, even if the relay has not
/// yet marked the intent EXPIRED.
pub(super) fn check_deadline(intent: &Intent) -> Result<(), AppError> {
    if intent
        .signature_deadline_ms
        .is_some_and(|deadline| deadline <= now_ms())
    {
        return Err(AppError::precondition(
            reasons::SIGNATURE_DEADLINE_PASSED,
            "signature_deadline",
            "the signature arrived after the deadline; create the intent or session again",
        ));
    }
    Ok(())
}

/// The intent stored under an idempotency key, if the repeated request asks for the same
/// calls (and, when it names one, the same policy); a key reused for a different request is
/// refused rather than silently answered.
fn same_request(
    existing: Intent,
    interactions: &[Interaction],
    policy: Option<&PolicyId>,
) -> Result<Intent, AppError> {
    if let Some(policy) = policy
        && existing.charge.as_ref().map(|charge| &charge.policy) != Some(policy)
    {
        return Err(AppError::precondition(
            reasons::IDEMPOTENCY_KEY_REUSED,
            "idempotency_key",
            format!("already used by {} under another policy", existing.id),
        ));
    }
    let same = existing.interactions.len() == interactions.len()
        && existing
            .interactions
            .iter()
            .zip(interactions)
            .all(|(stored, asked)| {
                stored.to == asked.to && stored.value == asked.value && stored.data == asked.data
            });
    if !same {
        return Err(AppError::precondition(
            reasons::IDEMPOTENCY_KEY_REUSED,
            "idempotency_key",
            format!("already used by {} for different interactions", existing.id),
        ));
    }
    Ok(existing)
}
