//! Row → record mapping shared by the backends. Both store the same columns with the same types
//! (TEXT, BIGINT/INTEGER, BLOB/BYTEA), so the mapping is written once as a macro that each
//! backend expands over its own row type; the SQL itself stays per backend.

use tessera_core::model::GrantType;
use tessera_core::store::StoreError;

pub(crate) fn bad_row(what: &str) -> StoreError {
    StoreError::Other(format!("a stored {what} is malformed"))
}

/// The query that lists audit events newest first: a condition for each filter that is set and
/// none for one that is not, so that an unfiltered page walks the primary key down from
/// `before` and stops at `limit`, and an equality can use its column's index. (One statement
/// with `(? IS NULL OR column = ?)` for every filter made SQLite read every row in time order
/// and sort them all for each page: 1.6 s on 1.6M events.)
/// `select` is `SELECT *` (or, in a test, `EXPLAIN QUERY PLAN SELECT *`).
pub(crate) fn audit_listing<DB>(
    select: &str,
    q: &tessera_core::audit::AuditQuery,
) -> sqlx::QueryBuilder<DB>
where
    DB: sqlx::Database,
    DB::Arguments: Default,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut sql = sqlx::QueryBuilder::new(format!(
        "{select} FROM audit_events WHERE event <> '{}' AND id < ",
        crate::batch::MARKER
    ));
    sql.push_bind(q.before.unwrap_or(i64::MAX));
    if let Some(since) = q.since {
        sql.push(" AND at >= ").push_bind(since);
    }
    if let Some(until) = q.until {
        sql.push(" AND at < ").push_bind(until);
    }
    for (column, value) in [
        ("partner_id", &q.partner_id),
        ("username", &q.username),
        ("client_id", &q.client_id),
        ("event", &q.event),
    ] {
        if let Some(value) = value {
            sql.push(format_args!(" AND {column} = "))
                .push_bind(value.clone());
        }
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(q.limit));
    sql
}

/// The text a client's grant type is stored as: its [`GrantType::name`], but RFC 8693's URN for
/// the token exchange, because release 0.1.0 stored that and reads nothing else, and a rolling
/// upgrade runs both releases on one database. Reading takes either form
/// ([`GrantType::parse`]), so the release after the last 0.1.0 node may write the name.
pub(crate) fn stored_grant_type(g: GrantType) -> &'static str {
    match g {
        GrantType::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
        other => other.name(),
    }
}

/// The union of two space-separated scope lists, canonical (sorted, deduplicated).
pub(crate) fn union_scope(a: &str, b: &str) -> String {
    let mut set: Vec<&str> = a
        .split(' ')
        .chain(b.split(' '))
        .filter(|s| !s.is_empty())
        .collect();
    set.sort_unstable();
    set.dedup();
    set.join(" ")
}

/// Defines `partner_of`, `account_of`, `client_of`, `user_of`, `refresh_of`, `grant_of`,
/// `request_of`, `session_of`, `code_of`, `key_of`, `audit_of` (and helpers) for a backend's row type. The expanding module provides
/// `err(sqlx::Error) -> StoreError` and imports the model types.
macro_rules! row_mappers {
    ($row:ty) => {
        fn digest_of(row: &$row, col: &str) -> StoreResult<SecretDigest> {
            let bytes: Vec<u8> = row.try_get(col).map_err(err)?;
            bytes
                .try_into()
                .map(SecretDigest)
                .map_err(|_| bad_row("digest"))
        }

        fn partner_of(row: &$row) -> StoreResult<Partner> {
            let status: String = row.try_get("status").map_err(err)?;
            let scopes: String = row.try_get("scopes").map_err(err)?;
            Ok(Partner {
                id: row.try_get("id").map_err(err)?,
                name: row.try_get("name").map_err(err)?,
                email: row.try_get("email").map_err(err)?,
                org_code: row.try_get("org_code").map_err(err)?,
                status: PartnerStatus::from_str(&status).map_err(|_| bad_row("partner status"))?,
                scopes: ScopeSet::parse(&scopes).map_err(|_| bad_row("scope list"))?,
                password_hash: PasswordHash(row.try_get("password_hash").map_err(err)?),
                created_at: row.try_get("created_at").map_err(err)?,
            })
        }

        fn account_of(row: &$row) -> StoreResult<Account> {
            Ok(Account {
                id: row.try_get("id").map_err(err)?,
                partner_id: row.try_get("partner_id").map_err(err)?,
                name: row.try_get("name").map_err(err)?,
                external_id: row.try_get("external_id").map_err(err)?,
                created_at: row.try_get("created_at").map_err(err)?,
            })
        }

        fn json_list(row: &$row, col: &str) -> StoreResult<Vec<String>> {
            let text: String = row.try_get(col).map_err(err)?;
            serde_json::from_str(&text).map_err(|_| bad_row(col))
        }

        fn client_of(row: &$row) -> StoreResult<Client> {
            let scopes: String = row.try_get("scopes").map_err(err)?;
            let grant_types = json_list(row, "grant_types")?
                .iter()
                .map(|g| GrantType::parse(g).ok_or_else(|| bad_row("grant type")))
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(Client {
                id: row.try_get("id").map_err(err)?,
                partner_id: row.try_get("partner_id").map_err(err)?,
                name: row.try_get("name").map_err(err)?,
                secret_digest: digest_of(row, "secret_digest")?,
                grant_types,
                scopes: ScopeSet::parse(&scopes).map_err(|_| bad_row("scope list"))?,
                redirect_uris: json_list(row, "redirect_uris")?,
                frame_origins: json_list(row, "frame_origins")?,
                dev: row.try_get::<i64, _>("dev").map_err(err)? != 0,
                pkce_plain: row.try_get::<i64, _>("pkce_plain").map_err(err)? != 0,
                require_par: row.try_get::<i64, _>("require_par").map_err(err)? != 0,
                allow_registration: row.try_get::<i64, _>("allow_registration").map_err(err)? != 0,
                previous_secret: match row
                    .try_get::<Option<Vec<u8>>, _>("previous_secret_digest")
                    .map_err(err)?
                {
                    Some(bytes) => Some((
                        SecretDigest(bytes.try_into().map_err(|_| bad_row("digest"))?),
                        row.try_get::<Option<i64>, _>("previous_secret_until")
                            .map_err(err)?
                            .unwrap_or(0),
                    )),
                    None => None,
                },
                disabled: row.try_get::<i64, _>("disabled").map_err(err)? != 0,
                created_at: row.try_get("created_at").map_err(err)?,
            })
        }

        fn user_of(row: &$row) -> StoreResult<User> {
            let role: String = row.try_get("role").map_err(err)?;
            Ok(User {
                id: row.try_get("id").map_err(err)?,
                partner_id: row.try_get("partner_id").map_err(err)?,
                account_id: row.try_get("account_id").map_err(err)?,
                username: row.try_get("username").map_err(err)?,
                role: Role::from_str(&role).map_err(|_| bad_row("role"))?,
                password_hash: PasswordHash(row.try_get("password_hash").map_err(err)?),
                first_name: row.try_get("first_name").map_err(err)?,
                last_name: row.try_get("last_name").map_err(err)?,
                external_id: row.try_get("external_id").map_err(err)?,
                signed_up_by: row.try_get("signed_up_by").map_err(err)?,
                created_at: row.try_get("created_at").map_err(err)?,
            })
        }

        fn refresh_of(row: &$row) -> StoreResult<RefreshToken> {
            Ok(RefreshToken {
                digest: digest_of(row, "digest")?,
                family_id: row.try_get("family_id").map_err(err)?,
                partner_id: row.try_get("partner_id").map_err(err)?,
                client_id: row.try_get("client_id").map_err(err)?,
                subject: row.try_get("subject").map_err(err)?,
                account_id: row.try_get("account_id").map_err(err)?,
                scope: row.try_get("scope").map_err(err)?,
                issued_at: row.try_get("issued_at").map_err(err)?,
                expires_at: row.try_get("expires_at").map_err(err)?,
                family_issued_at: row.try_get("family_issued_at").map_err(err)?,
                rotated_at: row.try_get("rotated_at").map_err(err)?,
                revoked_at: row.try_get("revoked_at").map_err(err)?,
                grant_id: row.try_get("grant_id").map_err(err)?,
                actor: match row.try_get::<Option<String>, _>("actor").map_err(err)? {
                    Some(json) => Some(serde_json::from_str(&json).map_err(|_| bad_row("actor"))?),
                    None => None,
                },
            })
        }

        fn grant_of(row: &$row) -> StoreResult<Grant> {
            Ok(Grant {
                id: row.try_get("id").map_err(err)?,
                user_id: row.try_get("user_id").map_err(err)?,
                client_id: row.try_get("client_id").map_err(err)?,
                scope: row.try_get("scope").map_err(err)?,
                created_at: row.try_get("created_at").map_err(err)?,
                revoked_at: row.try_get("revoked_at").map_err(err)?,
            })
        }

        fn batch_of(row: &$row) -> StoreResult<crate::batch::Batch> {
            Ok(crate::batch::Batch {
                id: row.try_get("id").map_err(err)?,
                first_id: row.try_get("first_id").map_err(err)?,
                min_at: row.try_get("min_at").map_err(err)?,
                max_at: row.try_get("max_at").map_err(err)?,
                count: row.try_get("count").map_err(err)?,
                records: row.try_get("records").map_err(err)?,
            })
        }

        fn audit_of(row: &$row) -> StoreResult<AuditEvent> {
            let detail: String = row.try_get("detail").map_err(err)?;
            Ok(AuditEvent {
                id: row.try_get("id").map_err(err)?,
                at: row.try_get("at").map_err(err)?,
                event: row.try_get("event").map_err(err)?,
                partner_id: row.try_get("partner_id").map_err(err)?,
                username: row.try_get("username").map_err(err)?,
                client_id: row.try_get("client_id").map_err(err)?,
                ip: row.try_get("ip").map_err(err)?,
                request_id: row.try_get("request_id").map_err(err)?,
                detail: serde_json::from_str(&detail).map_err(|_| bad_row("audit detail"))?,
            })
        }

        fn admin_token_of(r: &$row) -> StoreResult<AdminToken> {
            let scopes: String = r.try_get("scopes").map_err(err)?;
            Ok(AdminToken {
                id: r.try_get("id").map_err(err)?,
                name: r.try_get("name").map_err(err)?,
                digest: digest_of(r, "digest")?,
                scopes: scopes
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(|s| AdminScope::parse(s).ok_or_else(|| bad_row("admin token scope")))
                    .collect::<StoreResult<_>>()?,
                created_at: r.try_get("created_at").map_err(err)?,
                revoked_at: r.try_get("revoked_at").map_err(err)?,
            })
        }

        fn idempotent_of(r: &$row) -> StoreResult<IdempotentRecord> {
            // Release 0.1.0 kept an answer's HTTP status in a column of its own beside its
            // body, sealed in a format this release does not replay: such a key reads as
            // carried out without an answer (a repeat is a conflict, never a second run). This
            // release writes `status` NULL, so 0.1.0 reads its answers as unanswered: the same.
            let legacy: Option<i64> = r.try_get("status").map_err(err)?;
            let carried_out: bool = r.try_get("carried_out").map_err(err)?;
            let answer: Option<Vec<u8>> = r.try_get("body").map_err(err)?;
            Ok(IdempotentRecord {
                fingerprint: digest_of(r, "fingerprint")?,
                carried_out: carried_out || legacy.is_some(),
                answer: answer.filter(|_| legacy.is_none()),
                reserved_at: r.try_get("created_at").map_err(err)?,
            })
        }

        fn request_of(r: &$row) -> StoreResult<AuthorizationRequest> {
            Ok(AuthorizationRequest {
                id: r.try_get("id").map_err(err)?,
                client_id: r.try_get("client_id").map_err(err)?,
                redirect_uri: r.try_get("redirect_uri").map_err(err)?,
                scope: r.try_get("scope").map_err(err)?,
                state: r.try_get("state").map_err(err)?,
                code_challenge: r.try_get("code_challenge").map_err(err)?,
                code_challenge_method: r.try_get("code_challenge_method").map_err(err)?,
                dialect: r.try_get("dialect").map_err(err)?,
                expires_at: r.try_get("expires_at").map_err(err)?,
                nonce: r.try_get("nonce").map_err(err)?,
                prompt: r.try_get("prompt").map_err(err)?,
                min_auth_time: r.try_get("min_auth_time").map_err(err)?,
                login_sid: r.try_get("login_sid").map_err(err)?,
                subject: r.try_get("subject").map_err(err)?,
            })
        }

        fn session_of(r: &$row) -> StoreResult<Session> {
            Ok(Session {
                digest: digest_of(r, "digest")?,
                user_id: r.try_get("user_id").map_err(err)?,
                expires_at: r.try_get("expires_at").map_err(err)?,
                authenticated_at: r.try_get("authenticated_at").map_err(err)?,
            })
        }

        fn code_of(row: &$row) -> StoreResult<AuthorizationCode> {
            Ok(AuthorizationCode {
                digest: digest_of(row, "digest")?,
                client_id: row.try_get("client_id").map_err(err)?,
                redirect_uri: row.try_get("redirect_uri").map_err(err)?,
                code_challenge: row.try_get("code_challenge").map_err(err)?,
                code_challenge_method: row.try_get("code_challenge_method").map_err(err)?,
                user_id: row.try_get("user_id").map_err(err)?,
                account_id: row.try_get("account_id").map_err(err)?,
                scope: row.try_get("scope").map_err(err)?,
                grant_id: row.try_get("grant_id").map_err(err)?,
                family_id: row.try_get("family_id").map_err(err)?,
                expires_at: row.try_get("expires_at").map_err(err)?,
                used_at: row.try_get("used_at").map_err(err)?,
                nonce: row.try_get("nonce").map_err(err)?,
                auth_time: row.try_get("auth_time").map_err(err)?,
                sid: row.try_get("sid").map_err(err)?,
            })
        }

        fn key_of(row: &$row) -> StoreResult<StoredKey> {
            let alg: String = row.try_get("alg").map_err(err)?;
            let jwk: String = row.try_get("public_jwk").map_err(err)?;
            let purpose: String = row.try_get("purpose").map_err(err)?;
            Ok(StoredKey {
                kid: row.try_get("kid").map_err(err)?,
                alg: Alg::from_str(&alg).map_err(|_| bad_row("key algorithm"))?,
                purpose: KeyUse::parse(&purpose).ok_or_else(|| bad_row("key purpose"))?,
                public_jwk: serde_json::from_str(&jwk).map_err(|_| bad_row("public key"))?,
                private_sealed: row.try_get("private_sealed").map_err(err)?,
                created_at: row.try_get("created_at").map_err(err)?,
                retired_at: row.try_get("retired_at").map_err(err)?,
                activates_at: row.try_get("activates_at").map_err(err)?,
                revoked_at: row.try_get("revoked_at").map_err(err)?,
            })
        }
    };
}

pub(crate) use row_mappers;

/// The record of a rotation's successor: the presented token's family, client, subject, scope
/// and grant, issued at `now`, expiring at the successor's expiry or the family's end.
pub fn successor_of(
    old: &tessera_core::model::RefreshToken,
    s: &tessera_core::store::Successor,
    now: i64,
) -> tessera_core::model::RefreshToken {
    tessera_core::model::RefreshToken {
        digest: s.digest,
        issued_at: now,
        expires_at: s.expires_at.min(old.family_issued_at + s.family_lifetime),
        rotated_at: None,
        revoked_at: None,
        ..old.clone()
    }
}

/// Whether a presented token that did not rotate is a retry after a lost response: rotated at
/// most `retry_grace` seconds ago, not revoked, not expired, its family within its lifetime.
pub fn is_retry(
    record: &tessera_core::model::RefreshToken,
    s: &tessera_core::store::Successor,
    now: i64,
) -> bool {
    record.revoked_at.is_none()
        && record
            .rotated_at
            .is_some_and(|r| now >= r && now - r <= s.retry_grace)
        && record.expires_at > now
        && record.family_issued_at + s.family_lifetime > now
}

#[cfg(test)]
mod tests {
    #[test]
    fn scope_unions_are_canonical() {
        assert_eq!(super::union_scope("crm b", "a crm"), "a b crm");
        assert_eq!(super::union_scope("", "x"), "x");
    }

    /// SQLite's plan for an audit listing: an unfiltered page walks the primary key (no sort of
    /// the table), and a filter on a column uses its index.
    #[tokio::test]
    async fn an_audit_page_reads_no_more_than_its_filters_need() {
        use sqlx::{Connection, Row};
        use tessera_core::audit::AuditQuery;
        let mut c = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::raw_sql(include_str!("../migrations/sqlite/0007_audit.sql"))
            .execute(&mut c)
            .await
            .unwrap();
        let mut plan = async |q: AuditQuery| {
            super::audit_listing::<sqlx::Sqlite>("EXPLAIN QUERY PLAN SELECT *", &q)
                .build()
                .fetch_all(&mut c)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>("detail"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let page = plan(AuditQuery {
            before: Some(1_000),
            limit: 50,
            ..AuditQuery::default()
        })
        .await;
        assert!(
            page.contains("PRIMARY KEY") && !page.contains("TEMP B-TREE"),
            "{page}"
        );
        let partner = plan(AuditQuery {
            partner_id: Some("p1".into()),
            limit: 50,
            ..AuditQuery::default()
        })
        .await;
        assert!(partner.contains("audit_by_partner"), "{partner}");
    }
}
