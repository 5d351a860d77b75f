//! The load generator (`latchkey bench`) runs end to end on a small load and reports every
//! measure, so the tool behind docs/BENCHMARKS.md cannot rot. It runs sponsored, so it also
//! checks under load that a policy records exactly what the paymaster paid.

use std::time::Duration;

#[tokio::test]
async fn the_load_generator_runs_and_reports_what_it_measured() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args([
            "bench",
            "--accounts",
            "2",
            "--intents",
            "20",
            "--concurrency",
            "4",
            "--sponsored",
            "--json",
        ])
        .env("RUST_LOG", "warn")
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("the bench finished within two minutes")
        .expect("the bench ran");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
    assert_eq!(report["confirmed"], 20, "{report}");
    assert!(report["ops_per_sec"].as_f64().expect("ops/s") > 0.0);
    assert!(report["gas_per_op"].as_f64().expect("gas per op") > 20_000.0);
    let bundles = report["bundles"].as_u64().expect("bundles");
    let blocks = report["blocks"].as_u64().expect("blocks");
    assert!(bundles >= 1);
    assert!(
        (1..=bundles).contains(&blocks),
        "every block counted carried a bundle: {report}"
    );
    assert!(report["ops_per_block_median"].as_f64().expect("median") >= 1.0);
    assert!(report["daemon_rss_mib"].as_f64().expect("rss") > 1.0);
    // Sponsored: the paymaster paid, and the policy recorded exactly what it paid.
    let paid = report["paymaster_paid_wei"].as_str().expect("paid");
    assert_ne!(paid, "0", "{report}");
    assert_eq!(
        report["policy_recorded_wei"].as_str(),
        Some(paid),
        "{report}"
    );
}
