//! `latchkey intent`: the transaction intents a running daemon knows, through its admin
//! service: list them, show one, and watch one to its end.

use std::io::{IsTerminal, Write};

use anyhow::{Context, bail};
use serde::Serialize;

use super::{
    BadValue, Choice, ClientArgs,
    admin::AdminClient,
    collect_pages, enum_name, print_output, rpc_error,
    session::{
        field, non_empty, or_zero, parse_account_name, parse_session_name, resource_name,
        seconds_text, short_hash, short_name, sponsorship_text, time_text,
    },
    spinner, table, wei_with_eth,
};
use crate::api::proto::{self, TransactionIntentStatus as Status};

/// The exit code of `intent watch` when the intent ends REVERTED, DROPPED or EXPIRED.
pub const EXIT_NOT_CONFIRMED: i32 = 3;

/// What `latchkey intent` does.
#[derive(Debug, clap::Subcommand)]
pub enum IntentCommand {
    /// List intents, newest first.
    ///
    /// A table of id, session, status, userOpHash, transaction, block and last change; with
    /// --json an array of the intents as `show --json` prints them.
    List {
        /// Only intents of this session: `ses_...` or `sessions/ses_...`.
        #[arg(long, value_name = "SESSION", value_parser = parse_session_name)]
        session: Option<String>,
        /// Only intents of this account: `0x...` or `accounts/0x...`.
        #[arg(long, value_name = "ADDR", value_parser = parse_account_name)]
        account: Option<String>,
        /// Only intents in this status.
        #[arg(long, value_enum, value_name = "STATUS")]
        status: Option<Choice<Status>>,
        /// Only intents of this kind; every kind when not given.
        #[arg(long, value_enum, value_name = "KIND")]
        kind: Option<Choice<proto::TransactionIntentKind>>,
        /// At most this many intents.
        #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    /// Show one intent in full.
    ///
    /// Its calls, its submission (transaction, relayer, nonce, replaced transactions, fees),
    /// its result (block, gas used, cost, revert), its sponsorship and the history of its
    /// statuses.
    Show {
        /// The intent: `int_...` or `transactionIntents/int_...`.
        #[arg(value_parser = parse_intent_name)]
        intent: String,
    },
    /// Follow an intent to its end, one line per change.
    ///
    /// Each line holds the time, the status, and what is new: the transaction, relayer and
    /// nonce once sent, a replacement, the block once included. With --json, each change is
    /// one JSON object on its own line (as `show --json` prints it).
    ///
    /// Exit codes: 0 the intent ended CONFIRMED; 3 it ended REVERTED, DROPPED or EXPIRED
    /// (the reason is printed); 1 the watch broke (the daemon refused, went away or shut
    /// down) before the intent ended; 2 bad command line.
    Watch {
        /// The intent: `int_...` or `transactionIntents/int_...`.
        #[arg(value_parser = parse_intent_name)]
        intent: String,
    },
}

/// `int_...` or `transactionIntents/int_...` as the resource name
/// `transactionIntents/int_...`.
pub fn parse_intent_name(text: &str) -> Result<String, BadValue> {
    resource_name(text, "transactionIntents", "int_...")
}

/// Runs a `latchkey intent` command against the daemon's admin service, prints its result
/// and returns the process's exit code.
pub async fn run(args: ClientArgs, command: IntentCommand) -> anyhow::Result<i32> {
    let mut client = args.connect_admin().await?;
    match command {
        IntentCommand::List {
            session,
            account,
            status,
            kind,
            limit,
        } => {
            let filter = proto::ListTransactionIntentsRequest {
                session: session.unwrap_or_default(),
                account: account.unwrap_or_default(),
                status: status.map_or(Status::Unspecified, |choice| choice.value) as i32,
                kind: kind.map_or(proto::TransactionIntentKind::Unspecified, |choice| {
                    choice.value
                }) as i32,
                page_size: 0,
                page_token: String::new(),
            };
            let intents = list(&mut client, filter, limit).await?;
            let all: Vec<IntentJson> = intents.iter().map(intent_json).collect();
            print_output(args.json, &all, || render_list(&intents))?;
            Ok(0)
        }
        IntentCommand::Show { intent: name } => {
            let intent = client
                .get_transaction_intent(proto::GetTransactionIntentRequest { name })
                .await
                .map_err(rpc_error)?
                .into_inner();
            print_output(args.json, &intent_json(&intent), || render_intent(&intent))?;
            Ok(0)
        }
        IntentCommand::Watch { intent: name } => watch(&mut client, name, args.json).await,
    }
}

/// The first `limit` intents that match `filter`, page after page.
async fn list(
    client: &mut AdminClient,
    filter: proto::ListTransactionIntentsRequest,
    limit: u32,
) -> anyhow::Result<Vec<proto::TransactionIntent>> {
    collect_pages(limit, |page_size, page_token| {
        let mut client = client.clone();
        let request = proto::ListTransactionIntentsRequest {
            page_size,
            page_token,
            ..filter.clone()
        };
        async move {
            let page = client
                .list_transaction_intents(request)
                .await
                .map_err(rpc_error)?
                .into_inner();
            Ok((page.transaction_intents, page.next_page_token))
        }
    })
    .await
}

/// Streams the intent's changes to stdout until it is final, and returns the exit code its
/// final status calls for.
async fn watch(client: &mut AdminClient, name: String, json: bool) -> anyhow::Result<i32> {
    let mut stream = client
        .watch_transaction_intent(proto::WatchTransactionIntentRequest { name: name.clone() })
        .await
        .map_err(rpc_error)?
        .into_inner();
    let live = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
    let spinner = spinner(live, String::new());
    spinner.set_message("waiting");
    let mut previous: Option<proto::TransactionIntent> = None;
    loop {
        let received = stream.message().await;
        let intent = match received {
            Ok(Some(intent)) => intent,
            Ok(None) => {
                spinner.finish_and_clear();
                bail!(
                    "the daemon ended the watch of {name} before the intent reached a final \
                     status"
                )
            }
            Err(status) => {
                spinner.finish_and_clear();
                return Err(rpc_error(status))
                    .with_context(|| format!("the watch of {name} broke"));
            }
        };
        let line = if json {
            serde_json::to_string(&intent_json(&intent))?
        } else {
            render_update(previous.as_ref(), &intent)
        };
        spinner.suspend(|| {
            println!("{line}");
            std::io::stdout().flush()
        })?;
        spinner.set_message(status_name(intent.status));
        if let Some(code) = final_exit_code(intent.status) {
            spinner.finish_and_clear();
            if code != 0 && json {
                eprintln!(
                    "{} ended {}: {}",
                    intent.name,
                    status_name(intent.status),
                    end_reason(&intent)
                );
            }
            return Ok(code);
        }
        previous = Some(intent);
    }
}

/// The exit code of a watch that saw `status`, once it is final: 0 for CONFIRMED,
/// [`EXIT_NOT_CONFIRMED`] for the others; `None` while the intent is on its way.
pub fn final_exit_code(status: i32) -> Option<i32> {
    match Status::try_from(status) {
        Ok(Status::Confirmed) => Some(0),
        Ok(Status::Reverted | Status::Dropped | Status::Expired) => Some(EXIT_NOT_CONFIRMED),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Intents as JSON and for people.
// ---------------------------------------------------------------------------------------

/// An intent status as JSON and tables show it: `confirmed`, `pending_signature`.
pub fn status_name(status: i32) -> String {
    enum_name::<Status>(status)
}

/// An intent as JSON: the API's fields under the API's names, statuses as names, times in
/// RFC 3339, wei and gas as decimal strings, and `null` for what is not there.
#[derive(Debug, Serialize)]
pub struct IntentJson {
    /// `transactionIntents/int_...`.
    pub name: String,
    /// `int_...`.
    pub id: String,
    /// `sessions/ses_...`.
    pub session: String,
    /// `accounts/0x...`.
    pub account: String,
    /// The chain.
    pub chain_id: u64,
    /// `pending_signature`, `queued`, `submitted`, `included`, `confirmed`, `reverted`,
    /// `dropped` or `expired`.
    pub status: String,
    /// userOpHash of the intent's operation.
    pub user_op_hash: String,
    /// The calls, in order.
    pub interactions: Vec<InteractionJson>,
    /// The hash the session key holder must sign, while the intent waits for it.
    pub next_action_hash: Option<String>,
    /// RFC 3339: when a PENDING_SIGNATURE intent expires.
    pub signature_deadline: Option<String>,
    /// The transaction it was last sent in.
    pub submission: Option<proto::TransactionIntentSubmission>,
    /// How it ended, once included.
    pub result: Option<proto::TransactionIntentResult>,
    /// Why it was DROPPED or EXPIRED.
    pub failure_reason: Option<String>,
    /// Why the EntryPoint refused it, when it did.
    pub refusal: Option<proto::RevertDetails>,
    /// Who pays its gas, when a policy does.
    pub sponsorship: Option<proto::Sponsorship>,
    /// Every status it entered, in order.
    pub history: Vec<proto::StatusTransition>,
    /// The idempotency key it was created with.
    pub idempotency_key: Option<String>,
    /// RFC 3339.
    pub create_time: Option<String>,
    /// RFC 3339.
    pub update_time: Option<String>,
}

/// One call.
#[derive(Debug, Serialize)]
pub struct InteractionJson {
    /// The contract or account called.
    pub to: String,
    /// Value sent with the call, wei.
    pub value_wei: String,
    /// The function's signature, when the call was given by signature.
    pub function: Option<String>,
    /// Its arguments, when the call was given by signature.
    pub args: Option<Vec<String>>,
    /// The raw calldata, when the call was given as such.
    pub calldata: Option<String>,
}

/// The JSON shape of an intent.
pub fn intent_json(intent: &proto::TransactionIntent) -> IntentJson {
    IntentJson {
        name: intent.name.clone(),
        id: intent.id.clone(),
        session: intent.session.clone(),
        account: intent.account.clone(),
        chain_id: intent.chain_id,
        status: status_name(intent.status),
        user_op_hash: intent.user_op_hash.clone(),
        interactions: intent
            .interactions
            .iter()
            .map(|interaction| {
                let (function, args, calldata) = match &interaction.call {
                    Some(proto::interaction::Call::FunctionCall(call)) => {
                        (Some(call.signature.clone()), Some(call.args.clone()), None)
                    }
                    Some(proto::interaction::Call::Calldata(data)) => {
                        (None, None, Some(data.clone()))
                    }
                    None => (None, None, None),
                };
                InteractionJson {
                    to: interaction.to.clone(),
                    value_wei: or_zero(&interaction.value),
                    function,
                    args,
                    calldata,
                }
            })
            .collect(),
        next_action_hash: intent
            .next_action
            .as_ref()
            .and_then(|action| non_empty(&action.signable_hash)),
        signature_deadline: time_text(intent.signature_deadline),
        submission: intent.submission.clone(),
        result: intent.result.clone(),
        failure_reason: non_empty(&intent.failure_reason),
        refusal: intent.refusal.clone(),
        sponsorship: intent.sponsorship.clone(),
        history: intent.history.clone(),
        idempotency_key: non_empty(&intent.idempotency_key),
        create_time: time_text(intent.create_time),
        update_time: time_text(intent.update_time),
    }
}

/// A failure in one line: the AA code, the cause, the inner reason and the remedy, those
/// that are there.
fn revert_text(revert: &proto::RevertDetails) -> String {
    let mut parts: Vec<String> = Vec::new();
    for part in [&revert.aa_code, &revert.cause, &revert.reason] {
        if !part.is_empty() {
            parts.push(part.clone());
        }
    }
    let mut text = parts.join(": ");
    if !revert.remedy.is_empty() {
        text.push_str(&format!(" ({})", revert.remedy));
    }
    if text.is_empty() {
        "no reason given".to_owned()
    } else {
        text
    }
}

/// Why an intent ended other than CONFIRMED, as well as the daemon says.
pub fn end_reason(intent: &proto::TransactionIntent) -> String {
    let json = intent_json(intent);
    if let Some(revert) = json
        .result
        .as_ref()
        .and_then(|result| result.revert.as_ref())
    {
        return revert_text(revert);
    }
    match (&json.failure_reason, &json.refusal) {
        (Some(reason), Some(refusal)) => format!("{reason}; {}", revert_text(refusal)),
        (Some(reason), None) => reason.clone(),
        (None, Some(refusal)) => revert_text(refusal),
        (None, None) => "no reason given".to_owned(),
    }
}

/// Wei per gas, with its value in gwei when that is at least 0.001 gwei.
fn fee_text(wei: &str) -> String {
    const GWEI: u128 = 1_000_000_000;
    match wei.parse::<u128>() {
        Ok(value) if value >= GWEI / 1_000 => {
            let fraction = format!("{:09}", value % GWEI);
            let fraction = fraction.trim_end_matches('0');
            let gwei = if fraction.is_empty() {
                format!("{}", value / GWEI)
            } else {
                format!("{}.{fraction}", value / GWEI)
            };
            format!("{wei} wei/gas ({gwei} gwei)")
        }
        _ => format!("{wei} wei/gas"),
    }
}

/// One call in one line: `0xTO mint(address,uint256,uint256)(0x.., 1, 1)`, with its value
/// when it carries one.
fn interaction_text(interaction: &InteractionJson) -> String {
    let call = match (
        &interaction.function,
        &interaction.args,
        &interaction.calldata,
    ) {
        (Some(function), args, _) => {
            format!(
                "{function} [{}]",
                args.as_deref().unwrap_or_default().join(", ")
            )
        }
        (None, _, Some(data)) if data.is_empty() || data == "0x" => "(plain transfer)".to_owned(),
        (None, _, Some(data)) => format!("calldata {data}"),
        (None, _, None) => "(no call)".to_owned(),
    };
    if interaction.value_wei == "0" {
        format!("{} {call}", interaction.to)
    } else {
        format!(
            "{} {call}, value {}",
            interaction.to,
            wei_with_eth(&interaction.value_wei)
        )
    }
}

/// An intent for people: its name first, then its fields, calls, submission, result,
/// sponsorship and history.
pub fn render_intent(intent: &proto::TransactionIntent) -> String {
    let json = intent_json(intent);
    let dash = |text: &Option<String>| text.clone().unwrap_or_else(|| "-".to_owned());
    let mut out = format!("{}\n", json.name);
    out.push_str(&field("status", &json.status));
    out.push_str(&field("session", &json.session));
    out.push_str(&field(
        "account",
        json.account
            .strip_prefix("accounts/")
            .unwrap_or(&json.account),
    ));
    out.push_str(&field("chain id", &json.chain_id.to_string()));
    out.push_str(&field("userOpHash", &json.user_op_hash));
    if let Some(hash) = &json.next_action_hash {
        out.push_str(&field(
            "next action",
            &format!(
                "the session key holder signs {hash} before {}",
                dash(&json.signature_deadline)
            ),
        ));
    }
    if let Some(reason) = &json.failure_reason {
        out.push_str(&field("failure", reason));
    }
    if let Some(refusal) = &json.refusal {
        out.push_str(&field("refused", &revert_text(refusal)));
    }
    out.push_str(&field(
        "sponsored",
        &sponsorship_text(json.sponsorship.as_ref()),
    ));
    out.push_str(&field("idempotency key", &dash(&json.idempotency_key)));
    out.push_str(&field("created", &dash(&json.create_time)));
    out.push_str(&field("updated", &dash(&json.update_time)));

    out.push_str("interactions\n");
    for (index, interaction) in json.interactions.iter().enumerate() {
        out.push_str(&format!("  {index:<3}{}\n", interaction_text(interaction)));
    }
    if let Some(submission) = &json.submission {
        out.push_str("submission\n");
        out.push_str(&field("transaction", &submission.transaction_hash));
        out.push_str(&field("relayer", &submission.relayer));
        out.push_str(&field("nonce", &submission.relayer_nonce.to_string()));
        for (index, replaced) in submission.replaced_transaction_hashes.iter().enumerate() {
            let label = if index == 0 { "replaced" } else { "" };
            out.push_str(&field(label, replaced));
        }
        out.push_str(&field(
            "max fee",
            &fee_text(&or_zero(&submission.max_fee_per_gas)),
        ));
        out.push_str(&field(
            "priority fee",
            &fee_text(&or_zero(&submission.max_priority_fee_per_gas)),
        ));
    }
    if let Some(result) = &json.result {
        out.push_str("result\n");
        out.push_str(&field(
            "outcome",
            if result.success {
                "executed"
            } else {
                "execution reverted"
            },
        ));
        out.push_str(&field("transaction", &result.transaction_hash));
        out.push_str(&field(
            "block",
            &format!("{} ({})", result.block_number, result.block_hash),
        ));
        out.push_str(&field("gas used", &or_zero(&result.gas_used)));
        out.push_str(&field("cost", &wei_with_eth(&or_zero(&result.actual_cost))));
        if let Some(revert) = &result.revert {
            out.push_str(&field("revert", &revert_text(revert)));
        }
    }
    out.push_str("history\n");
    for transition in &json.history {
        out.push_str(&format!(
            "  {:<26}{}\n",
            time_text(transition.time).as_deref().unwrap_or("-"),
            status_name(transition.status)
        ));
    }
    out
}

/// One progress line of `watch`: the time of the change, the status, and what is new about
/// it given the `previous` update.
pub fn render_update(
    previous: Option<&proto::TransactionIntent>,
    intent: &proto::TransactionIntent,
) -> String {
    let json = intent_json(intent);
    let sent = json.submission.as_ref().map(|submission| {
        format!(
            "tx {} from relayer {} nonce {}",
            submission.transaction_hash, submission.relayer, submission.relayer_nonce
        )
    });
    let previous_tx = previous
        .and_then(|previous| previous.submission.as_ref())
        .map(|submission| submission.transaction_hash.as_str());
    let landed = |result: &proto::TransactionIntentResult| {
        format!(
            "block {} tx {}",
            result.block_number, result.transaction_hash
        )
    };
    let detail = match Status::try_from(intent.status) {
        Ok(Status::PendingSignature) => format!(
            "waiting for the session key holder to sign {} (until {})",
            json.next_action_hash.as_deref().unwrap_or("-"),
            json.signature_deadline.as_deref().unwrap_or("-")
        ),
        Ok(Status::Queued) => "signed, waiting for a bundle".to_owned(),
        Ok(Status::Submitted) => {
            let mut detail = sent.unwrap_or_else(|| "sent".to_owned());
            let current_tx = json
                .submission
                .as_ref()
                .map(|submission| submission.transaction_hash.as_str());
            if let (Some(old), Some(new)) = (previous_tx, current_tx)
                && old != new
            {
                detail.push_str(&format!(", replacing {old} with higher fees"));
            }
            if previous.is_some_and(|previous| previous.status == Status::Included as i32) {
                detail.push_str(", back from a block a reorg removed");
            }
            detail
        }
        Ok(Status::Included) => match &json.result {
            Some(result) => format!("{}, waiting for confirmations", landed(result)),
            None => "in a block, waiting for confirmations".to_owned(),
        },
        Ok(Status::Confirmed) => match &json.result {
            Some(result) => format!(
                "{}, gas used {}, cost {}",
                landed(result),
                or_zero(&result.gas_used),
                wei_with_eth(&or_zero(&result.actual_cost))
            ),
            None => "confirmed".to_owned(),
        },
        Ok(Status::Reverted) => match &json.result {
            Some(result) => format!("{}: {}", landed(result), end_reason(intent)),
            None => end_reason(intent),
        },
        Ok(Status::Dropped | Status::Expired) => end_reason(intent),
        Ok(Status::Unspecified) | Err(_) => String::new(),
    };
    let line = format!(
        "{}  {:<17}  {detail}",
        seconds_text(intent.update_time),
        json.status
    );
    line.trim_end().to_owned()
}

/// Intents as a table.
pub fn render_list(intents: &[proto::TransactionIntent]) -> String {
    let rows: Vec<Vec<String>> = intents
        .iter()
        .map(|intent| {
            let tx = intent
                .result
                .as_ref()
                .map(|result| result.transaction_hash.as_str())
                .or(intent
                    .submission
                    .as_ref()
                    .map(|submission| submission.transaction_hash.as_str()))
                .filter(|tx| !tx.is_empty());
            vec![
                intent.id.clone(),
                short_name(&intent.session).to_owned(),
                status_name(intent.status),
                short_hash(&intent.user_op_hash),
                tx.map_or_else(|| "-".to_owned(), short_hash),
                intent
                    .result
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |result| result.block_number.to_string()),
                seconds_text(intent.update_time),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "SESSION",
            "STATUS",
            "USEROPHASH",
            "TX",
            "BLOCK",
            "UPDATED",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    const ID: &str = "int_01J9Z8Q4X5N6M7P8R9S0T1V2W3";
    const SESSION: &str = "ses_01J9Z8Q4X5N6M7P8R9S0T1V2W4";
    const HASH: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";
    const TX1: &str = "0x2222222222222222222222222222222222222222222222222222222222222222";
    const TX2: &str = "0x3333333333333333333333333333333333333333333333333333333333333333";
    const RELAYER: &str = "0x8617E340B3D01FA5F11F306F4090FD50E238070D";

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: IntentCommand,
    }

    fn at(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    fn queued() -> proto::TransactionIntent {
        proto::TransactionIntent {
            name: format!("transactionIntents/{ID}"),
            id: ID.to_owned(),
            session: format!("sessions/{SESSION}"),
            account: "accounts/0x52908400098527886E0F7030069857D2E4169EE7".to_owned(),
            chain_id: 31_337,
            interactions: vec![proto::Interaction {
                to: "0x5FbDB2315678afecb367f032d93F642f64180aa3".to_owned(),
                value: String::new(),
                call: Some(proto::interaction::Call::FunctionCall(
                    proto::FunctionCall {
                        signature: "mint(address,uint256,uint256)".to_owned(),
                        args: vec!["0xabc".to_owned(), "1".to_owned(), "2".to_owned()],
                    },
                )),
            }],
            status: Status::Queued.into(),
            user_op_hash: HASH.to_owned(),
            history: vec![proto::StatusTransition {
                status: Status::Queued.into(),
                time: at(10),
            }],
            create_time: at(10),
            update_time: at(10),
            ..Default::default()
        }
    }

    fn submitted(tx: &str, replaced: &[&str]) -> proto::TransactionIntent {
        let mut intent = queued();
        intent.status = Status::Submitted.into();
        intent.update_time = at(11);
        intent.submission = Some(proto::TransactionIntentSubmission {
            transaction_hash: tx.to_owned(),
            relayer: RELAYER.to_owned(),
            relayer_nonce: 7,
            replaced_transaction_hashes: replaced.iter().map(|tx| (*tx).to_owned()).collect(),
            max_fee_per_gas: "1500000000".to_owned(),
            max_priority_fee_per_gas: "1000000000".to_owned(),
        });
        intent.history.push(proto::StatusTransition {
            status: Status::Submitted.into(),
            time: at(11),
        });
        intent
    }

    fn ended(status: Status, success: bool) -> proto::TransactionIntent {
        let mut intent = submitted(TX1, &[]);
        intent.status = status.into();
        intent.update_time = at(13);
        intent.result = Some(proto::TransactionIntentResult {
            transaction_hash: TX1.to_owned(),
            block_number: 42,
            block_hash: HASH.to_owned(),
            gas_used: "84000".to_owned(),
            actual_cost: "84000000000000".to_owned(),
            success,
            revert: (!success).then(|| proto::RevertDetails {
                aa_code: String::new(),
                cause: "the call reverted".to_owned(),
                remedy: "check the arguments".to_owned(),
                reason: "Error(sold out)".to_owned(),
            }),
        });
        intent.history.push(proto::StatusTransition {
            status: status.into(),
            time: at(13),
        });
        intent
    }

    #[test]
    fn intent_names_take_the_id_or_the_resource_name() {
        let name = format!("transactionIntents/{ID}");
        assert_eq!(parse_intent_name(ID), Ok(name.clone()));
        assert_eq!(parse_intent_name(&name), Ok(name));
        assert_eq!(
            parse_intent_name("int_bogus"),
            Ok("transactionIntents/int_bogus".to_owned())
        );
        for bad in ["", "transactionIntents/", "intents/int_1/x", " "] {
            assert!(parse_intent_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_command_line_takes_filters_and_statuses() {
        let cli = Cli::try_parse_from([
            "x",
            "list",
            "--session",
            SESSION,
            "--status",
            "confirmed",
            "--limit",
            "200",
        ])
        .expect("parses");
        let IntentCommand::List {
            session,
            status,
            limit,
            account,
            ..
        } = cli.command
        else {
            panic!("list");
        };
        assert_eq!(session, Some(format!("sessions/{SESSION}")));
        assert_eq!(status.map(|choice| choice.value), Some(Status::Confirmed));
        assert_eq!(limit, 200);
        assert_eq!(account, None);
        let pending = Cli::try_parse_from(["x", "list", "--status", "pending_signature"])
            .expect("the JSON's name");
        let IntentCommand::List { status, .. } = pending.command else {
            panic!("list");
        };
        assert_eq!(
            status.map(|choice| choice.value),
            Some(Status::PendingSignature)
        );
        let error = Cli::try_parse_from(["x", "list", "--status", "done"]).expect_err("bad");
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn watches_end_zero_only_when_confirmed() {
        assert_eq!(final_exit_code(Status::Confirmed as i32), Some(0));
        for status in [Status::Reverted, Status::Dropped, Status::Expired] {
            assert_eq!(final_exit_code(status as i32), Some(EXIT_NOT_CONFIRMED));
        }
        for status in [
            Status::PendingSignature,
            Status::Queued,
            Status::Submitted,
            Status::Included,
        ] {
            assert_eq!(final_exit_code(status as i32), None);
        }
    }

    #[test]
    fn progress_lines_say_what_changed() {
        let first = queued();
        assert_eq!(
            render_update(None, &first),
            "1970-01-01T00:00:10Z  queued             signed, waiting for a bundle"
        );
        let sent = submitted(TX1, &[]);
        assert_eq!(
            render_update(Some(&first), &sent),
            format!(
                "1970-01-01T00:00:11Z  submitted          tx {TX1} from relayer {RELAYER} nonce 7"
            )
        );
        let replaced = submitted(TX2, &[TX1]);
        assert!(
            render_update(Some(&sent), &replaced)
                .ends_with(&format!("nonce 7, replacing {TX1} with higher fees")),
            "{}",
            render_update(Some(&sent), &replaced)
        );
        let mut included = ended(Status::Included, true);
        included.result.as_mut().expect("result").gas_used = "84000".to_owned();
        assert!(render_update(Some(&sent), &included).contains("block 42 tx"));
        let reorged = submitted(TX1, &[]);
        assert!(render_update(Some(&included), &reorged).contains("reorg"));
        let confirmed = ended(Status::Confirmed, true);
        assert!(
            render_update(Some(&sent), &confirmed)
                .ends_with("gas used 84000, cost 84000000000000 wei (0.000084 ETH)")
        );
        let reverted = ended(Status::Reverted, false);
        assert!(
            render_update(Some(&sent), &reverted)
                .ends_with("the call reverted: Error(sold out) (check the arguments)")
        );
        let mut dropped = queued();
        dropped.status = Status::Dropped.into();
        dropped.failure_reason = "waited too long in the queue".to_owned();
        assert_eq!(end_reason(&dropped), "waited too long in the queue");
        assert!(
            render_update(None, &dropped)
                .ends_with("dropped            waited too long in the queue")
        );
    }

    #[test]
    fn intent_json_has_a_stable_shape() {
        let json =
            serde_json::to_value(intent_json(&ended(Status::Confirmed, true))).expect("json");
        assert_eq!(json["name"], format!("transactionIntents/{ID}"));
        assert_eq!(json["status"], "confirmed");
        assert_eq!(json["user_op_hash"], HASH);
        assert_eq!(
            json["interactions"][0]["function"],
            "mint(address,uint256,uint256)"
        );
        assert_eq!(json["interactions"][0]["args"][2], "2");
        assert_eq!(json["interactions"][0]["value_wei"], "0");
        assert_eq!(json["interactions"][0]["calldata"], serde_json::Value::Null);
        assert_eq!(json["submission"]["relayer_nonce"], 7);
        assert_eq!(json["submission"]["max_fee_per_gas"], "1500000000");
        assert_eq!(json["result"]["block_number"], 42);
        assert_eq!(json["result"]["actual_cost_wei"], "84000000000000");
        assert_eq!(json["result"]["revert"], serde_json::Value::Null);
        let statuses: Vec<&str> = json["history"]
            .as_array()
            .expect("history")
            .iter()
            .map(|transition| transition["status"].as_str().expect("status"))
            .collect();
        assert_eq!(statuses, ["queued", "submitted", "confirmed"]);
        assert_eq!(json["history"][2]["time"], "1970-01-01T00:00:13Z");
        assert_eq!(json["sponsorship"], serde_json::Value::Null);
        assert_eq!(json["idempotency_key"], serde_json::Value::Null);
    }

    #[test]
    fn an_intent_reads_name_first_and_a_list_as_a_table() {
        let mut intent = ended(Status::Confirmed, true);
        intent
            .submission
            .as_mut()
            .expect("sent")
            .replaced_transaction_hashes = vec![TX2.to_owned()];
        let text = render_intent(&intent);
        assert!(
            text.starts_with(&format!("transactionIntents/{ID}\n")),
            "{text}"
        );
        assert!(
            text.contains(
                "  0  0x5FbDB2315678afecb367f032d93F642f64180aa3 \
                 mint(address,uint256,uint256) [0xabc, 1, 2]\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(&format!("  replaced         {TX2}\n")),
            "{text}"
        );
        assert!(
            text.contains("  max fee          1500000000 wei/gas (1.5 gwei)\n"),
            "{text}"
        );
        assert!(text.contains("  block            42 ("), "{text}");
        assert!(
            text.contains("  1970-01-01T00:00:11Z      submitted\n"),
            "{text}"
        );
        let list = render_list(&[intent, queued()]);
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(
            lines[0],
            format!(
                "{:<32}{:<32}STATUS     USEROPHASH     TX             BLOCK  UPDATED",
                "ID", "SESSION"
            )
        );
        assert_eq!(
            lines[1],
            format!(
                "{ID}  {SESSION}  confirmed  0x111111…1111  0x222222…2222  42     1970-01-01T00:00:13Z"
            )
        );
        assert_eq!(
            lines[2],
            format!(
                "{ID}  {SESSION}  queued     0x111111…1111  -              -      1970-01-01T00:00:10Z"
            )
        );
    }

    #[test]
    fn fees_read_in_gwei_too() {
        assert_eq!(fee_text("1000000000"), "1000000000 wei/gas (1 gwei)");
        assert_eq!(
            fee_text("991771997"),
            "991771997 wei/gas (0.991771997 gwei)"
        );
        assert_eq!(fee_text("7"), "7 wei/gas");
    }
}
