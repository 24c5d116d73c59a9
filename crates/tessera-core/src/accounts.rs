//! End-customer accounts owned by partners (`/v2/accounts`).

use crate::engine::Engine;
use crate::error::{EngineError, Field, FieldError};
use crate::model::{Account, Partner};
use crate::policy::{DEFAULT_PAGE_SIZE, MAX_EXTERNAL_ID_LEN, MAX_NAME_LEN, MAX_PAGE_SIZE};
use crate::store::StoreError;

/// A page of accounts and the cursor of the next page, if any.
#[derive(Debug)]
pub struct Page {
    pub accounts: Vec<Account>,
    pub next_cursor: Option<String>,
}

impl Engine {
    /// Create an account owned by `partner`.
    pub async fn create_account(
        &self,
        partner: &Partner,
        name: &str,
        external_id: Option<&str>,
        now: i64,
    ) -> Result<Account, EngineError> {
        let mut errors = Vec::new();
        let name = name.trim();
        if name.is_empty() {
            errors.push(FieldError::new(Field::Name, "must not be empty"));
        } else if name.chars().count() > MAX_NAME_LEN {
            errors.push(FieldError::new(
                Field::Name,
                format!("must be at most {MAX_NAME_LEN} characters"),
            ));
        }
        if let Some(e) = external_id
            && (e.is_empty() || e.chars().count() > MAX_EXTERNAL_ID_LEN)
        {
            errors.push(FieldError::new(
                Field::ExternalId,
                format!("must be 1 to {MAX_EXTERNAL_ID_LEN} characters"),
            ));
        }
        if !errors.is_empty() {
            return Err(EngineError::Validation(errors));
        }
        let account = Account {
            id: uuid::Uuid::now_v7().to_string(),
            partner_id: partner.id.clone(),
            name: name.to_string(),
            external_id: external_id.map(str::to_string),
            created_at: now,
        };
        match self.insert_account(account).await {
            Ok(account) => Ok((*account).clone()),
            Err(StoreError::Conflict(_)) => Err(EngineError::field(
                Field::ExternalId,
                "another account of this partner already has this external_id",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// One of the partner's accounts; another partner's or an unknown id answer the same.
    pub async fn get_account(&self, partner: &Partner, id: &str) -> Result<Account, EngineError> {
        // No account has such an id; PostgreSQL would refuse a NUL in it as a query error.
        if id.len() > 64 || id.contains('\0') {
            return Err(EngineError::NotPartnersResource("account"));
        }
        self.account(id)
            .await?
            .filter(|a| a.partner_id == partner.id)
            .map(|a| (*a).clone())
            .ok_or(EngineError::NotPartnersResource("account"))
    }

    /// A page of the partner's accounts, oldest first.
    pub async fn list_accounts(
        &self,
        partner: &Partner,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page, EngineError> {
        let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(EngineError::field(
                Field::Limit,
                format!("must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        if cursor.is_some_and(|c| c.len() > 64 || c.contains('\0')) {
            return Err(EngineError::field(
                Field::Cursor,
                "is not a cursor this server issued",
            ));
        }
        let mut accounts = self.accounts_page(&partner.id, cursor, limit + 1).await?;
        let next_cursor = if accounts.len() > limit as usize {
            accounts.truncate(limit as usize);
            accounts.last().map(|a| a.id.clone())
        } else {
            None
        };
        Ok(Page {
            accounts,
            next_cursor,
        })
    }
}
