//! Proto types stop here. Each request field is parsed into a domain value with a check of
//! its form (hex, lengths, ranges, list sizes) and an error naming the field; each domain
//! record is rendered back into its proto message.

use alloy::primitives::{Address, B256, Bytes, FixedBytes, U256};
use prost_types::Timestamp;

mod access;
mod limits;
mod policy;
#[cfg(test)]
mod properties;

pub use self::{
    access::{
        api_key_message, api_key_name, api_key_scopes, client_access, client_access_message,
        scope_message, tenant,
    },
    policy::{new_policy, optional_policy_name, paymaster_message, policy_message, policy_name},
};
use super::proto;
use crate::{
    app::{AccountView, AppError, SessionView},
    intent::{
        Intent, IntentId, IntentKind, IntentStatus, Interaction, RevertDetails,
        calldata::{FunctionSignature, encode_call, validate_raw_calldata},
    },
    session::{CallPermission, KeyCustody, Permissions, SelectorRule, SessionId, SessionStatus},
    signer::{Assertion, P256Point, PublicKey, SignerKind, SubmittedSignature},
};

/// Most allowlist entries one session may have: each costs an SSTORE at registration.
pub const MAX_CALL_PERMISSIONS: usize = 64;
/// Most interactions in one intent.
pub const MAX_INTERACTIONS: usize = 16;
/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
/// Default and largest list page sizes.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest list page size.
pub const MAX_PAGE_SIZE: usize = 100;
/// Largest timestamp the account's uint48 window fields hold.
const MAX_UINT48: u64 = (1 << 48) - 1;

/// An address: `0x` and 40 hex digits; mixed case must be a valid EIP-55 checksum.
pub fn address(field: &str, text: &str) -> Result<Address, AppError> {
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| AppError::invalid(field, "expected a 0x-prefixed 20-byte hex address"))?;
    if digits.len() != 40 || !digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(AppError::invalid(
            field,
            "expected a 0x-prefixed 20-byte hex address",
        ));
    }
    let mixed = digits.bytes().any(|b| b.is_ascii_lowercase())
        && digits.bytes().any(|b| b.is_ascii_uppercase());
    if mixed {
        return Address::parse_checksummed(text, None).map_err(|_| {
            AppError::invalid(field, "mixed-case address with a wrong EIP-55 checksum")
        });
    }
    text.parse()
        .map_err(|_| AppError::invalid(field, "expected a 0x-prefixed 20-byte hex address"))
}

/// An account owner's address: any address but zero, which can never sign, so an account
/// it owned could never be registered on nor deployed (the factory refuses it).
pub fn owner(field: &str, text: &str) -> Result<Address, AppError> {
    let owner = address(field, text)?;
    if owner == Address::ZERO {
        return Err(AppError::invalid(
            field,
            "the zero address can never sign; give the player's owner address",
        ));
    }
    Ok(owner)
}

/// A decimal uint256; empty means zero.
pub fn uint256(field: &str, text: &str) -> Result<U256, AppError> {
    if text.is_empty() {
        return Ok(U256::ZERO);
    }
    if text.len() > 78 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(AppError::invalid(
            field,
            "expected a non-negative decimal integer, without sign, separators or 0x",
        ));
    }
    U256::from_str_radix(text, 10).map_err(|_| AppError::invalid(field, "does not fit in uint256"))
}

/// A decimal uint128; empty means zero.
pub fn uint128(field: &str, text: &str) -> Result<u128, AppError> {
    let value = uint256(field, text)?;
    u128::try_from(value).map_err(|_| AppError::invalid(field, "does not fit in uint128"))
}

/// Longest DER encoding of a P-256 signature.
const MAX_DER_SIGNATURE_LEN: usize = 72;

/// A submitted signature: `signature` bytes (a 65-byte ECDSA signature, or a P-256 one as
/// 64 bytes or DER), or a WebAuthn assertion; exactly one of the two.
pub fn submitted_signature(
    text: &str,
    assertion: Option<proto::WebAuthnAssertion>,
) -> Result<SubmittedSignature, AppError> {
    match (text.is_empty(), assertion) {
        (false, None) => {
            let bytes = hex_bytes("signature", text)?;
            if !(64..=MAX_DER_SIGNATURE_LEN).contains(&bytes.len()) {
                return Err(AppError::invalid(
                    "signature",
                    format!(
                        "expected a 65-byte secp256k1 signature (r, s, v), or a P-256 one (64 \
                         bytes r ‖ s, or DER), got {} bytes",
                        bytes.len()
                    ),
                ));
            }
            Ok(SubmittedSignature::Bytes(bytes))
        }
        (true, Some(assertion)) => Ok(SubmittedSignature::WebAuthn(Assertion {
            authenticator_data: hex_bytes(
                "webauthn.authenticator_data",
                &assertion.authenticator_data,
            )?,
            client_data_json: hex_bytes("webauthn.client_data_json", &assertion.client_data_json)?,
            signature: hex_bytes("webauthn.signature", &assertion.signature)?,
        })),
        (false, Some(_)) => Err(AppError::invalid(
            "webauthn",
            "give either signature or webauthn, not both",
        )),
        (true, None) => Err(AppError::invalid(
            "signature",
            "required (or webauthn, for a WebAuthn signer)",
        )),
    }
}

/// A signer given as `{kind, key}` under the request field `field`.
pub fn signer(field: &str, value: &proto::Signer) -> Result<PublicKey, AppError> {
    let key_field = format!("{field}.key");
    let kind = proto::SignerKind::try_from(value.kind).unwrap_or(proto::SignerKind::Unspecified);
    match kind {
        proto::SignerKind::Secp256k1 => Ok(PublicKey::Secp256k1(owner(&key_field, &value.key)?)),
        proto::SignerKind::P256 | proto::SignerKind::Webauthn => {
            let bytes = hex_bytes(&key_field, &value.key)?;
            let point = P256Point::parse(&bytes).ok_or_else(|| {
                AppError::invalid(
                    &key_field,
                    "expected an uncompressed P-256 public key on the curve: 64 bytes x ‖ y, \
                     or 65 bytes 0x04 ‖ x ‖ y",
                )
            })?;
            Ok(match kind {
                proto::SignerKind::P256 => PublicKey::P256(point),
                _ => PublicKey::WebAuthn(point),
            })
        }
        proto::SignerKind::Unspecified => Err(AppError::invalid(
            format!("{field}.kind"),
            "expected SIGNER_KIND_SECP256K1, SIGNER_KIND_P256 or SIGNER_KIND_WEBAUTHN",
        )),
    }
}

/// An account owner given as an address (`owner`) or a signer (`owner_signer`): exactly one.
pub fn owner_of(
    address: &str,
    signer_field: Option<&proto::Signer>,
) -> Result<PublicKey, AppError> {
    match (address.is_empty(), signer_field) {
        (false, None) => Ok(PublicKey::Secp256k1(owner("owner", address)?)),
        (true, Some(value)) => {
            let key = signer("owner_signer", value)?;
            if matches!(key, PublicKey::P256(_)) {
                return Err(AppError::invalid(
                    "owner_signer.kind",
                    "an account's owner is SIGNER_KIND_SECP256K1 or SIGNER_KIND_WEBAUTHN (a \
                     passkey); raw P-256 keys are session keys only",
                ));
            }
            Ok(key)
        }
        (false, Some(_)) => Err(AppError::invalid(
            "owner_signer",
            "give either owner or owner_signer, not both",
        )),
        (true, None) => Err(AppError::invalid(
            "owner",
            "required: the owner's address (or owner_signer)",
        )),
    }
}

/// A signer as the API shows it.
pub fn signer_message(key: &PublicKey) -> proto::Signer {
    proto::Signer {
        kind: match key.kind() {
            SignerKind::Secp256k1 => proto::SignerKind::Secp256k1,
            SignerKind::P256 => proto::SignerKind::P256,
            SignerKind::WebAuthn => proto::SignerKind::Webauthn,
        }
        .into(),
        key: match key {
            PublicKey::Secp256k1(address) => address.to_string(),
            _ => key.key_bytes().to_string(),
        },
        id: key.id().to_string(),
    }
}

fn hex_bytes(field: &str, text: &str) -> Result<Bytes, AppError> {
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| AppError::invalid(field, "expected 0x-prefixed hex"))?;
    alloy::hex::decode(digits).map(Bytes::from).map_err(|_| {
        AppError::invalid(
            field,
            "expected 0x-prefixed hex with an even number of digits",
        )
    })
}

/// `sessions/{id}`.
pub fn session_name(field: &str, name: &str) -> Result<SessionId, AppError> {
    name.strip_prefix("sessions/")
        .and_then(SessionId::parse)
        .ok_or_else(|| AppError::invalid(field, "expected a session name `sessions/ses_...`"))
}

/// `transactionIntents/{id}`.
pub fn intent_name(field: &str, name: &str) -> Result<IntentId, AppError> {
    name.strip_prefix("transactionIntents/")
        .and_then(IntentId::parse)
        .ok_or_else(|| AppError::invalid(field, "expected a name `transactionIntents/int_...`"))
}

/// `accounts/{address}`.
pub fn account_name(field: &str, name: &str) -> Result<Address, AppError> {
    let text = name
        .strip_prefix("accounts/")
        .ok_or_else(|| AppError::invalid(field, "expected an account name `accounts/0x...`"))?;
    address(field, text)
}

/// A window bound in unix seconds, within the account's uint48.
pub fn unix_seconds(field: &str, value: i64) -> Result<u64, AppError> {
    u64::try_from(value)
        .ok()
        .filter(|seconds| *seconds <= MAX_UINT48)
        .ok_or_else(|| AppError::invalid(field, "expected unix seconds between 0 and 2^48-1"))
}

/// A page size: 0 means the default.
pub fn page_size(field: &str, value: i32) -> Result<usize, AppError> {
    match value {
        0 => Ok(DEFAULT_PAGE_SIZE),
        1..=100 => Ok(value as usize),
        _ => Err(AppError::invalid(
            field,
            format!("expected 0 to {MAX_PAGE_SIZE}"),
        )),
    }
}

/// An optional page token.
pub fn page_token(token: &str) -> Option<String> {
    (!token.is_empty()).then(|| token.to_owned())
}

/// Key custody; UNSPECIFIED is refused.
pub fn custody(field: &str, value: i32) -> Result<KeyCustody, AppError> {
    match proto::KeyCustody::try_from(value) {
        Ok(proto::KeyCustody::Held) => Ok(KeyCustody::Held),
        Ok(proto::KeyCustody::External) => Ok(KeyCustody::External),
        _ => Err(AppError::invalid(
            field,
            "expected KEY_CUSTODY_HELD or KEY_CUSTODY_EXTERNAL",
        )),
    }
}

/// A session status filter; UNSPECIFIED means any.
pub fn session_status_filter(field: &str, value: i32) -> Result<Option<SessionStatus>, AppError> {
    use proto::SessionStatus as P;
    let status = match P::try_from(value) {
        Ok(P::Unspecified) => return Ok(None),
        Ok(P::PendingSignature) => SessionStatus::PendingSignature,
        Ok(P::Registering) => SessionStatus::Registering,
        Ok(P::Active) => SessionStatus::Active,
        Ok(P::Expired) => SessionStatus::Expired,
        Ok(P::Revoking) => SessionStatus::Revoking,
        Ok(P::Revoked) => SessionStatus::Revoked,
        Ok(P::Failed) => SessionStatus::Failed,
        Err(_) => return Err(AppError::invalid(field, "unknown session status")),
    };
    Ok(Some(status))
}

/// An intent status filter; UNSPECIFIED means any.
pub fn intent_status_filter(field: &str, value: i32) -> Result<Option<IntentStatus>, AppError> {
    use proto::TransactionIntentStatus as P;
    let status = match P::try_from(value) {
        Ok(P::Unspecified) => return Ok(None),
        Ok(P::PendingSignature) => IntentStatus::PendingSignature,
        Ok(P::Queued) => IntentStatus::Queued,
        Ok(P::Submitted) => IntentStatus::Submitted,
        Ok(P::Included) => IntentStatus::Included,
        Ok(P::Confirmed) => IntentStatus::Confirmed,
        Ok(P::Reverted) => IntentStatus::Reverted,
        Ok(P::Dropped) => IntentStatus::Dropped,
        Ok(P::Expired) => IntentStatus::Expired,
        Err(_) => return Err(AppError::invalid(field, "unknown intent status")),
    };
    Ok(Some(status))
}

/// Session permissions, every field checked.
pub fn permissions(value: Option<proto::SessionPermissions>) -> Result<Permissions, AppError> {
    let value = value.ok_or_else(|| AppError::invalid("permissions", "required"))?;
    if value.call_limit == 0 {
        return Err(AppError::invalid(
            "permissions.call_limit",
            "must be at least 1",
        ));
    }
    if value.gas_budget.is_empty() {
        return Err(AppError::invalid(
            "permissions.gas_budget",
            "required: the wei of fees the key's operations may cost the account",
        ));
    }
    if value.calls.is_empty() || value.calls.len() > MAX_CALL_PERMISSIONS {
        return Err(AppError::invalid(
            "permissions.calls",
            format!("expected 1 to {MAX_CALL_PERMISSIONS} entries"),
        ));
    }
    let calls = value
        .calls
        .iter()
        .enumerate()
        .map(|(index, call)| {
            let target = address(&format!("permissions.calls[{index}].target"), &call.target)?;
            let field = format!("permissions.calls[{index}].function");
            let selector = selector_rule(&field, &call.function)?;
            let signature = canonical_signature(&field, &call.function)?;
            let rules = limits::argument_rules(
                &format!("permissions.calls[{index}]"),
                &call.function,
                &call.rules,
            )?;
            Ok(CallPermission {
                target,
                selector,
                signature,
                rules,
            })
        })
        .collect::<Result<Vec<_>, AppError>>()?;
    let mut permissions = Permissions {
        call_limit: value.call_limit,
        value_per_call_limit: uint128(
            "permissions.value_per_call_limit",
            &value.value_per_call_limit,
        )?,
        value_budget: uint128("permissions.value_budget", &value.value_budget)?,
        gas_budget: uint128("permissions.gas_budget", &value.gas_budget)?,
        calls,
        limits: Vec::new(),
    };
    permissions.limits = limits::spend_limits(&value.limits, &permissions)?;
    Ok(permissions)
}

/// Which functions an allowlist entry covers: a signature such as `mint(address,uint256)`,
/// a 4-byte selector, `0x00000000` for plain transfers, or `*` for all.
pub fn selector_rule(field: &str, text: &str) -> Result<SelectorRule, AppError> {
    Ok(match text {
        "*" => SelectorRule::Any,
        text if text.starts_with("0x") => {
            let bytes = hex_bytes(field, text)?;
            if bytes.len() != 4 {
                return Err(AppError::invalid(
                    field,
                    "a selector is 4 bytes: 0x + 8 hex digits",
                ));
            }
            SelectorRule::Exact(FixedBytes::from_slice(&bytes))
        }
        text => SelectorRule::Exact(
            FunctionSignature::parse(text)
                .map_err(|error| AppError::invalid(field, error.to_string()))?
                .selector(),
        ),
    })
}

/// The canonical form of a function given by its signature; `None` for a selector or `*`.
fn canonical_signature(field: &str, text: &str) -> Result<Option<String>, AppError> {
    if text == "*" || text.starts_with("0x") {
        return Ok(None);
    }
    FunctionSignature::parse(text)
        .map(|signature| Some(signature.canonical().to_owned()))
        .map_err(|error| AppError::invalid(field, error.to_string()))
}

/// An intent's interactions, encoded to calldata.
pub fn interactions(values: &[proto::Interaction]) -> Result<Vec<Interaction>, AppError> {
    if values.is_empty() || values.len() > MAX_INTERACTIONS {
        return Err(AppError::invalid(
            "interactions",
            format!("expected 1 to {MAX_INTERACTIONS}"),
        ));
    }
    values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let to = address(&format!("interactions[{index}].to"), &value.to)?;
            let amount = uint256(&format!("interactions[{index}].value"), &value.value)?;
            let (data, function) = match &value.call {
                Some(proto::interaction::Call::FunctionCall(call)) => {
                    let data = encode_call(&call.signature, &call.args).map_err(|error| {
                        AppError::invalid(
                            format!("interactions[{index}].function_call"),
                            error.to_string(),
                        )
                    })?;
                    (data, Some((call.signature.clone(), call.args.clone())))
                }
                Some(proto::interaction::Call::Calldata(hex)) => {
                    let data = validate_raw_calldata(hex).map_err(|error| {
                        AppError::invalid(
                            format!("interactions[{index}].calldata"),
                            error.to_string(),
                        )
                    })?;
                    (data, None)
                }
                None => {
                    return Err(AppError::invalid(
                        format!("interactions[{index}]"),
                        "set function_call or calldata",
                    ));
                }
            };
            Ok(Interaction {
                to,
                value: amount,
                data,
                function,
            })
        })
        .collect()
}

/// An optional idempotency key: 1 to 128 printable ASCII characters.
pub fn idempotency_key(text: &str) -> Result<Option<String>, AppError> {
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() > MAX_IDEMPOTENCY_KEY_LEN || !text.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(AppError::invalid(
            "idempotency_key",
            format!("expected 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters"),
        ));
    }
    Ok(Some(text.to_owned()))
}

// ---------------------------------------------------------------------------------------
// Domain -> proto
// ---------------------------------------------------------------------------------------

pub(super) fn timestamp(ms: u64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: i64::try_from(ms / 1_000).unwrap_or(i64::MAX),
        nanos: i32::try_from((ms % 1_000) * 1_000_000).unwrap_or(0),
    })
}

fn hash_text(hash: B256) -> String {
    format!("{hash}")
}

fn next_action(intent: &Intent) -> proto::NextAction {
    proto::NextAction {
        r#type: proto::NextActionType::SignWithWallet.into(),
        signable_hash: hash_text(intent.signable_hash()),
        typed_data: intent
            .typed_data()
            .map(|typed| typed.to_string())
            .unwrap_or_default(),
        webauthn_challenge: intent.webauthn_challenge().unwrap_or_default(),
    }
}

fn session_status(status: SessionStatus) -> proto::SessionStatus {
    match status {
        SessionStatus::PendingSignature => proto::SessionStatus::PendingSignature,
        SessionStatus::Registering => proto::SessionStatus::Registering,
        SessionStatus::Active => proto::SessionStatus::Active,
        SessionStatus::Expired => proto::SessionStatus::Expired,
        SessionStatus::Revoking => proto::SessionStatus::Revoking,
        SessionStatus::Revoked => proto::SessionStatus::Revoked,
        SessionStatus::Failed => proto::SessionStatus::Failed,
    }
}

fn intent_kind(kind: IntentKind) -> proto::TransactionIntentKind {
    match kind {
        IntentKind::Call => proto::TransactionIntentKind::Call,
        IntentKind::Registration => proto::TransactionIntentKind::Registration,
        IntentKind::Revocation => proto::TransactionIntentKind::Revocation,
        IntentKind::External => proto::TransactionIntentKind::External,
    }
}

/// An intent kind filter; UNSPECIFIED means every kind.
pub fn intent_kind_filter(field: &str, value: i32) -> Result<Option<IntentKind>, AppError> {
    use proto::TransactionIntentKind as P;
    match P::try_from(value) {
        Ok(P::Unspecified) => Ok(None),
        Ok(P::Call) => Ok(Some(IntentKind::Call)),
        Ok(P::Registration) => Ok(Some(IntentKind::Registration)),
        Ok(P::External) => Ok(Some(IntentKind::External)),
        Ok(P::Revocation) => Ok(Some(IntentKind::Revocation)),
        Err(_) => Err(AppError::invalid(field, "unknown intent kind")),
    }
}

fn intent_status(status: IntentStatus) -> proto::TransactionIntentStatus {
    use proto::TransactionIntentStatus as P;
    match status {
        IntentStatus::PendingSignature => P::PendingSignature,
        IntentStatus::Queued => P::Queued,
        IntentStatus::Submitted => P::Submitted,
        IntentStatus::Included => P::Included,
        IntentStatus::Confirmed => P::Confirmed,
        IntentStatus::Reverted => P::Reverted,
        IntentStatus::Dropped => P::Dropped,
        IntentStatus::Expired => P::Expired,
    }
}

pub(super) fn function_text(rule: SelectorRule) -> String {
    match rule {
        SelectorRule::Any => "*".to_owned(),
        SelectorRule::Exact(selector) => format!("{selector}"),
    }
}

/// The account message.
pub fn account_message(view: &AccountView, chain_id: u64) -> proto::Account {
    proto::Account {
        name: format!("accounts/{}", view.address),
        address: view.address.to_string(),
        chain_id,
        deployed: view.deployed,
        owner: view
            .owner
            .map(|owner| owner.to_string())
            .unwrap_or_default(),
        salt: view.salt.map(|salt| salt.to_string()).unwrap_or_default(),
    }
}

/// The session message.
pub fn session_message(view: &SessionView) -> proto::Session {
    let session = &view.session;
    let transaction = |intent: Option<&Intent>| {
        intent
            .and_then(|intent| {
                intent
                    .result
                    .as_ref()
                    .map(|result| hash_text(result.tx_hash))
            })
            .unwrap_or_default()
    };
    proto::Session {
        name: session.id.resource_name(),
        registration_intent: view.registration.id.resource_name(),
        revocation_intent: view
            .revocation
            .as_ref()
            .map(|intent| intent.id.resource_name())
            .unwrap_or_default(),
        id: session.id.to_string(),
        tenant: session.tenant.to_string(),
        account: format!("accounts/{}", session.account),
        owner: session.owner.to_string(),
        owner_signer: Some(signer_message(&session.owner_key())),
        key_signer: Some(signer_message(&session.session_key())),
        salt: session.salt.to_string(),
        chain_id: session.chain_id,
        key_address: session.key.to_string(),
        custody: match session.custody {
            KeyCustody::Held => proto::KeyCustody::Held,
            KeyCustody::External => proto::KeyCustody::External,
        }
        .into(),
        valid_after: i64::try_from(session.valid_after).unwrap_or(i64::MAX),
        valid_until: i64::try_from(session.valid_until).unwrap_or(i64::MAX),
        client_access: client_access_message(session.client_access).into(),
        permissions: Some(proto::SessionPermissions {
            call_limit: session.permissions.call_limit,
            value_per_call_limit: session.permissions.value_per_call_limit.to_string(),
            value_budget: session.permissions.value_budget.to_string(),
            gas_budget: session.permissions.gas_budget.to_string(),
            calls: session
                .permissions
                .calls
                .iter()
                .map(|call| proto::CallPermission {
                    target: call.target.to_string(),
                    function: call
                        .signature
                        .clone()
                        .unwrap_or_else(|| function_text(call.selector)),
                    selector: function_text(call.selector),
                    rules: call
                        .rules
                        .iter()
                        .map(limits::argument_rule_message)
                        .collect(),
                })
                .collect(),
            limits: session
                .permissions
                .limits
                .iter()
                .map(limits::spend_limit_message)
                .collect(),
        }),
        usage: Some(limits::usage_message(
            &session.permissions,
            &session.usage,
            crate::clock::now_ms() / 1_000,
        )),
        status: session_status(session.status).into(),
        next_action: view.pending_signature().map(next_action),
        signature_deadline: view
            .pending_signature()
            .and_then(|intent| intent.signature_deadline_ms)
            .and_then(timestamp),
        registration_user_op_hash: hash_text(view.registration.user_op_hash),
        registration_transaction_hash: transaction(Some(&view.registration)),
        revocation_user_op_hash: view
            .revocation
            .as_ref()
            .map(|intent| hash_text(intent.user_op_hash))
            .unwrap_or_default(),
        revocation_transaction_hash: transaction(view.revocation.as_ref()),
        failure_reason: session.failure_reason.clone().unwrap_or_default(),
        create_time: timestamp(session.created_at_ms),
        update_time: timestamp(session.updated_at_ms),
        policy: session
            .policy
            .as_ref()
            .map(|id| format!("policies/{id}"))
            .unwrap_or_default(),
        registration_sponsorship: policy::sponsorship_message(&view.registration),
        revocation_sponsorship: view
            .revocation
            .as_ref()
            .and_then(policy::sponsorship_message),
    }
}

fn revert_message(details: &RevertDetails) -> proto::RevertDetails {
    proto::RevertDetails {
        aa_code: details.aa_code.clone().unwrap_or_default(),
        cause: details.cause.clone(),
        remedy: details.remedy.clone(),
        reason: details.reason.clone(),
    }
}

/// The intent message.
pub fn intent_message(intent: &Intent) -> proto::TransactionIntent {
    proto::TransactionIntent {
        name: intent.id.resource_name(),
        kind: intent_kind(intent.kind).into(),
        id: intent.id.to_string(),
        tenant: intent.tenant.to_string(),
        session: intent
            .session
            .as_ref()
            .map(|session| format!("sessions/{session}"))
            .unwrap_or_default(),
        account: format!("accounts/{}", intent.account),
        chain_id: intent.chain_id,
        interactions: intent
            .interactions
            .iter()
            .map(|interaction| proto::Interaction {
                to: interaction.to.to_string(),
                value: interaction.value.to_string(),
                call: Some(match &interaction.function {
                    Some((signature, args)) => {
                        proto::interaction::Call::FunctionCall(proto::FunctionCall {
                            signature: signature.clone(),
                            args: args.clone(),
                        })
                    }
                    None => proto::interaction::Call::Calldata(format!("{}", interaction.data)),
                }),
            })
            .collect(),
        status: intent_status(intent.status).into(),
        next_action: (intent.status == IntentStatus::PendingSignature).then(|| next_action(intent)),
        user_op_hash: hash_text(intent.user_op_hash),
        valid_until: intent
            .valid_until
            .map_or(0, |deadline| i64::try_from(deadline).unwrap_or(i64::MAX)),
        result: intent
            .result
            .as_ref()
            .map(|result| proto::TransactionIntentResult {
                transaction_hash: hash_text(result.tx_hash),
                block_number: result.block_number,
                block_hash: hash_text(result.block_hash),
                gas_used: result.gas_used.to_string(),
                actual_cost: result.actual_cost.to_string(),
                success: result.success,
                revert: result.revert.as_ref().map(revert_message),
            }),
        submission: intent.submission.as_ref().map(|submission| {
            proto::TransactionIntentSubmission {
                transaction_hash: hash_text(submission.tx_hash),
                relayer: submission.relayer.to_string(),
                relayer_nonce: submission.relayer_nonce,
                replaced_transaction_hashes: submission
                    .attempts
                    .iter()
                    .filter(|hash| **hash != submission.tx_hash)
                    .map(|hash| hash_text(*hash))
                    .collect(),
                max_fee_per_gas: submission.max_fee_per_gas.to_string(),
                max_priority_fee_per_gas: submission.max_priority_fee_per_gas.to_string(),
            }
        }),
        failure_reason: intent.failure_reason.clone().unwrap_or_default(),
        history: intent
            .history
            .iter()
            .map(|(status, ms)| proto::StatusTransition {
                status: intent_status(*status).into(),
                time: timestamp(*ms),
            })
            .collect(),
        idempotency_key: intent.idempotency_key.clone().unwrap_or_default(),
        create_time: timestamp(intent.created_at_ms),
        update_time: timestamp(intent.updated_at_ms),
        signature_deadline: intent.signature_deadline_ms.and_then(timestamp),
        refusal: intent.refusal.as_ref().map(revert_message),
        sponsorship: policy::sponsorship_message(intent),
    }
}

/// The relay's standing: the operator's pause, if any, and its last successful pass.
pub fn relay_state_message(
    pause: Option<&crate::store::RelayPause>,
    progress: crate::relay::RelayProgress,
) -> proto::RelayState {
    proto::RelayState {
        paused: pause.is_some(),
        pause_reason: pause.map(|pause| pause.reason.clone()).unwrap_or_default(),
        paused_at: pause.and_then(|pause| timestamp(pause.since_ms)),
        last_pass_block: progress.head.unwrap_or(0),
        last_pass_at: progress.head.and_then(|_| timestamp(progress.at_ms)),
    }
}

/// The daemon's status as the admin service returns it.
pub fn status_message(view: &crate::app::StatusView) -> proto::DaemonStatus {
    let now = crate::clock::now_ms();
    let (chain, chain_error) = match &view.chain {
        Ok(head) => (
            Some(proto::ChainHead {
                block: head.block,
                block_time: timestamp(head.timestamp.saturating_mul(1_000)),
                block_age_seconds: head.age_ms as f64 / 1_000.0,
                relay_lag_blocks: view
                    .progress
                    .head
                    .map(|relay_head| head.block.saturating_sub(relay_head)),
            }),
            String::new(),
        ),
        Err(error) => (None, error.clone()),
    };
    proto::DaemonStatus {
        version: view.version.to_owned(),
        started_at: timestamp(view.started_at_ms),
        uptime_seconds: now.saturating_sub(view.started_at_ms) / 1_000,
        chain_id: view.chain_id,
        chain,
        chain_error,
        relay: Some(relay_state_message(view.pause.as_ref(), view.progress)),
        relayers: view
            .relayers
            .iter()
            .map(|relayer| proto::RelayerStatus {
                address: relayer.address.to_string(),
                balance_wei: relayer
                    .balance
                    .map(|balance| balance.to_string())
                    .unwrap_or_default(),
                nonce: relayer.nonce,
                in_flight_bundles: relayer.in_flight_bundles as u64,
                in_flight_operations: relayer.in_flight_operations as u64,
            })
            .collect(),
        queue_depth: view.queue_depth() as u64,
        intents: view
            .intents
            .iter()
            .map(|(status, count)| proto::IntentStatusCount {
                status: intent_status(*status) as i32,
                count: *count as u64,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_statuses_as_the_proto_does() {
        for status in SessionStatus::ALL {
            assert_eq!(status.api_name(), session_status(status).as_str_name());
        }
        for status in IntentStatus::ALL {
            assert_eq!(status.api_name(), intent_status(status).as_str_name());
        }
    }

    #[test]
    fn addresses_must_be_well_formed_and_correctly_checksummed() {
        let lower = "0x52908400098527886e0f7030069857d2e4169ee7";
        assert!(address("f", lower).is_ok());
        assert!(address("f", "0x52908400098527886E0F7030069857D2E4169EE7").is_ok());
        assert!(address("f", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed").is_ok());
        let bad_checksum = address("f", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD");
        assert!(matches!(
            bad_checksum,
            Err(AppError::InvalidArgument { .. })
        ));
        for bad in [
            "",
            "0x",
            "52908400098527886e0f7030069857d2e4169ee7",
            "0x123",
            "0xzz908400098527886e0f7030069857d2e4169ee7",
        ] {
            let error = address("owner", bad).unwrap_err();
            assert!(error.to_string().starts_with("owner:"), "{bad}: {error}");
        }
    }

    #[test]
    fn numbers_names_and_signatures_are_checked() {
        assert_eq!(uint256("v", "").unwrap(), U256::ZERO);
        assert_eq!(uint256("v", "12").unwrap(), U256::from(12));
        assert!(uint256("v", "-1").is_err());
        assert!(uint256("v", "0x10").is_err());
        assert!(uint128("v", &U256::MAX.to_string()).is_err());
        assert!(submitted_signature(&format!("0x{}", "ab".repeat(65)), None).is_ok());
        assert!(submitted_signature(&format!("0x{}", "ab".repeat(63)), None).is_err());
        assert!(submitted_signature("0xabc", None).is_err());
        assert!(submitted_signature("", None).is_err());
        let assertion = proto::WebAuthnAssertion::default();
        assert!(submitted_signature("0x00", Some(assertion.clone())).is_err());
        // An assertion's parts are named when they are not hex.
        assert_eq!(
            submitted_signature("", Some(assertion))
                .unwrap_err()
                .to_string(),
            AppError::invalid("webauthn.authenticator_data", "expected 0x-prefixed hex")
                .to_string()
        );
        assert!(session_name("name", "sessions/nope").is_err());
        assert!(
            intent_name(
                "name",
                &format!("transactionIntents/{}", IntentId::generate())
            )
            .is_ok()
        );
        assert!(unix_seconds("t", -1).is_err());
        assert!(unix_seconds("t", 1 << 48).is_err());
        assert_eq!(page_size("p", 0).unwrap(), DEFAULT_PAGE_SIZE);
        assert!(page_size("p", 101).is_err());
        assert!(idempotency_key(&"k".repeat(129)).is_err());
        assert!(idempotency_key("has space").is_err());
    }

    #[test]
    fn permissions_accept_signatures_selectors_and_wildcards() {
        let target = "0x52908400098527886e0f7030069857d2e4169ee7".to_owned();
        let parsed = permissions(Some(proto::SessionPermissions {
            call_limit: 5,
            value_per_call_limit: String::new(),
            value_budget: "10".into(),
            gas_budget: "1000".into(),
            calls: vec![
                proto::CallPermission {
                    target: target.clone(),
                    function: "mint(address,uint256,uint256)".into(),
                    selector: String::new(),
                    ..Default::default()
                },
                proto::CallPermission {
                    target: target.clone(),
                    function: "0x00000000".into(),
                    selector: String::new(),
                    ..Default::default()
                },
                proto::CallPermission {
                    target: target.clone(),
                    function: "*".into(),
                    selector: String::new(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(
            parsed.calls[0].selector,
            SelectorRule::Exact(FixedBytes::from([0x15, 0x6e, 0x29, 0xf6]))
        );
        assert_eq!(
            parsed.calls[1].selector,
            SelectorRule::Exact(FixedBytes::ZERO)
        );
        assert_eq!(parsed.calls[2].selector, SelectorRule::Any);

        let no_gas = permissions(Some(proto::SessionPermissions {
            call_limit: 1,
            calls: vec![proto::CallPermission {
                target,
                function: "*".into(),
                selector: String::new(),
                ..Default::default()
            }],
            ..Default::default()
        }));
        assert!(
            no_gas
                .unwrap_err()
                .to_string()
                .starts_with("permissions.gas_budget")
        );
    }
}
