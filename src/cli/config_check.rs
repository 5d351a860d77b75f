//! `latchkey config check`: loads the configuration the way `latchkey serve` does, checks
//! every field, then (unless offline) checks what the daemon relies on in the chain, and
//! reports each check, without opening the store or binding a port.

use alloy::providers::Provider;
use serde::Serialize;

use super::print_output;
use crate::{
    config::{Config, ConfigArgs, ConfigError, Settings},
    daemon::connect_chain,
    metrics::wei_to_eth,
};

/// Exit code when the configuration cannot be loaded or a field is invalid.
pub const EXIT_INVALID_CONFIG: i32 = 3;
/// Exit code when the configuration is valid but a check against the chain failed.
pub const EXIT_CHECK_FAILED: i32 = 1;

/// One check and how it went.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, or what is wrong and what to do.
    pub detail: String,
}

/// Every check, in order.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Whether every check passed.
    pub ok: bool,
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    fn push(&mut self, name: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.ok &= ok;
        self.checks.push(Check {
            name: name.into(),
            ok,
            detail: detail.into(),
        });
    }

    /// The report as a table, one check a line.
    pub fn render(&self) -> String {
        let width = self
            .checks
            .iter()
            .map(|check| check.name.len())
            .max()
            .unwrap_or(0);
        self.checks
            .iter()
            .map(|check| {
                let mark = if check.ok { "ok  " } else { "FAIL" };
                format!("{mark}  {:width$}  {}\n", check.name, check.detail)
            })
            .collect()
    }
}

/// What `latchkey config check` checks, and how it prints.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// The configuration, as `latchkey serve` takes it.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Check the configuration only, not the chain.
    #[arg(long)]
    pub offline: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `latchkey config check`, prints the report and exits with its documented code.
pub async fn main(args: CheckArgs) -> anyhow::Result<()> {
    match run(args.config, args.offline).await {
        Ok(report) => {
            print_output(args.json, &report, || report.render())?;
            if !report.ok {
                std::process::exit(EXIT_CHECK_FAILED);
            }
            Ok(())
        }
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(EXIT_INVALID_CONFIG);
        }
    }
}

/// Loads the configuration from `args` (the file, the environment and the flags), and
/// checks it. An invalid configuration is an error; anything found wrong after that is a
/// failed check.
pub async fn run(args: ConfigArgs, offline: bool) -> Result<Report, ConfigError> {
    let loaded = match &args.config {
        Some(path) => format!(
            "{} and LATCHKEY_* variables: every field valid",
            path.display()
        ),
        None => "defaults and LATCHKEY_* variables: every field valid".to_owned(),
    };
    let settings = Config::load(args)?.validate()?;
    let mut report = Report {
        ok: true,
        checks: Vec::new(),
    };
    report.push("configuration", true, loaded);
    report.push(
        "master key",
        true,
        format!(
            "id {}: held session keys are sealed under it",
            settings.master_key.id_hex()
        ),
    );
    report.push(
        "relayers",
        true,
        format!(
            "{}: {}",
            settings.relayers.len(),
            settings
                .relayers
                .iter()
                .map(|signer| signer.address().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let data_dir = &settings.data_dir;
    report.push(
        "data_dir",
        !data_dir.is_file(),
        if data_dir.is_file() {
            format!(
                "{} is a file; the store needs a directory",
                data_dir.display()
            )
        } else if data_dir.is_dir() {
            format!("{} exists", data_dir.display())
        } else {
            format!("{} will be created at start", data_dir.display())
        },
    );
    if offline {
        return Ok(report);
    }
    check_chain(&settings, &mut report).await;
    Ok(report)
}

async fn check_chain(settings: &Settings, report: &mut Report) {
    let rpc_url = &settings.chain.rpc_url;
    let chain = match connect_chain(settings).await {
        Ok(chain) => chain,
        Err(error) => {
            report.push("chain", false, format!("{error} ({rpc_url})"));
            return;
        }
    };
    let deployment = chain.deployment();
    report.push(
        "chain",
        true,
        format!(
            "chain {} at {}; EntryPoint {} and factory {} have code",
            chain.chain_id(),
            rpc_url,
            deployment.entry_point,
            deployment.factory
        ),
    );
    report.push(
        "sponsorship",
        true,
        match &settings.sponsor {
            Some(sponsor) => format!(
                "paymaster {} serves the EntryPoint and accepts approvals from {}",
                sponsor.paymaster,
                sponsor.signer.address()
            ),
            None => "off: no [sponsor] paymaster".to_owned(),
        },
    );
    for signer in &settings.relayers {
        let address = signer.address();
        match chain.provider().get_balance(address).await {
            Ok(balance) if balance.is_zero() => report.push(
                format!("relayer {address}"),
                false,
                "holds no ETH: fund it, or it cannot send bundles",
            ),
            Ok(balance) => report.push(
                format!("relayer {address}"),
                true,
                format!("{:.6} ETH", wei_to_eth(balance)),
            ),
            Err(error) => report.push(format!("relayer {address}"), false, error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_check_fails_the_report_and_reads_as_fail() {
        let mut report = Report {
            ok: true,
            checks: Vec::new(),
        };
        report.push("chain", true, "chain 1");
        assert!(report.ok);
        report.push("relayer 0xabc", false, "holds no ETH");
        assert!(!report.ok);
        let text = report.render();
        assert!(text.contains("ok    chain          chain 1"), "{text}");
        assert!(text.contains("FAIL  relayer 0xabc  holds no ETH"), "{text}");
    }
}
