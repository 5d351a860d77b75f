//! Accounts: the counterfactual address of an owner and salt, and what the chain (and the
//! caller's own sessions) say of an account.

use alloy::primitives::{Address, U256};

use super::{App, AppError};
use crate::{
    auth::Visibility,
    signer::PublicKey,
    store::{PageRequest, SessionFilter},
};

/// An account as latchkey sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    /// Its address.
    pub address: Address,
    /// Whether it has code.
    pub deployed: bool,
    /// Its owner, when known.
    pub owner: Option<Address>,
    /// Its salt, when latchkey knows the account from a session.
    pub salt: Option<U256>,
}

impl App {
    /// The counterfactual address of the account of (owner, salt).
    pub async fn account_address(
        &self,
        owner: &PublicKey,
        salt: U256,
    ) -> Result<Address, AppError> {
        Ok(self
            .chain()
            .account_address(&owner.to_contract(), salt)
            .await?)
    }

    /// An account: deployed or not, and its owner when known. The chain's facts are public;
    /// the salt comes only from a session `visibility` covers, so one tenant never learns
    /// from latchkey which accounts another has sessions on.
    pub async fn account(
        &self,
        address: Address,
        visibility: &Visibility,
    ) -> Result<AccountView, AppError> {
        if visibility
            .client()
            .is_some_and(|client| client.account != address)
        {
            // A client sees its own session's account alone.
            return Err(AppError::not_found("name", format!("accounts/{address}")));
        }
        let deployed = self.chain().is_deployed(address).await?;
        let known = self
            .store()
            .list_sessions(
                &SessionFilter {
                    tenant: visibility.tenant().cloned(),
                    account: Some(address),
                    status: None,
                },
                &PageRequest {
                    size: 1,
                    token: None,
                },
            )
            .await?
            .items
            .into_iter()
            .next();
        let owner = if deployed {
            Some(self.chain().owner_of(address).await?)
        } else {
            known.as_ref().map(|session| session.owner)
        };
        Ok(AccountView {
            address,
            deployed,
            owner,
            salt: known.map(|session| session.salt),
        })
    }
}
