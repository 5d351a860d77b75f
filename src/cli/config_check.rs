//! `latchkey config check`: loads the configuration the way `latchkey serve` does, checks
//! every field, then (unless offline) checks what the daemon relies on in the chain, and
//! reports each check, without opening the store or binding a port.

use std::path::{Path, PathBuf};

use alloy::providers::Provider;
use serde::Serialize;

use super::print_output;
use crate::{
    config::{Config, ConfigError, Overrides},
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
    /// TOML configuration file (see deploy/latchkey.example.toml).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Check the configuration only, not the chain.
    #[arg(long)]
    pub offline: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `latchkey config check`, prints the report and exits with its documented code.
pub async fn main(args: CheckArgs) -> anyhow::Result<()> {
    match run(args.config.as_deref(), args.offline).await {
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

/// Loads the configuration from `file` and the environment, and checks it. An invalid
/// configuration is an error; anything found wrong after that is a failed check.
pub async fn run(file: Option<&Path>, offline: bool) -> Result<Report, ConfigError> {
    let config = Config::load(file, |name| std::env::var(name).ok(), &Overrides::default())?;
    let mut report = Report {
        ok: true,
        checks: Vec::new(),
    };
    report.push(
        "configuration",
        true,
        match file {
            Some(path) => format!(
                "{} and LATCHKEY_* variables: every field valid",
                path.display()
            ),
            None => "defaults and LATCHKEY_* variables: every field valid".to_owned(),
        },
    );
    let master_key = config.master_key()?;
    report.push(
        "master key",
        true,
        format!(
            "id {}: held session keys are sealed under it",
            master_key.id_hex()
        ),
    );
    let relayers = config.relayer_signers()?;
    report.push(
        "relayers",
        true,
        format!(
            "{}: {}",
            relayers.len(),
            relayers
                .iter()
                .map(|signer| signer.address().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    report.push(
        "data_dir",
        !config.data_dir.is_file(),
        if config.data_dir.is_file() {
            format!(
                "{} is a file; the store needs a directory",
                config.data_dir.display()
            )
        } else if config.data_dir.is_dir() {
            format!("{} exists", config.data_dir.display())
        } else {
            format!("{} will be created at start", config.data_dir.display())
        },
    );
    if offline {
        return Ok(report);
    }
    check_chain(&config, &mut report).await;
    Ok(report)
}

async fn check_chain(config: &Config, report: &mut Report) {
    let (chain, sponsor) = match connect_chain(config).await {
        Ok(connected) => connected,
        Err(error) => {
            report.push(
                "chain",
                false,
                format!("{} ({})", error, config.chain.rpc_url),
            );
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
            config.chain.rpc_url,
            deployment.entry_point,
            deployment.factory
        ),
    );
    report.push(
        "sponsorship",
        true,
        match &sponsor {
            Some(sponsor) => format!(
                "paymaster {} serves the EntryPoint and accepts approvals from {}",
                sponsor.paymaster,
                sponsor.signer.address()
            ),
            None => "off: no [sponsor] paymaster".to_owned(),
        },
    );
    for signer in config.relayer_signers().unwrap_or_default() {
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
