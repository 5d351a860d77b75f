//! API keys, as the operator manages them.

use tracing::info;

use super::{App, AppError};
use crate::{
    auth::{ApiKey, ApiKeyId, ClientAccess, IssuedKey, Scope, Scopes, TenantId},
    clock::now_ms,
    store::{RecordId, StoreError},
};

/// Longest label of an API key, in characters.
pub const MAX_KEY_NAME_CHARS: usize = 100;

impl App {
    /// Creates a key of `tenant` with `scopes`, whose sessions may grant their clients up to
    /// `client_access`. The answer holds the only copy of the full
    /// key; the store keeps a hash of its secret. Durable before it returns.
    pub async fn create_api_key(
        &self,
        tenant: TenantId,
        scopes: Scopes,
        client_access: ClientAccess,
        display_name: String,
    ) -> Result<IssuedKey, AppError> {
        if scopes.is_empty() {
            return Err(AppError::invalid(
                "scopes",
                "give at least one of READ, WRITE, ADMIN",
            ));
        }
        if display_name.chars().count() > MAX_KEY_NAME_CHARS
            || display_name.chars().any(char::is_control)
        {
            return Err(AppError::invalid(
                "display_name",
                format!("at most {MAX_KEY_NAME_CHARS} characters, none of them control characters"),
            ));
        }
        let issued = crate::auth::issue(tenant, scopes, client_access, display_name, now_ms());
        self.store().create_api_key(&issued.key).await?;
        info!(
            target: "audit",
            api_key = %issued.key.id,
            tenant = %issued.key.tenant,
            scopes = %issued.key.scopes,
            client_access = %issued.key.client_access,
            "API key created"
        );
        Ok(issued)
    }

    /// Every key (of `tenant`, when given), oldest first; revoked ones too, marked.
    pub async fn api_keys(&self, tenant: Option<&TenantId>) -> Result<Vec<ApiKey>, AppError> {
        let mut keys = self.store().api_keys().await?;
        keys.retain(|key| tenant.is_none_or(|tenant| &key.tenant == tenant));
        Ok(keys)
    }

    /// Revokes a key: from the moment this returns, it lets no call in. Revoking a revoked
    /// key changes nothing.
    pub async fn revoke_api_key(&self, id: &ApiKeyId) -> Result<ApiKey, AppError> {
        let key = self
            .store()
            .revoke_api_key(id, now_ms())
            .await
            .map_err(|error| match error {
                StoreError::NotFound {
                    record: RecordId::ApiKey(id),
                } => AppError::not_found("name", id.resource_name()),
                other => other.into(),
            })?;
        info!(target: "audit", api_key = %key.id, tenant = %key.tenant, "API key revoked");
        Ok(key)
    }

    /// Whether anyone can use the admin service: an admin token is configured, or an
    /// unrevoked key has the ADMIN scope.
    pub async fn admin_reachable(&self) -> Result<bool, StoreError> {
        Ok(self.config().admin_token
            || self
                .store()
                .api_keys()
                .await?
                .iter()
                .any(|key| key.revoked_at_ms.is_none() && key.scopes.contains(Scope::Admin)))
    }
}
