//! `latchkey api-key`: the keys game backends and operators call with. Each belongs to a
//! tenant and carries scopes; the full key is printed once, at creation.

use serde::Serialize;

use super::{
    Choice, ClientArgs, admin::AdminClient, enum_name, print_output, rpc_error, status::rfc3339,
    table,
};
use crate::api::proto;

/// What `latchkey api-key` does.
#[derive(Debug, clap::Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key. The full key is printed once: latchkey keeps only a hash of it, so
    /// store it where its holder will read it (a secret manager), not in a shell history.
    Create {
        /// The tenant (studio or project) the key acts for: lowercase letters, digits and
        /// `-`. Its holder sees and touches that tenant's sessions, intents and policies
        /// only.
        #[arg(long)]
        tenant: String,
        /// What it may call: `read` (gets, lists, watches), `write` (creates, signatures,
        /// revocations) or `admin` (the admin service, every tenant). Repeat or separate
        /// with commas.
        #[arg(long = "scope", value_delimiter = ',', required = true)]
        scopes: Vec<Choice<proto::ApiKeyScope>>,
        /// The most a session this key creates may open to its client, the player's
        /// browser calling with stamps of the session key: `read-only` or `read-write`.
        /// Without it, the key's sessions have no client access.
        #[arg(long)]
        client_access: Option<Choice<proto::ClientAccess>>,
        /// A label: who holds the key, and what for.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Every key, oldest first, revoked ones included.
    List {
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a key: from the moment this returns, it lets no call in.
    Revoke {
        /// The key's id (`key_…`) or name (`apiKeys/key_…`); not the key itself.
        key: String,
    },
}

/// A key as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct ApiKeyJson {
    /// `key_…`.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// `READ`, `WRITE`, `ADMIN`.
    pub scopes: Vec<String>,
    /// The most client access its sessions may grant: `NONE`, `READ_ONLY`, `READ_WRITE`.
    pub client_access: String,
    /// The label.
    pub display_name: String,
    /// RFC 3339.
    pub created_at: Option<String>,
    /// RFC 3339; absent while live.
    pub revoked_at: Option<String>,
    /// The full key: only in `create`'s answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<&proto::ApiKey> for ApiKeyJson {
    fn from(key: &proto::ApiKey) -> Self {
        Self {
            id: key.id.clone(),
            tenant: key.tenant.clone(),
            scopes: key
                .scopes
                .iter()
                .map(|&scope| enum_name::<proto::ApiKeyScope>(scope).to_ascii_uppercase())
                .collect(),
            client_access: match proto::ClientAccess::try_from(key.client_access) {
                Ok(proto::ClientAccess::Unspecified) => "NONE".to_owned(),
                _ => enum_name::<proto::ClientAccess>(key.client_access).to_ascii_uppercase(),
            },
            display_name: key.display_name.clone(),
            created_at: key.create_time.as_ref().map(rfc3339),
            revoked_at: key.revoke_time.as_ref().map(rfc3339),
            secret: None,
        }
    }
}

/// Runs `command`, returning the exit code.
pub async fn run(args: ClientArgs, command: ApiKeyCommand) -> anyhow::Result<i32> {
    let mut client = args.connect_admin().await?;
    match command {
        ApiKeyCommand::Create {
            tenant,
            scopes,
            client_access,
            name,
        } => {
            let access =
                client_access.map_or(proto::ClientAccess::Unspecified, |choice| choice.value);
            let created = create(&mut client, tenant, &scopes, access, name).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&created)?);
            } else {
                let secret = created.secret.as_deref().unwrap_or_default();
                println!(
                    "Created {} for tenant {} with {}.",
                    created.id,
                    created.tenant,
                    created.scopes.join(",")
                );
                println!("The key, shown this once (latchkey keeps only a hash of it):");
                println!("{secret}");
            }
        }
        ApiKeyCommand::List { tenant } => {
            let keys = client
                .list_api_keys(proto::ListApiKeysRequest {
                    tenant: tenant.unwrap_or_default(),
                })
                .await
                .map_err(rpc_error)?
                .into_inner()
                .api_keys;
            let keys: Vec<ApiKeyJson> = keys.iter().map(ApiKeyJson::from).collect();
            print_output(args.json, &keys, || render(&keys))?;
        }
        ApiKeyCommand::Revoke { key } => {
            let revoked = client
                .revoke_api_key(proto::RevokeApiKeyRequest { name: key })
                .await
                .map_err(rpc_error)?
                .into_inner();
            let revoked = ApiKeyJson::from(&revoked);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&revoked)?);
            } else {
                println!(
                    "Revoked {} (tenant {}) at {}; it lets no call in.",
                    revoked.id,
                    revoked.tenant,
                    revoked.revoked_at.as_deref().unwrap_or("?")
                );
            }
        }
    }
    Ok(0)
}

async fn create(
    client: &mut AdminClient,
    tenant: String,
    scopes: &[Choice<proto::ApiKeyScope>],
    client_access: proto::ClientAccess,
    display_name: String,
) -> anyhow::Result<ApiKeyJson> {
    let created = client
        .create_api_key(proto::CreateApiKeyRequest {
            tenant,
            scopes: scopes.iter().map(|choice| choice.value.into()).collect(),
            display_name,
            client_access: client_access.into(),
        })
        .await
        .map_err(rpc_error)?
        .into_inner();
    let key = created
        .api_key
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the daemon's answer holds no key"))?;
    Ok(ApiKeyJson {
        secret: Some(created.secret),
        ..ApiKeyJson::from(key)
    })
}

/// The keys as a table; never a secret (lists have none).
pub fn render(keys: &[ApiKeyJson]) -> String {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|key| {
            vec![
                key.id.clone(),
                key.tenant.clone(),
                key.scopes.join(","),
                key.client_access.clone(),
                key.display_name.clone(),
                key.created_at.clone().unwrap_or_default(),
                key.revoked_at
                    .clone()
                    .map_or_else(|| "live".to_owned(), |at| format!("revoked {at}")),
            ]
        })
        .collect();
    table(
        &[
            "ID", "TENANT", "SCOPES", "CLIENTS", "NAME", "CREATED", "STATE",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_each_key_and_whether_it_is_live() {
        let keys = [
            ApiKeyJson {
                id: "key_01".into(),
                tenant: "studio-a".into(),
                scopes: vec!["READ".into(), "WRITE".into()],
                client_access: "READ_WRITE".into(),
                display_name: "backend".into(),
                created_at: Some("2026-11-21T00:00:00Z".into()),
                revoked_at: None,
                secret: None,
            },
            ApiKeyJson {
                id: "key_02".into(),
                tenant: "ops".into(),
                scopes: vec!["ADMIN".into()],
                client_access: "NONE".into(),
                display_name: String::new(),
                created_at: Some("2026-11-21T00:00:00Z".into()),
                revoked_at: Some("2026-11-21T01:00:00Z".into()),
                secret: None,
            },
        ];
        let text = render(&keys);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[1].contains("studio-a")
                && lines[1].contains("READ,WRITE")
                && lines[1].contains("READ_WRITE")
                && lines[1].ends_with("live")
        );
        assert!(lines[2].contains("revoked 2026-11-21T01:00:00Z"), "{text}");
    }

    #[test]
    fn json_carries_the_secret_only_when_there_is_one() {
        let key = proto::ApiKey {
            id: "key_01".into(),
            scopes: vec![1, 3],
            ..Default::default()
        };
        let listed = serde_json::to_value(ApiKeyJson::from(&key)).unwrap();
        assert!(listed.get("secret").is_none());
        assert_eq!(listed["scopes"], serde_json::json!(["READ", "ADMIN"]));
        assert_eq!(listed["client_access"], "NONE");
        let opened = proto::ApiKey {
            client_access: proto::ClientAccess::ReadOnly.into(),
            ..key
        };
        assert_eq!(
            serde_json::to_value(ApiKeyJson::from(&opened)).unwrap()["client_access"],
            "READ_ONLY"
        );
    }
}
