//! API keys and tenants, between proto and domain.

use super::timestamp;
use crate::{
    api::proto,
    app::AppError,
    auth::{ApiKey, ApiKeyId, ClientAccess, Scope, Scopes, TenantId},
};

/// Most scopes a request may list (each of the three, once).
const MAX_SCOPES: usize = Scope::ALL.len();

/// A tenant name.
pub fn tenant(field: &str, text: &str) -> Result<TenantId, AppError> {
    TenantId::parse(text).map_err(|reason| AppError::invalid(field, reason))
}

/// A non-empty list of scopes, each named once.
pub fn api_key_scopes(field: &str, values: &[i32]) -> Result<Scopes, AppError> {
    if values.is_empty() {
        return Err(AppError::invalid(
            field,
            "give at least one of API_KEY_SCOPE_READ, API_KEY_SCOPE_WRITE, API_KEY_SCOPE_ADMIN",
        ));
    }
    if values.len() > MAX_SCOPES {
        return Err(AppError::invalid(
            field,
            format!("at most {MAX_SCOPES} scopes, each once"),
        ));
    }
    let mut scopes = Vec::with_capacity(values.len());
    for (index, &value) in values.iter().enumerate() {
        let scope = match proto::ApiKeyScope::try_from(value) {
            Ok(proto::ApiKeyScope::Read) => Scope::Read,
            Ok(proto::ApiKeyScope::Write) => Scope::Write,
            Ok(proto::ApiKeyScope::Admin) => Scope::Admin,
            Ok(proto::ApiKeyScope::Unspecified) | Err(_) => {
                return Err(AppError::invalid(
                    format!("{field}[{index}]"),
                    format!("{value} is not READ (1), WRITE (2) or ADMIN (3)"),
                ));
            }
        };
        if scopes.contains(&scope) {
            return Err(AppError::invalid(
                format!("{field}[{index}]"),
                format!("{scope} is listed twice"),
            ));
        }
        scopes.push(scope);
    }
    Ok(scopes.into_iter().collect())
}

/// A client access; UNSPECIFIED means none.
pub fn client_access(field: &str, value: i32) -> Result<ClientAccess, AppError> {
    match proto::ClientAccess::try_from(value) {
        Ok(proto::ClientAccess::Unspecified) => Ok(ClientAccess::None),
        Ok(proto::ClientAccess::ReadOnly) => Ok(ClientAccess::ReadOnly),
        Ok(proto::ClientAccess::ReadWrite) => Ok(ClientAccess::ReadWrite),
        Err(_) => Err(AppError::invalid(
            field,
            format!(
                "{value} is not CLIENT_ACCESS_UNSPECIFIED (0, none), CLIENT_ACCESS_READ_ONLY (1) \
                 or CLIENT_ACCESS_READ_WRITE (2)"
            ),
        )),
    }
}

/// The proto form of a client access.
pub fn client_access_message(access: ClientAccess) -> proto::ClientAccess {
    match access {
        ClientAccess::None => proto::ClientAccess::Unspecified,
        ClientAccess::ReadOnly => proto::ClientAccess::ReadOnly,
        ClientAccess::ReadWrite => proto::ClientAccess::ReadWrite,
    }
}

/// `apiKeys/{id}`, or the bare id.
pub fn api_key_name(field: &str, name: &str) -> Result<ApiKeyId, AppError> {
    ApiKeyId::parse(name.strip_prefix("apiKeys/").unwrap_or(name))
        .ok_or_else(|| AppError::invalid(field, "expected an API key name `apiKeys/key_...`"))
}

/// The proto form of a scope.
pub fn scope_message(scope: Scope) -> proto::ApiKeyScope {
    match scope {
        Scope::Read => proto::ApiKeyScope::Read,
        Scope::Write => proto::ApiKeyScope::Write,
        Scope::Admin => proto::ApiKeyScope::Admin,
    }
}

/// A stored key as the API shows it: everything but the hash of its secret.
pub fn api_key_message(key: &ApiKey) -> proto::ApiKey {
    proto::ApiKey {
        name: format!("apiKeys/{}", key.id),
        id: key.id.to_string(),
        tenant: key.tenant.to_string(),
        scopes: key
            .scopes
            .iter()
            .map(|scope| scope_message(scope).into())
            .collect(),
        display_name: key.display_name.clone(),
        client_access: client_access_message(key.client_access).into(),
        create_time: timestamp(key.created_at_ms),
        revoke_time: key.revoked_at_ms.and_then(timestamp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_must_be_known_listed_once_and_at_least_one() {
        let scopes = api_key_scopes("scopes", &[1, 2]).unwrap();
        assert_eq!(scopes.to_string(), "READ,WRITE");
        for (values, field, says) in [
            (&[][..], "scopes", "at least one"),
            (&[0][..], "scopes[0]", "not READ"),
            (&[1, 9][..], "scopes[1]", "not READ"),
            (&[2, 2][..], "scopes[1]", "twice"),
            (&[1, 2, 3, 1][..], "scopes", "at most 3"),
        ] {
            let error = api_key_scopes("scopes", values).unwrap_err().to_string();
            assert!(error.starts_with(&format!("{field}: ")), "{error}");
            assert!(error.contains(says), "{error}");
        }
    }

    #[test]
    fn client_access_round_trips_and_unknown_values_are_refused() {
        for access in [
            ClientAccess::None,
            ClientAccess::ReadOnly,
            ClientAccess::ReadWrite,
        ] {
            let value = client_access_message(access) as i32;
            assert_eq!(client_access("client_access", value).unwrap(), access);
        }
        let error = client_access("client_access", 7).unwrap_err().to_string();
        assert!(error.starts_with("client_access: 7 is not"), "{error}");
    }

    #[test]
    fn a_key_is_named_with_or_without_its_collection() {
        let id = ApiKeyId::generate();
        assert_eq!(api_key_name("name", &format!("apiKeys/{id}")).unwrap(), id);
        assert_eq!(api_key_name("name", id.as_str()).unwrap(), id);
        for bad in ["", "apiKeys/", "apiKeys/key_x", "sessions/ses_x", "lk_abc"] {
            assert!(api_key_name("name", bad).is_err(), "{bad}");
        }
    }
}
