//! Held session keys at rest: sealed under the master key, so neither the sled directory
//! nor a trace-level log holds any of them, and `latchkey keys rotate-master` moves them
//! all to a new master key, after which the daemon signs with them as before.

use std::{path::Path, time::Duration};

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use latchkey::{
    api::proto::TransactionIntentStatus as S,
    keys::{self, MasterKey},
    store::{SledStore, Store},
};
use serde_json::Value;

use crate::{
    daemon::{ADMIN_TOKEN, DaemonProcess, MASTER_KEY, free_port},
    harness::TestChain,
};

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Runs `latchkey keys rotate-master` on `data_dir` from `old` to `new`; retries while
/// the store's lock is still held by the process that just let go of it.
async fn rotate(data_dir: &Path, old: &str, new: &str) -> (i32, String, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args(["keys", "rotate-master", "--json", "--data-dir"])
            .arg(data_dir)
            .env_remove("LATCHKEY_MASTER_KEY_FILE")
            .env_remove("LATCHKEY_NEW_MASTER_KEY_FILE")
            .env("LATCHKEY_MASTER_KEY", old)
            .env("LATCHKEY_NEW_MASTER_KEY", new)
            .output()
            .await
            .expect("run latchkey");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            !stdout.contains(old) && !stderr.contains(old) && !stdout.contains(new),
            "master keys never show"
        );
        if stderr.contains("could not acquire lock") && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        return (output.status.code().unwrap_or(-1), stdout, stderr);
    }
}

/// The held keys' secrets, opened with `master` as the daemon opens them, checked against
/// the sessions' key addresses.
async fn secrets(data_dir: &Path, master: &MasterKey, expected: &[Address]) -> Vec<[u8; 32]> {
    let store = SledStore::open(data_dir).expect("open the store");
    let held = store.held_keys().await.expect("held keys");
    let mut addresses: Vec<Address> = held.iter().map(|(address, _)| *address).collect();
    let mut expected = expected.to_vec();
    addresses.sort();
    expected.sort();
    assert_eq!(addresses, expected, "one held key per session");
    held.iter()
        .map(|(address, sealed)| {
            assert_eq!(sealed.len(), keys::SEALED_LEN, "sealed, not bare");
            *keys::unseal(master, *address, sealed).expect("opens under the master key")
        })
        .collect()
}

#[tokio::test]
async fn held_keys_are_never_on_disk_or_in_logs_and_rotate_to_a_new_master_key() {
    let chain = TestChain::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("store");
    let log_file = dir.path().join("trace.log");
    let port = free_port();

    // A full flow at trace level: three HELD sessions register, and each signs a mint.
    let mut daemon = DaemonProcess::spawn_with(
        &chain,
        &data_dir,
        port,
        "",
        Some((&log_file, "trace")),
        MASTER_KEY,
    )
    .await;
    let mut sessions = Vec::new();
    for id in 0..3 {
        let session = daemon
            .active_held_session(&chain, &PrivateKeySigner::random(), 10)
            .await;
        let minted = daemon.create_mint(&chain, &session, id).await;
        assert_eq!(
            daemon.wait_final(&minted.name).await.status,
            S::Confirmed as i32
        );
        sessions.push(session);
    }
    let api_key = daemon.api_key.clone();
    let (_, status) = daemon.terminate(Duration::from_secs(30)).await;
    assert!(status.success());
    let key_addresses: Vec<Address> = sessions
        .iter()
        .map(|session| session.key_address.parse().expect("key address"))
        .collect();

    let old = MasterKey::from_hex(MASTER_KEY).expect("master key");
    let held = secrets(&data_dir, &old, &key_addresses).await;

    // Secrets that must never be written: each held key (bytes and hex), the master key,
    // the relayer's key, the API key the flow called with (its secret part, as text and
    // bytes) and the admin token that created it.
    let relayer_key = alloy::hex::encode(chain.chain.relayer.to_bytes());
    let api_secret = api_key.rsplit_once('_').expect("lk_<id>_<secret>").1;
    let mut needles: Vec<Vec<u8>> = vec![
        MASTER_KEY.as_bytes().to_vec(),
        alloy::hex::decode(MASTER_KEY).expect("hex"),
        relayer_key.as_bytes().to_vec(),
        api_secret.as_bytes().to_vec(),
        alloy::hex::decode(api_secret).expect("hex"),
        ADMIN_TOKEN.as_bytes().to_vec(),
    ];
    for secret in &held {
        needles.push(secret.to_vec());
        needles.push(alloy::hex::encode(secret).into_bytes());
        needles.push(alloy::hex::encode_upper(secret).into_bytes());
    }

    // The trace-level log of the whole flow holds none of them.
    let log = std::fs::read(&log_file).expect("the log");
    let trace_records = String::from_utf8_lossy(&log)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|record| record["level"] == "TRACE")
        .count();
    assert!(
        trace_records > 100,
        "the log is at trace level: {trace_records} records"
    );
    for needle in &needles {
        assert!(!contains(&log, needle), "key material in the trace log");
    }

    // No file of the store holds a held key, bare or in hex.
    let store_files = files(&data_dir);
    assert!(!store_files.is_empty());
    for file in &store_files {
        let bytes = std::fs::read(file).expect("read a store file");
        for secret in &held {
            assert!(
                !contains(&bytes, secret)
                    && !contains(&bytes, alloy::hex::encode(secret).as_bytes()),
                "a held key in {}",
                file.display()
            );
        }
    }

    // Rotation: the wrong current key is refused and changes nothing; the right one moves
    // every key; a second run has nothing left to do.
    let new = MasterKey::generate();
    let new_hex = new.to_hex().to_string();
    let wrong = MasterKey::generate().to_hex().to_string();
    let (code, _, stderr) = rotate(&data_dir, &wrong, &new_hex).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&old.id_hex()),
        "names the key they are under: {stderr}"
    );
    assert_eq!(
        secrets(&data_dir, &old, &key_addresses).await,
        held,
        "nothing changed"
    );

    let (code, stdout, stderr) = rotate(&data_dir, MASTER_KEY, &new_hex).await;
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["resealed"], 3);
    assert_eq!(report["already"], 0);
    assert_eq!(report["from"], old.id_hex());
    assert_eq!(report["to"], new.id_hex());
    let (code, stdout, _) = rotate(&data_dir, MASTER_KEY, &new_hex).await;
    assert_eq!(code, 0);
    let again: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(
        (again["resealed"].clone(), again["already"].clone()),
        (0.into(), 3.into())
    );
    assert_eq!(
        secrets(&data_dir, &new, &key_addresses).await,
        held,
        "the same keys"
    );

    // The old master key no longer starts the daemon: it says why, before serving.
    let config_file = data_dir.with_extension("toml");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let refused = loop {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args(["serve", "--config"])
            .arg(&config_file)
            .env("LATCHKEY_MASTER_KEY", MASTER_KEY)
            .env("LATCHKEY_RELAYER_PRIVATE_KEY", format!("0x{relayer_key}"))
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(30), output)
            .await
            .expect("serve with the old master key exits by itself")
            .expect("run latchkey");
        assert!(
            !output.status.success(),
            "a daemon served with the old master key"
        );
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !stderr.contains("could not acquire lock") || std::time::Instant::now() > deadline {
            break stderr;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        refused.contains("sealed under master key") && refused.contains(&new.id_hex()),
        "{refused}"
    );
    assert!(!refused.contains(MASTER_KEY));

    // With the new one, the rotated keys sign as before.
    let mut daemon =
        DaemonProcess::spawn_with(&chain, &data_dir, free_port(), "", None, &new_hex).await;
    let minted = daemon.create_mint(&chain, &sessions[0], 10).await;
    assert_eq!(
        daemon.wait_final(&minted.name).await.status,
        S::Confirmed as i32
    );
    let (_, status) = daemon.terminate(Duration::from_secs(30)).await;
    assert!(status.success());
    // The same keys, under the new master key only.
    assert_eq!(secrets(&data_dir, &new, &key_addresses).await, held);
}
