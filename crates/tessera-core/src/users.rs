//! Buyer sign-up (seed 002, Step 3) and `GET /api/users/me`.
//!
//! Sign-up registers a `customer` user of the app_token's partner and generates its password, the
//! `clientUserToken` (256 bits, stored as SHA-256). Signing up a phone number the partner already
//! has returns the same user id with `preExistingUser: true` and a new `clientUserToken`; the
//! previous one stops working on every node within a second. A customer belongs to the client
//! that signed it up: another client of the same partner signing up that phone number is refused
//! (`phone_number` field error), never handed the customer or a token that replaces its own.

use crate::engine::Engine;
use crate::error::{EngineError, Field, FieldError};
use crate::identity::normalize_username;
use crate::jwt::{Claims, TokenUse};
use crate::model::{PartnerStatus, Role, User};
use crate::password::generated_hash;
use crate::policy::MAX_NAME_LEN;
use crate::secret::{Secret, SecretKind, generate};

pub struct SignUp<'a> {
    pub phone_number: &'a str,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub client_user_id: Option<&'a str>,
}

pub struct SignedUp {
    pub user: User,
    pub pre_existing: bool,
    /// The new `clientUserToken`, shown once.
    pub client_user_token: Secret,
}

/// `+` and 6–15 digits (E.164), after dropping spaces, dashes, dots and parentheses.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let kept: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = kept.strip_prefix('+').unwrap_or(&kept);
    let ok = (6..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(kept)
}

impl Engine {
    /// Verify a bearer token for a resource endpoint and require an app_token.
    pub fn require_app_token(&self, token: &str, now: i64) -> Result<Claims, EngineError> {
        let claims = self.verify_token(token, now)?;
        if claims.token_use != TokenUse::AppToken {
            return Err(EngineError::Forbidden(
                "this endpoint needs an app_token (client_credentials)",
            ));
        }
        Ok(claims)
    }

    #[tracing::instrument(skip_all, name = "sign_up")]
    pub async fn sign_up(
        &self,
        app: &Claims,
        input: SignUp<'_>,
        now: i64,
    ) -> Result<SignedUp, EngineError> {
        let mut errors = Vec::new();
        let phone = normalize_phone(input.phone_number);
        if phone.is_none() {
            errors.push(FieldError::new(
                Field::PhoneNumber,
                "must be a phone number: optional +, then 6 to 15 digits",
            ));
        }
        for (field, value) in [
            (Field::FirstName, input.first_name),
            (Field::LastName, input.last_name),
            (Field::ClientUserId, input.client_user_id),
        ] {
            if value.is_some_and(|v| v.chars().count() > MAX_NAME_LEN) {
                errors.push(FieldError::new(
                    field,
                    format!("must be at most {MAX_NAME_LEN} characters"),
                ));
            }
        }
        let Some(phone) = phone.filter(|_| errors.is_empty()) else {
            return Err(EngineError::Validation(errors));
        };
        let partner_id = app.partner_id.as_deref().ok_or(EngineError::Internal)?;
        let partner = self
            .partner(partner_id)
            .await?
            .filter(|p| p.status == PartnerStatus::Active)
            .ok_or(EngineError::PartnerInactive)?;
        let secret = generate(SecretKind::ClientUserToken);
        let username = normalize_username(&phone);
        let candidate = User {
            id: uuid::Uuid::now_v7().to_string(),
            partner_id: partner.id.clone(),
            account_id: None,
            username: username.clone(),
            role: Role::Customer,
            password_hash: generated_hash(&secret),
            first_name: input.first_name.map(str::to_string),
            last_name: input.last_name.map(str::to_string),
            external_id: input.client_user_id.map(str::to_string),
            signed_up_by: Some(app.client_id.clone()),
            created_at: now,
        };
        let (user, pre_existing) = self.upsert_customer(&candidate).await?;
        if user.role != Role::Customer {
            // The phone belongs to an admin or member user: do not let sign-up take it over.
            return Err(EngineError::field(
                Field::PhoneNumber,
                "is already used by a user who is not a customer",
            ));
        }
        if user.signed_up_by != candidate.signed_up_by {
            // Another client of this partner signed this customer up: it stays that client's.
            return Err(EngineError::field(
                Field::PhoneNumber,
                "is already signed up by another client of this partner: sign it up with that \
                 client, or use another phone number",
            ));
        }
        if pre_existing {
            // A customer signed in elsewhere before this client claimed it keeps nothing there
            // (found by the attack on issue 18's fixes). An owned customer has no such grants.
            self.withdraw_other_clients(&user.id, &app.client_id, now)
                .await?;
        }
        Ok(SignedUp {
            user,
            pre_existing,
            client_user_token: secret,
        })
    }

    /// The token's claims and, for a user's token, the user.
    pub async fn me(&self, token: &str, now: i64) -> Result<(Claims, Option<User>), EngineError> {
        let claims = self.verify_token(token, now)?;
        let user = match claims.token_use {
            TokenUse::UserToken | TokenUse::CustomerToken => self
                .user_by_id(&claims.sub)
                .await?
                .filter(|u| claims.partner_id.as_deref() == Some(u.partner_id.as_str())),
            _ => None,
        };
        Ok((claims, user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_normalised_or_refused() {
        assert_eq!(
            normalize_phone("+966 50-123 4567").as_deref(),
            Some("+966501234567")
        );
        assert_eq!(
            normalize_phone("(050) 123.4567").as_deref(),
            Some("0501234567")
        );
        for bad in [
            "",
            "+",
            "12345",
            "+1234567890123456",
            "phone",
            "+966a501234567",
        ] {
            assert_eq!(normalize_phone(bad), None, "{bad}");
        }
    }
}
