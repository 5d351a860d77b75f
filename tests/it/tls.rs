//! TLS on both gRPC servers, and the operator CLI managing API keys over it: a CA and a
//! server certificate for `localhost` are made for the test, the daemon serves with them,
//! a plaintext client gets nowhere, and clients that trust the CA work as usual. The
//! certificate and key are read once, when the configuration is validated.

use std::{
    path::{Path, PathBuf},
    process::Output,
};

use latchkey::{
    api::proto::{self, session_service_client::SessionServiceClient},
    config::Settings,
    daemon::Daemon,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tonic::{
    Code,
    transport::{Certificate, Channel, ClientTlsConfig},
};

use crate::{
    daemon::{ADMIN_TOKEN, authed, test_config},
    harness::TestChain,
};

/// Writes a CA and a server certificate for `localhost` signed by it into `dir`; returns the
/// paths of the CA's certificate, the server's certificate and the server's key.
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "latchkey test CA");
    let ca =
        rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().expect("key"))
            .expect("CA");
    let server_key = rcgen::KeyPair::generate().expect("key");
    let server = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&server_key, &ca)
        .expect("server certificate");
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca.pem()).expect("write");
    std::fs::write(&paths.1, server.pem()).expect("write");
    std::fs::write(&paths.2, server_key.serialize_pem()).expect("write");
    (paths.0, paths.1, paths.2)
}

/// The settings of a test daemon serving TLS with certificates made in `dir`, the CA's
/// certificate, and the server's certificate and key files.
fn tls_settings(chain: &TestChain, dir: &Path) -> (Settings, PathBuf, [PathBuf; 2]) {
    let (ca, cert, key) = make_certificates(dir);
    let mut config = test_config(chain, &dir.join("store"));
    config.tls.cert_file = Some(cert.clone());
    config.tls.key_file = Some(key.clone());
    let settings = config.validate().expect("a valid TLS configuration");
    (settings, ca, [cert, key])
}

async fn tls_channel(port: u16, ca: &Path) -> Channel {
    Channel::from_shared(format!("https://localhost:{port}"))
        .expect("uri")
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(std::fs::read(ca).expect("read CA"))),
        )
        .expect("tls config")
        .connect()
        .await
        .expect("a TLS connection")
}

/// Runs the latchkey binary with `args` and `env`.
async fn latchkey(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command
        .args(args)
        .env_remove("LATCHKEY_CA_CERT")
        .env_remove("LATCHKEY_API_KEY")
        .env_remove("LATCHKEY_ADMIN_TOKEN");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().await.expect("run latchkey")
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

#[tokio::test]
async fn both_servers_speak_tls_and_the_cli_manages_keys_over_it() {
    let chain = TestChain::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (settings, ca, _) = tls_settings(&chain, dir.path());
    let daemon = Daemon::start(settings).await.expect("starts with TLS");
    let port = daemon.local_addr().expect("bound").port();
    let admin_port = daemon.admin_addr().expect("admin served").port();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(daemon.run(shutdown.clone()));

    // Plaintext HTTP/2 gets no answer from either server.
    for port in [port, admin_port] {
        let plain = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("uri")
            .connect()
            .await;
        if let Ok(channel) = plain {
            let status = SessionServiceClient::new(channel)
                .list_sessions(proto::ListSessionsRequest::default())
                .await
                .expect_err("plaintext is refused");
            assert_ne!(status.code(), Code::Ok);
        }
    }

    // The CLI, trusting the CA: create a key, list it, use it, revoke it.
    let admin_endpoint = format!("https://localhost:{admin_port}");
    let endpoint = format!("https://localhost:{port}");
    let ca_text = ca.display().to_string();
    let admin_env = [
        ("LATCHKEY_ADMIN_ENDPOINT", admin_endpoint.as_str()),
        ("LATCHKEY_ADMIN_TOKEN", ADMIN_TOKEN),
        ("LATCHKEY_CA_CERT", ca_text.as_str()),
    ];
    let created = json(
        &latchkey(
            &[
                "api-key",
                "create",
                "--tenant",
                "studio-a",
                "--scope",
                "read,write",
                "--name",
                "game backend",
                "--json",
            ],
            &admin_env,
        )
        .await,
    );
    let secret = created["secret"]
        .as_str()
        .expect("the key, once")
        .to_owned();
    let id = created["id"].as_str().expect("an id").to_owned();
    assert!(secret.starts_with("lk_"), "{created}");
    assert_eq!(created["scopes"], serde_json::json!(["READ", "WRITE"]));
    let text = latchkey(&["api-key", "list"], &admin_env).await;
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains(&id) && text.contains("studio-a") && text.contains("live"),
        "{text}"
    );
    let listed = json(
        &latchkey(
            &["api-key", "list", "--tenant", "studio-a", "--json"],
            &admin_env,
        )
        .await,
    );
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert!(
        listed[0].get("secret").is_none(),
        "a list never shows a key"
    );
    assert!(!listed.to_string().contains(&secret[30..]));

    // The application API over TLS, with the new key: from the CLI and from a client.
    let app_env = [
        ("LATCHKEY_API_KEY", secret.as_str()),
        ("LATCHKEY_CA_CERT", ca_text.as_str()),
    ];
    let policies = json(
        &latchkey(
            &["policy", "list", "--endpoint", &endpoint, "--json"],
            &app_env,
        )
        .await,
    );
    assert_eq!(policies, serde_json::json!([]));
    let untrusted = latchkey(
        &["policy", "list", "--endpoint", &endpoint],
        &[("LATCHKEY_API_KEY", secret.as_str())],
    )
    .await;
    assert_eq!(
        untrusted.status.code(),
        Some(1),
        "the public roots do not know the test CA"
    );
    let mut client = SessionServiceClient::new(authed(tls_channel(port, &ca).await, &secret));
    client
        .list_sessions(proto::ListSessionsRequest::default())
        .await
        .expect("a TLS call with the key");

    let revoked = json(&latchkey(&["api-key", "revoke", &id, "--json"], &admin_env).await);
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let status = client
        .list_sessions(proto::ListSessionsRequest::default())
        .await
        .expect_err("a revoked key");
    assert_eq!(status.code(), Code::Unauthenticated);
    let refused = latchkey(&["policy", "list", "--endpoint", &endpoint], &app_env).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("UNAUTHENTICATED"));

    // Bad input to the CLI: a bad scope is a usage error; a bad tenant is the daemon's
    // INVALID_ARGUMENT, naming the field.
    let bad_scope = latchkey(
        &["api-key", "create", "--tenant", "a", "--scope", "root"],
        &admin_env,
    )
    .await;
    assert_eq!(bad_scope.status.code(), Some(2));
    let bad_tenant = latchkey(
        &[
            "api-key", "create", "--tenant", "Studio A", "--scope", "read",
        ],
        &admin_env,
    )
    .await;
    assert_eq!(bad_tenant.status.code(), Some(1));
    let message = String::from_utf8_lossy(&bad_tenant.stderr);
    assert!(message.contains("INVALID_ARGUMENT: tenant:"), "{message}");

    shutdown.cancel();
    task.await.expect("task").expect("daemon ran");
}

#[tokio::test]
async fn the_tls_files_are_read_once_when_the_configuration_is_validated() {
    let chain = TestChain::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (settings, ca, server_files) = tls_settings(&chain, dir.path());
    // Gone before the daemon starts: it serves the identity validation read, or nothing.
    for file in server_files {
        std::fs::remove_file(&file).expect("remove the server's certificate and key");
    }
    let daemon = Daemon::start(settings)
        .await
        .expect("starts without reading the files again");
    let port = daemon.local_addr().expect("bound").port();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(daemon.run(shutdown.clone()));

    let mut health =
        tonic_health::pb::health_client::HealthClient::new(tls_channel(port, &ca).await);
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "latchkey.v1.SessionService".into(),
        })
        .await
        .expect("a health check over TLS")
        .into_inner();
    assert_eq!(
        answer.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    shutdown.cancel();
    task.await.expect("task").expect("daemon ran");
}
