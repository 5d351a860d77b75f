//! `latchkey keys`: the master key that seals held session keys in the store: making one,
//! and moving every held key to a new one.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use super::Secret;
use crate::{
    config::KeysConfig,
    keys::MasterKey,
    store::{SledStore, rotate_master_key},
};

/// What `latchkey keys` does.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Print a new random master key (64 hex digits) and its id. Keep it as a secret: with
    /// the store, it opens every held session key; without it, none can be opened.
    Generate {
        /// Print JSON: `{"master_key": …, "id": …}`.
        #[arg(long)]
        json: bool,
    },
    /// Reseal every held session key in the store under a new master key, in one atomic
    /// write: if it fails, every key stays under the current one. Run it with the daemon
    /// stopped (the store is locked while the daemon runs), then start the daemon with the
    /// new key. Running it again finishes an interrupted rotation and changes nothing
    /// after a complete one.
    ///
    /// Exit codes: 0 every key is under the new master key; 1 failed, nothing changed (a
    /// key does not open under the current master key, or the store cannot be opened); 2
    /// bad command line.
    RotateMaster {
        /// The store's directory.
        #[arg(long, env = "LATCHKEY_DATA_DIR", value_name = "DIR")]
        data_dir: PathBuf,
        /// The current master key, 64 hex digits.
        #[arg(
            long,
            env = "LATCHKEY_MASTER_KEY",
            hide_env_values = true,
            value_name = "HEX"
        )]
        master_key: Option<Secret>,
        /// A file holding the current master key.
        #[arg(long, env = "LATCHKEY_MASTER_KEY_FILE", value_name = "FILE")]
        master_key_file: Option<PathBuf>,
        /// The new master key, 64 hex digits.
        #[arg(
            long,
            env = "LATCHKEY_NEW_MASTER_KEY",
            hide_env_values = true,
            value_name = "HEX"
        )]
        new_master_key: Option<Secret>,
        /// A file holding the new master key.
        #[arg(long, env = "LATCHKEY_NEW_MASTER_KEY_FILE", value_name = "FILE")]
        new_master_key_file: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What `keys rotate-master` did, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct RotationJson {
    /// Keys moved to the new master key now.
    pub resealed: usize,
    /// Keys that were already under it.
    pub already: usize,
    /// The old master key's id.
    pub from: String,
    /// The new master key's id.
    pub to: String,
}

/// Runs `command`.
pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate { json } => {
            let key = MasterKey::generate();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"master_key": key.to_hex().as_str(), "id": key.id_hex()})
                );
            } else {
                println!("{}", key.to_hex().as_str());
                eprintln!(
                    "master key id {}: keep the key secret and give it to the daemon as \
                     LATCHKEY_MASTER_KEY or in a file named by LATCHKEY_MASTER_KEY_FILE",
                    key.id_hex()
                );
            }
        }
        KeysCommand::RotateMaster {
            data_dir,
            master_key,
            master_key_file,
            new_master_key,
            new_master_key_file,
            json,
        } => {
            let old = master_key_from(master_key, master_key_file)
                .context("the current master key (--master-key or --master-key-file)")?;
            let new = master_key_from(new_master_key, new_master_key_file)
                .context("the new master key (--new-master-key or --new-master-key-file)")?;
            anyhow::ensure!(
                old.id_hex() != new.id_hex(),
                "the new master key is the current one; generate a new one with `latchkey \
                 keys generate`"
            );
            let store = SledStore::open(&data_dir).with_context(|| {
                format!(
                    "opening the store in {} (stop the daemon first: it holds the store's lock)",
                    data_dir.display()
                )
            })?;
            let report = rotate_master_key(&store, &old, &new).await?;
            let rotation = RotationJson {
                resealed: report.resealed,
                already: report.already,
                from: old.id_hex(),
                to: new.id_hex(),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&rotation)?);
            } else {
                println!(
                    "{} held keys resealed from master key {} to {}; {} were already under it",
                    rotation.resealed, rotation.from, rotation.to, rotation.already
                );
                println!("start the daemon with the new master key");
            }
        }
    }
    Ok(())
}

fn master_key_from(text: Option<Secret>, file: Option<PathBuf>) -> anyhow::Result<MasterKey> {
    let keys = KeysConfig {
        master_key: text.map(|text| text.expose().to_owned()),
        master_key_file: file,
    };
    Ok(keys.master_key()?)
}
