//! Generates the gRPC code from `proto/` with a vendored protoc, so building needs no
//! system package, and writes the file descriptor set that gRPC reflection serves.

use std::{env, error::Error, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let proto_root = PathBuf::from("proto");
    let mut protos = Vec::new();
    collect_protos(&proto_root, &mut protos)?;
    protos.sort();

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    let mut builder = tonic_prost_build::configure()
        // Bytes that are no valid message are the caller's error, not the server's.
        .codec_path("crate::api::codec::ApiCodec");
    // The messages the CLI prints with `--json` as they are: serde on the generated type,
    // with the CLI's conventions (wei and gas as decimal strings, `null` for what is not
    // there, times in RFC 3339, statuses by name) given field by field.
    for message in CLI_JSON_MESSAGES {
        builder = builder.type_attribute(
            format!(".latchkey.v1.{message}"),
            "#[derive(::serde::Serialize)]",
        );
    }
    for (field, attribute) in CLI_JSON_FIELDS {
        builder = builder.field_attribute(
            format!(".latchkey.v1.{field}"),
            format!("#[serde({attribute})]"),
        );
    }
    builder
        .file_descriptor_set_path(out_dir.join("latchkey_descriptor.bin"))
        .compile_with_config(config, &protos, std::slice::from_ref(&proto_root))?;

    println!("cargo:rerun-if-changed={}", proto_root.display());
    Ok(())
}

/// The messages `latchkey ... --json` prints as they are.
const CLI_JSON_MESSAGES: &[&str] = &[
    "ArgumentRule",
    "CallPermission",
    "ChainHead",
    "Paymaster",
    "PolicyAmount",
    "PolicyUsage",
    "RelayerStatus",
    "RevertDetails",
    "SessionPermissions",
    "SessionUsage",
    "SpendLimit",
    "SpendLimitUsage",
    "Sponsorship",
    "StatusTransition",
    "TransactionIntentResult",
    "TransactionIntentSubmission",
];

/// How a field of those messages reads in JSON, where it is not the field as it is.
const CLI_JSON_FIELDS: &[(&str, &str)] = &[
    (
        "ArgumentRule.condition",
        r#"serialize_with = "crate::cli::json::argument_condition""#,
    ),
    ("CallPermission.selector", "skip"),
    (
        "ChainHead.block_time",
        r#"serialize_with = "crate::cli::json::time_to_the_second""#,
    ),
    ("PolicyAmount.gas", ZERO),
    ("PolicyAmount.wei", ZERO),
    (
        "PolicyUsage.settled",
        r#"serialize_with = "crate::cli::json::or_default""#,
    ),
    (
        "PolicyUsage.pending",
        r#"serialize_with = "crate::cli::json::or_default""#,
    ),
    ("RelayerStatus.balance_wei", NULL),
    ("RevertDetails.aa_code", NULL),
    (
        "SessionPermissions.value_per_call_limit",
        r#"rename = "value_per_call_limit_wei", serialize_with = "crate::cli::json::zero_if_empty""#,
    ),
    (
        "SessionPermissions.value_budget",
        r#"rename = "value_budget_wei", serialize_with = "crate::cli::json::zero_if_empty""#,
    ),
    (
        "SessionPermissions.gas_budget",
        r#"rename = "gas_budget_wei", serialize_with = "crate::cli::json::zero_if_empty""#,
    ),
    ("SessionUsage.value", r#"rename = "value_wei""#),
    ("SessionUsage.value_left", r#"rename = "value_left_wei""#),
    ("SessionUsage.gas", r#"rename = "gas_wei""#),
    ("SessionUsage.gas_left", r#"rename = "gas_left_wei""#),
    (
        "SpendLimit.asset",
        r#"serialize_with = "crate::cli::json::asset_kind""#,
    ),
    ("SpendLimit.id", NULL),
    ("SpendLimit.token", NULL),
    ("SpendLimit.per_period", NULL),
    ("SpendLimitUsage.period_spent", NULL),
    ("SpendLimitUsage.period_left", NULL),
    ("Sponsorship.valid_until", TIME),
    (
        "StatusTransition.status",
        r#"serialize_with = "crate::cli::json::intent_status""#,
    ),
    ("StatusTransition.time", TIME),
    ("TransactionIntentResult.gas_used", ZERO),
    (
        "TransactionIntentResult.actual_cost",
        r#"rename = "actual_cost_wei", serialize_with = "crate::cli::json::zero_if_empty""#,
    ),
    ("TransactionIntentSubmission.max_fee_per_gas", ZERO),
    ("TransactionIntentSubmission.max_priority_fee_per_gas", ZERO),
];

/// A decimal the daemon leaves empty to mean zero, printed `"0"`.
const ZERO: &str = r#"serialize_with = "crate::cli::json::zero_if_empty""#;
/// Text the daemon leaves empty when there is nothing to say, printed `null`.
const NULL: &str = r#"serialize_with = "crate::cli::json::null_if_empty""#;
/// A timestamp in RFC 3339, as precise as the daemon stored it.
const TIME: &str = r#"serialize_with = "crate::cli::json::time""#;

fn collect_protos(dir: &PathBuf, protos: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect_protos(&path, protos)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            println!("cargo:rerun-if-changed={}", path.display());
            protos.push(path);
        }
    }
    Ok(())
}
