//! `latchkey session`: the sessions a running daemon knows, through its admin service: list
//! them, show one, and start revoking one.
//!
//! A revocation is an operation the account owner signs, as the registration was: `revoke`
//! prints the hash to sign, and latchkey signs no new intent with the key meanwhile.
//!
//! It also holds what `latchkey intent` shares with it: resource names, times and hashes as
//! text, and sponsorship as JSON.

use serde::Serialize;

use super::{
    BadValue, Choice, ClientArgs, admin::AdminClient, collect_pages, enum_name, print_output,
    rpc_error, table, wei_with_eth,
};
use crate::api::proto;

/// What `latchkey session` does.
#[derive(Debug, clap::Subcommand)]
pub enum SessionCommand {
    /// List sessions, newest first.
    ///
    /// A table of id, account, key, custody, status, the window's end and the policy; with
    /// --json an array of the sessions as `show --json` prints them.
    List {
        /// Only sessions of this account: `0x...` or `accounts/0x...`.
        #[arg(long, value_name = "ADDR", value_parser = parse_account_name)]
        account: Option<String>,
        /// Only sessions in this status.
        #[arg(long, value_enum, value_name = "STATUS")]
        status: Option<Choice<proto::SessionStatus>>,
        /// At most this many sessions.
        #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    /// Show one session in full.
    ///
    /// Its account, owner, key, window, permissions, status and policy, the operations that
    /// registered and revoke it, and the hash its owner must sign next, if any.
    Show {
        /// The session: `ses_...` or `sessions/ses_...`.
        #[arg(value_parser = parse_session_name)]
        session: String,
    },
    /// Start revoking an ACTIVE session; print the hash its owner must sign.
    ///
    /// The session is REVOKING from now on: latchkey signs no new intent with its key. The
    /// key stays registered on chain until the owner's signature is submitted
    /// (SessionService.SubmitSessionSignature) and the revocation is mined.
    Revoke {
        /// The session: `ses_...` or `sessions/ses_...`.
        #[arg(value_parser = parse_session_name)]
        session: String,
    },
}

/// Runs a `latchkey session` command against the daemon's admin service, prints its result
/// and returns the process's exit code.
pub async fn run(args: ClientArgs, command: SessionCommand) -> anyhow::Result<i32> {
    let mut client = args.connect_admin().await?;
    // Show and revoke both answer with the session; only how it reads for people differs.
    let (session, render): (_, fn(&proto::Session) -> String) = match command {
        SessionCommand::List {
            account,
            status,
            limit,
        } => {
            let filter = proto::ListSessionsRequest {
                account: account.unwrap_or_default(),
                status: status.map_or(proto::SessionStatus::Unspecified, |choice| choice.value)
                    as i32,
                page_size: 0,
                page_token: String::new(),
            };
            let sessions = list(&mut client, filter, limit).await?;
            let all: Vec<SessionJson> = sessions.iter().map(session_json).collect();
            print_output(args.json, &all, || render_list(&sessions))?;
            return Ok(0);
        }
        SessionCommand::Show { session: name } => (
            client.get_session(proto::GetSessionRequest { name }).await,
            render_session,
        ),
        SessionCommand::Revoke { session: name } => (
            client
                .revoke_session(proto::RevokeSessionRequest { name })
                .await,
            render_revocation,
        ),
    };
    let session = session.map_err(rpc_error)?.into_inner();
    print_output(args.json, &session_json(&session), || render(&session))?;
    Ok(0)
}

/// The first `limit` sessions that match `filter`, page after page.
async fn list(
    client: &mut AdminClient,
    filter: proto::ListSessionsRequest,
    limit: u32,
) -> anyhow::Result<Vec<proto::Session>> {
    collect_pages(limit, |page_size, page_token| {
        let mut client = client.clone();
        let request = proto::ListSessionsRequest {
            page_size,
            page_token,
            ..filter.clone()
        };
        async move {
            let page = client
                .list_sessions(request)
                .await
                .map_err(rpc_error)?
                .into_inner();
            Ok((page.sessions, page.next_page_token))
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Names, times and hashes as text; shared with `latchkey intent`.
// ---------------------------------------------------------------------------------------

/// `ID` or `COLLECTION/ID` as the resource name `COLLECTION/ID`. The id itself is the
/// daemon's to judge, so that a malformed one is refused with the reason it gives.
pub fn resource_name(text: &str, collection: &str, example: &str) -> Result<String, BadValue> {
    let id = text
        .strip_prefix(collection)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(text);
    if id.is_empty() || id.contains('/') || id.chars().any(char::is_whitespace) {
        return Err(BadValue::new(
            text,
            format!("`{example}` or `{collection}/{example}`"),
        ));
    }
    Ok(format!("{collection}/{id}"))
}

/// `ses_...` or `sessions/ses_...` as the resource name `sessions/ses_...`.
pub fn parse_session_name(text: &str) -> Result<String, BadValue> {
    resource_name(text, "sessions", "ses_...")
}

/// `0x...` or `accounts/0x...` as the resource name `accounts/0x...`. The daemon checks the
/// EIP-55 checksum of a mixed-case address.
pub fn parse_account_name(text: &str) -> Result<String, BadValue> {
    let address = text.strip_prefix("accounts/").unwrap_or(text);
    let is_address = address
        .strip_prefix("0x")
        .is_some_and(|digits| digits.len() == 40 && digits.bytes().all(|b| b.is_ascii_hexdigit()));
    if !is_address {
        return Err(BadValue::new(
            text,
            "an account: a 0x-prefixed 20-byte hex address, optionally after `accounts/`",
        ));
    }
    Ok(format!("accounts/{address}"))
}

/// The last part of a resource name: `ses_...` of `sessions/ses_...`.
pub fn short_name(name: &str) -> &str {
    name.rsplit_once('/').map_or(name, |(_, id)| id)
}

/// A timestamp in RFC 3339, as precise as the daemon stored it.
pub fn time_text(time: Option<prost_types::Timestamp>) -> Option<String> {
    time.map(|time| time.to_string())
}

/// A timestamp in RFC 3339 to the second, for tables and progress lines; `-` when unset.
pub fn seconds_text(time: Option<prost_types::Timestamp>) -> String {
    time.map_or_else(
        || "-".to_owned(),
        |time| {
            prost_types::Timestamp {
                seconds: time.seconds,
                nanos: 0,
            }
            .to_string()
        },
    )
}

/// Unix seconds in RFC 3339.
pub fn unix_text(seconds: i64) -> String {
    prost_types::Timestamp { seconds, nanos: 0 }.to_string()
}

/// Text the daemon leaves empty when there is nothing to say, as an `Option`.
pub fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// A decimal the daemon leaves empty to mean zero.
pub fn or_zero(text: &str) -> String {
    if text.is_empty() {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// A hash shortened for a table: `0x1234ab…cdef`; short text is kept whole.
pub fn short_hash(hash: &str) -> String {
    if hash.len() <= 14 || !hash.is_ascii() {
        return hash.to_owned();
    }
    format!("{}…{}", &hash[..8], &hash[hash.len() - 4..])
}

/// A sponsorship in one line.
pub fn sponsorship_text(sponsorship: Option<&proto::Sponsorship>) -> String {
    match sponsorship {
        Some(sponsorship) => format!(
            "{} through paymaster {} (approved until {})",
            sponsorship.policy,
            sponsorship.paymaster,
            time_text(sponsorship.valid_until).as_deref().unwrap_or("-")
        ),
        None => "no: the account pays".to_owned(),
    }
}

/// `  name          value` lines of a resource shown for people.
pub fn field(name: &str, value: &str) -> String {
    format!("  {name:<17}{value}\n")
}

// ---------------------------------------------------------------------------------------
// Sessions as JSON and for people.
// ---------------------------------------------------------------------------------------

/// A session status as JSON and tables show it: `active`, `pending_signature`.
pub fn status_name(status: i32) -> String {
    enum_name::<proto::SessionStatus>(status)
}

/// Who holds a session key: `held` (latchkey) or `external` (the client).
pub fn custody_name(custody: i32) -> String {
    enum_name::<proto::KeyCustody>(custody)
}

/// A session as JSON: the API's fields under the API's names, statuses and custody as
/// names, times in RFC 3339, wei as decimal strings, and `null` for what is not there.
#[derive(Debug, Serialize)]
pub struct SessionJson {
    /// `sessions/ses_...`.
    pub name: String,
    /// `ses_...`.
    pub id: String,
    /// `accounts/0x...`.
    pub account: String,
    /// The account owner, who signs registration and revocation.
    pub owner: String,
    /// The account's salt, decimal.
    pub salt: String,
    /// The chain.
    pub chain_id: u64,
    /// The session key's address.
    pub key_address: String,
    /// `held` or `external`.
    pub custody: String,
    /// `pending_signature`, `registering`, `active`, `expired`, `revoking`, `revoked` or
    /// `failed`.
    pub status: String,
    /// RFC 3339: operations are valid after it; `null` when the window has no start.
    pub valid_after: Option<String>,
    /// RFC 3339: the last second the key is valid.
    pub valid_until: String,
    /// What the key may do.
    pub permissions: proto::SessionPermissions,
    /// What the key has used of its limits and what is left, per limit and per period.
    pub usage: Option<proto::SessionUsage>,
    /// The hash the account owner must sign next (the registration's or the revocation's
    /// userOpHash), while the session waits for a signature.
    pub next_action_hash: Option<String>,
    /// userOpHash of the registration.
    pub registration_user_op_hash: Option<String>,
    /// The transaction that carried the registration.
    pub registration_transaction_hash: Option<String>,
    /// Who pays the registration's gas, when a policy does.
    pub registration_sponsorship: Option<proto::Sponsorship>,
    /// userOpHash of the revocation, once requested.
    pub revocation_user_op_hash: Option<String>,
    /// The transaction that carried the revocation.
    pub revocation_transaction_hash: Option<String>,
    /// Who pays the revocation's gas, when a policy does.
    pub revocation_sponsorship: Option<proto::Sponsorship>,
    /// Why the session failed.
    pub failure_reason: Option<String>,
    /// `policies/pol_...` that sponsors the session's operations; `null` when the account
    /// pays.
    pub policy: Option<String>,
    /// RFC 3339.
    pub create_time: Option<String>,
    /// RFC 3339.
    pub update_time: Option<String>,
}

/// An argument rule for people: `param 0 (address) is_account`, `param 1 (uint256) at_most 100`.
fn rule_text(rule: &proto::ArgumentRule) -> String {
    let condition = enum_name::<proto::ArgumentCondition>(rule.condition);
    let mut text = format!("param {} ({}) {condition}", rule.param, rule.r#type);
    if !rule.values.is_empty() {
        text.push(' ');
        text.push_str(&rule.values.join(", "));
    }
    text
}

/// A spend limit and its usage for people: `erc20 0x...: 150 of 10000 spent; 150 of 1000
/// this period (850 left, until 2026-12-04T23:59:59Z)`.
fn limit_text(limit: &proto::SpendLimit, usage: Option<&proto::SpendLimitUsage>) -> String {
    let asset = enum_name::<proto::AssetKind>(limit.asset);
    let mut text = match (limit.token.is_empty(), limit.id.is_empty()) {
        (true, _) => asset,
        (false, true) => format!("{asset} {}", limit.token),
        (false, false) => format!("{asset} {} id {}", limit.token, limit.id),
    };
    let spent = usage.map_or("0", |usage| usage.spent.as_str());
    text.push_str(&format!(": {spent} of {} spent", limit.total));
    if limit.period_seconds != 0 {
        match usage.filter(|usage| usage.period_end != 0) {
            Some(usage) => text.push_str(&format!(
                "; {} of {} this {} s period ({} left, until {})",
                usage.period_spent,
                limit.per_period,
                limit.period_seconds,
                usage.period_left,
                unix_text(usage.period_end)
            )),
            None => text.push_str(&format!(
                "; {} per {} s period",
                limit.per_period, limit.period_seconds
            )),
        }
    }
    text
}

/// The JSON shape of a session.
pub fn session_json(session: &proto::Session) -> SessionJson {
    SessionJson {
        name: session.name.clone(),
        id: session.id.clone(),
        account: session.account.clone(),
        owner: session.owner.clone(),
        salt: or_zero(&session.salt),
        chain_id: session.chain_id,
        key_address: session.key_address.clone(),
        custody: custody_name(session.custody),
        status: status_name(session.status),
        valid_after: (session.valid_after > 0).then(|| unix_text(session.valid_after)),
        valid_until: unix_text(session.valid_until),
        permissions: session.permissions.clone().unwrap_or_default(),
        usage: session.usage.clone(),
        next_action_hash: session
            .next_action
            .as_ref()
            .and_then(|action| non_empty(&action.signable_hash)),
        registration_user_op_hash: non_empty(&session.registration_user_op_hash),
        registration_transaction_hash: non_empty(&session.registration_transaction_hash),
        registration_sponsorship: session.registration_sponsorship.clone(),
        revocation_user_op_hash: non_empty(&session.revocation_user_op_hash),
        revocation_transaction_hash: non_empty(&session.revocation_transaction_hash),
        revocation_sponsorship: session.revocation_sponsorship.clone(),
        failure_reason: non_empty(&session.failure_reason),
        policy: non_empty(&session.policy),
        create_time: time_text(session.create_time),
        update_time: time_text(session.update_time),
    }
}

/// The account's address out of `accounts/0x...`.
fn account_address(name: &str) -> &str {
    name.strip_prefix("accounts/").unwrap_or(name)
}

/// A session for people: its name first, then its fields, permissions and operations.
pub fn render_session(session: &proto::Session) -> String {
    let json = session_json(session);
    let dash = |text: &Option<String>| text.clone().unwrap_or_else(|| "-".to_owned());
    let mut out = format!("{}\n", json.name);
    out.push_str(&field("status", &json.status));
    out.push_str(&field("account", account_address(&json.account)));
    out.push_str(&field("owner", &json.owner));
    out.push_str(&field("salt", &json.salt));
    out.push_str(&field("chain id", &json.chain_id.to_string()));
    let holder = match json.custody.as_str() {
        "held" => "held: latchkey signs with it".to_owned(),
        "external" => "external: the client signs with it".to_owned(),
        other => other.to_owned(),
    };
    out.push_str(&field("key", &format!("{} ({holder})", json.key_address)));
    out.push_str(&field(
        "window",
        &format!(
            "{} .. {}",
            json.valid_after.as_deref().unwrap_or("(no start)"),
            json.valid_until
        ),
    ));
    out.push_str(&field(
        "policy",
        json.policy.as_deref().unwrap_or("none: the account pays"),
    ));
    if let Some(reason) = &json.failure_reason {
        out.push_str(&field("failure", reason));
    }
    if let Some(hash) = &json.next_action_hash {
        out.push_str(&field("next action", &format!("the owner signs {hash}")));
    }
    out.push_str(&field("created", &dash(&json.create_time)));
    out.push_str(&field("updated", &dash(&json.update_time)));

    let permissions = &json.permissions;
    out.push_str("permissions\n");
    out.push_str(&field(
        "calls",
        &format!("at most {} in all", permissions.call_limit),
    ));
    out.push_str(&field(
        "value per call",
        &wei_with_eth(&or_zero(&permissions.value_per_call_limit)),
    ));
    out.push_str(&field(
        "value budget",
        &wei_with_eth(&or_zero(&permissions.value_budget)),
    ));
    out.push_str(&field(
        "gas budget",
        &wei_with_eth(&or_zero(&permissions.gas_budget)),
    ));
    for (index, call) in permissions.calls.iter().enumerate() {
        let label = if index == 0 { "may call" } else { "" };
        out.push_str(&field(label, &format!("{} {}", call.target, call.function)));
        for rule in &call.rules {
            out.push_str(&field("", &format!("  where {}", rule_text(rule))));
        }
    }
    let usage = json.usage.clone().unwrap_or_default();
    if json.usage.is_some() {
        out.push_str(&field(
            "used",
            &format!(
                "{} calls ({} left), {} wei value ({} left), {} wei gas ({} left)",
                usage.calls,
                usage.calls_left,
                or_zero(&usage.value),
                or_zero(&usage.value_left),
                or_zero(&usage.gas),
                or_zero(&usage.gas_left),
            ),
        ));
    }
    for (index, limit) in permissions.limits.iter().enumerate() {
        let label = if index == 0 { "spend limits" } else { "" };
        out.push_str(&field(label, &limit_text(limit, usage.limits.get(index))));
    }

    // The registration always shows; the revocation once one was asked for.
    let mut operation = |title: &str,
                         user_op_hash: &Option<String>,
                         transaction_hash: &Option<String>,
                         sponsorship: &Option<proto::Sponsorship>| {
        out.push_str(title);
        out.push('\n');
        out.push_str(&field("userOpHash", &dash(user_op_hash)));
        out.push_str(&field("transaction", &dash(transaction_hash)));
        out.push_str(&field("sponsored", &sponsorship_text(sponsorship.as_ref())));
    };
    operation(
        "registration",
        &json.registration_user_op_hash,
        &json.registration_transaction_hash,
        &json.registration_sponsorship,
    );
    if json.revocation_user_op_hash.is_some() {
        operation(
            "revocation",
            &json.revocation_user_op_hash,
            &json.revocation_transaction_hash,
            &json.revocation_sponsorship,
        );
    }
    out
}

/// What `revoke` prints: the hash the owner must sign, prominently, what happens
/// meanwhile, then the session.
pub fn render_revocation(session: &proto::Session) -> String {
    let json = session_json(session);
    let hash = json
        .next_action_hash
        .as_deref()
        .or(json.revocation_user_op_hash.as_deref())
        .unwrap_or("(the daemon named no hash: run `latchkey session show` on it)");
    format!(
        "{name} is now {status}.\n\
         \n\
         To finish the revocation, the account owner {owner} must sign:\n\
         \n\
         \x20   {hash}\n\
         \n\
         (EIP-191 personal-sign of the raw hash, or the revocation's EIP-712 typed data) and\n\
         submit the signature with SessionService.SubmitSessionSignature. latchkey signs no\n\
         new intent with this key meanwhile; the key stays registered on chain until the\n\
         revocation is mined, and intents already queued are still relayed.\n\
         \n\
         {session}",
        name = json.name,
        status = json.status,
        owner = json.owner,
        session = render_session(session),
    )
}

/// Sessions as a table.
pub fn render_list(sessions: &[proto::Session]) -> String {
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|session| {
            vec![
                session.id.clone(),
                account_address(&session.account).to_owned(),
                short_hash(&session.key_address),
                custody_name(session.custody),
                status_name(session.status),
                seconds_text(Some(prost_types::Timestamp {
                    seconds: session.valid_until,
                    nanos: 0,
                })),
                if session.policy.is_empty() {
                    "-".to_owned()
                } else {
                    short_name(&session.policy).to_owned()
                },
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "ACCOUNT",
            "KEY",
            "CUSTODY",
            "STATUS",
            "VALID UNTIL",
            "POLICY",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::page_size;

    const ID: &str = "ses_01J9Z8Q4X5N6M7P8R9S0T1V2W3";
    const ACCOUNT: &str = "0x52908400098527886E0F7030069857D2E4169EE7";
    const OWNER: &str = "0x8617E340B3D01FA5F11F306F4090FD50E238070D";
    const KEY: &str = "0xde709f2102306220921060314715629080e2fb77";
    const HASH: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: SessionCommand,
    }

    fn sample() -> proto::Session {
        proto::Session {
            tenant: "default".to_owned(),
            registration_intent: String::new(),
            revocation_intent: String::new(),
            signature_deadline: None,
            owner_signer: None,
            key_signer: None,
            usage: None,
            client_access: 0,
            name: format!("sessions/{ID}"),
            id: ID.to_owned(),
            account: format!("accounts/{ACCOUNT}"),
            owner: OWNER.to_owned(),
            salt: "7".to_owned(),
            chain_id: 31_337,
            key_address: KEY.to_owned(),
            custody: proto::KeyCustody::Held.into(),
            valid_after: 0,
            valid_until: 86_400,
            permissions: Some(proto::SessionPermissions {
                call_limit: 10,
                value_per_call_limit: String::new(),
                value_budget: "0".to_owned(),
                gas_budget: "1000000000000000000".to_owned(),
                calls: vec![proto::CallPermission {
                    target: ACCOUNT.to_owned(),
                    function: "0x40c10f19".to_owned(),
                    selector: String::new(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: proto::SessionStatus::Revoking.into(),
            next_action: Some(proto::NextAction {
                r#type: proto::NextActionType::SignWithWallet.into(),
                signable_hash: HASH.to_owned(),
                ..Default::default()
            }),
            registration_user_op_hash: "0xaa".to_owned(),
            registration_transaction_hash: "0xbb".to_owned(),
            revocation_user_op_hash: HASH.to_owned(),
            revocation_transaction_hash: String::new(),
            failure_reason: String::new(),
            create_time: Some(prost_types::Timestamp {
                seconds: 60,
                nanos: 5_000_000,
            }),
            update_time: None,
            policy: String::new(),
            registration_sponsorship: None,
            revocation_sponsorship: Some(proto::Sponsorship {
                policy: "policies/pol_01J9Z8Q4X5N6M7P8R9S0T1V2W3".to_owned(),
                paymaster: "0xPM".to_owned(),
                valid_until: Some(prost_types::Timestamp {
                    seconds: 120,
                    nanos: 0,
                }),
            }),
        }
    }

    #[test]
    fn session_names_take_the_id_or_the_resource_name() {
        assert_eq!(parse_session_name(ID), Ok(format!("sessions/{ID}")));
        assert_eq!(
            parse_session_name(&format!("sessions/{ID}")),
            Ok(format!("sessions/{ID}"))
        );
        // A malformed id goes to the daemon, which says what is wrong with it.
        assert_eq!(
            parse_session_name("ses_bogus"),
            Ok("sessions/ses_bogus".to_owned())
        );
        for bad in ["", "sessions/", "sessions/a/b", "ses_ x", "a/b"] {
            assert!(parse_session_name(bad).is_err(), "{bad}");
        }
        assert_eq!(short_name(&format!("sessions/{ID}")), ID);
        assert_eq!(short_name(ID), ID);
    }

    #[test]
    fn accounts_take_the_address_or_the_resource_name() {
        let name = format!("accounts/{ACCOUNT}");
        assert_eq!(parse_account_name(ACCOUNT), Ok(name.clone()));
        assert_eq!(parse_account_name(&name), Ok(name));
        for bad in ["", "0x1234", "accounts/", ACCOUNT.trim_start_matches("0x")] {
            let error = parse_account_name(bad).expect_err(bad);
            assert!(error.expected.contains("20-byte"), "{bad}");
        }
    }

    #[test]
    fn the_command_line_takes_statuses_and_a_positive_limit() {
        let cli = Cli::try_parse_from(["x", "list", "--status", "pending-signature"])
            .expect("kebab-case");
        let SessionCommand::List { status, limit, .. } = cli.command else {
            panic!("list");
        };
        assert_eq!(
            status.map(|choice| choice.value),
            Some(proto::SessionStatus::PendingSignature)
        );
        assert_eq!(limit, 50);
        // The names the JSON shows parse back.
        assert!(Cli::try_parse_from(["x", "list", "--status", "pending_signature"]).is_ok());
        let revoked = Cli::try_parse_from(["x", "list", "--status", "revoked"]).expect("revoked");
        let SessionCommand::List { status, .. } = revoked.command else {
            panic!("list");
        };
        assert_eq!(
            status.map(|choice| choice.value),
            Some(proto::SessionStatus::Revoked)
        );
        for bad in [
            &["x", "list", "--status", "alive"] as &[&str],
            &["x", "list", "--limit", "0"],
            &["x", "show", ""],
        ] {
            let error = Cli::try_parse_from(bad).expect_err("usage error");
            assert_eq!(error.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn pages_ask_for_what_is_left_and_at_most_a_hundred() {
        assert_eq!(page_size(50), 50);
        assert_eq!(page_size(1_000), 100);
        assert_eq!(page_size(0), 1);
    }

    #[test]
    fn session_json_names_statuses_and_nulls_what_is_missing() {
        let json = serde_json::to_value(session_json(&sample())).expect("json");
        assert_eq!(json["name"], format!("sessions/{ID}"));
        assert_eq!(json["status"], "revoking");
        assert_eq!(json["custody"], "held");
        assert_eq!(json["valid_after"], serde_json::Value::Null);
        assert_eq!(json["valid_until"], "1970-01-02T00:00:00Z");
        assert_eq!(json["permissions"]["value_per_call_limit_wei"], "0");
        assert_eq!(json["permissions"]["gas_budget_wei"], "1000000000000000000");
        assert_eq!(json["permissions"]["calls"][0]["function"], "0x40c10f19");
        assert_eq!(json["next_action_hash"], HASH);
        assert_eq!(json["revocation_transaction_hash"], serde_json::Value::Null);
        assert_eq!(
            json["revocation_sponsorship"]["valid_until"],
            "1970-01-01T00:02:00Z"
        );
        assert_eq!(json["registration_sponsorship"], serde_json::Value::Null);
        assert_eq!(json["policy"], serde_json::Value::Null);
        assert_eq!(json["create_time"], "1970-01-01T00:01:00.005Z");
        assert_eq!(json["update_time"], serde_json::Value::Null);
    }

    #[test]
    fn a_session_reads_name_first_and_a_list_as_a_table() {
        let text = render_session(&sample());
        assert!(text.starts_with(&format!("sessions/{ID}\n")), "{text}");
        assert!(text.contains("  status           revoking\n"), "{text}");
        assert!(
            text.contains("  window           (no start) .. 1970-01-02T00:00:00Z\n"),
            "{text}"
        );
        assert!(
            text.contains("  gas budget       1000000000000000000 wei (1 ETH)\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!("  may call         {ACCOUNT} 0x40c10f19\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("  next action      the owner signs {HASH}\n")),
            "{text}"
        );
        assert!(text.contains("revocation\n"), "{text}");
        let list = render_list(&[sample()]);
        let mut lines = list.lines();
        assert_eq!(
            lines.next().map(str::to_owned),
            Some(format!(
                "{:<32}{:<44}KEY            CUSTODY  STATUS    VALID UNTIL           POLICY",
                "ID", "ACCOUNT"
            ))
        );
        assert_eq!(
            lines.next().map(str::to_owned),
            Some(format!(
                "{ID}  {ACCOUNT}  0xde709f…fb77  held     revoking  1970-01-02T00:00:00Z  -"
            ))
        );
    }

    #[test]
    fn a_revocation_shows_the_hash_to_sign_first() {
        let text = render_revocation(&sample());
        assert!(
            text.starts_with(&format!("sessions/{ID} is now revoking.\n")),
            "{text}"
        );
        assert!(text.contains(&format!("\n    {HASH}\n")), "{text}");
        assert!(text.contains(OWNER), "{text}");
        assert!(text.contains("signs no\nnew intent"), "{text}");
    }

    #[test]
    fn hashes_and_times_shorten_for_tables() {
        assert_eq!(short_hash(HASH), "0x111111…1111");
        assert_eq!(short_hash("0xab"), "0xab");
        assert_eq!(
            seconds_text(Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 999_000_000
            })),
            "1970-01-01T00:00:01Z"
        );
        assert_eq!(seconds_text(None), "-");
        assert_eq!(unix_text(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn rules_limits_and_usage_read_by_name_in_text_and_json() {
        let mut session = sample();
        let permissions = session.permissions.as_mut().expect("permissions");
        permissions.calls[0].rules.push(proto::ArgumentRule {
            param: 0,
            condition: proto::ArgumentCondition::IsAccount.into(),
            values: Vec::new(),
            r#type: "address".into(),
        });
        permissions.limits.push(proto::SpendLimit {
            asset: proto::AssetKind::Erc20.into(),
            token: ACCOUNT.to_owned(),
            total: "5000".into(),
            per_period: "1000".into(),
            period_seconds: 86_400,
            ..Default::default()
        });
        session.usage = Some(proto::SessionUsage {
            calls: 2,
            calls_left: 8,
            limits: vec![proto::SpendLimitUsage {
                spent: "1500".into(),
                left: "3500".into(),
                period_spent: "600".into(),
                period_left: "400".into(),
                period_start: 86_400,
                period_end: 172_799,
            }],
            ..Default::default()
        });
        let text = render_session(&session);
        assert!(
            text.contains("where param 0 (address) is_account"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "erc20 {ACCOUNT}: 1500 of 5000 spent; 600 of 1000 this 86400 s period (400 left, until 1970-01-02T23:59:59Z)"
            )),
            "{text}"
        );
        let json = serde_json::to_value(session_json(&session)).expect("json");
        assert_eq!(
            json["permissions"]["calls"][0]["rules"][0]["condition"],
            "is_account"
        );
        assert_eq!(json["permissions"]["limits"][0]["asset"], "erc20");
        assert_eq!(
            json["permissions"]["limits"][0]["id"],
            serde_json::Value::Null
        );
        assert_eq!(json["usage"]["limits"][0]["period_left"], "400");
    }
}
