//! Signing keys: list, rotate, revoke.

use super::*;
use crate::keys::generate_key_for;
pub use tessera_proto::admin::{KeyList, KeyRevoked, KeyRotated, KeyView};

pub async fn list_keys(store: &dyn Store, now: i64) -> Result<KeyList, AdminError> {
    let stored = store.list_keys().await?;
    let keys = stored
        .iter()
        .map(|k| KeyView {
            kid: k.kid.clone(),
            alg: k.alg.as_str().into(),
            purpose: k.purpose.as_str().into(),
            state: k.state(&stored, now).as_str().into(),
            created_at: k.created_at,
            activates_at: k.activation(),
            retired_at: k.retired_at,
            revoked_at: k.revoked_at,
        })
        .collect();
    Ok(KeyList { keys })
}

/// Make a new key of `purpose`'s lane active (ID-token keys are always RS256).
pub async fn rotate_keys(
    store: &dyn Store,
    by: &Operator,
    master: &MasterKey,
    purpose: KeyUse,
    alg: Alg,
    now: i64,
) -> Result<KeyRotated, AdminError> {
    let alg = purpose.alg(alg);
    let changing = Changing {
        by,
        change: "keys.rotate",
        now,
    };
    let key = admin::rotate_keys(store, master, purpose, alg, &changing).await?;
    let out = KeyRotated {
        kid: key.kid,
        alg: key.alg.as_str().into(),
        purpose: purpose.as_str().into(),
    };
    Ok(out)
}

/// Revoke a compromised key; when it is its lane's active key, a new key takes over first.
pub async fn revoke_key(
    store: &dyn Store,
    by: &Operator,
    master: &MasterKey,
    kid: &str,
    now: i64,
) -> Result<KeyRevoked, AdminError> {
    let stored = store.list_keys().await?;
    let key = stored
        .iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| AdminError::NotFound(format!("no signing key {kid}")))?;
    if key.revoked_at.is_some() {
        return Err(AdminError::Invalid(format!(
            "signing key {kid} is already revoked"
        )));
    }
    // A revoked active key is replaced in the revocation's own transaction: never left without
    // a successor, and of two revocations racing for it exactly one rotates.
    let replacement = (key.state(&stored, now) == KeyState::Active)
        .then(|| generate_key_for(key.purpose, key.alg, master, now))
        .transpose()?;
    let out = KeyRevoked {
        kid: kid.into(),
        replaced_by: replacement.as_ref().map(|k| k.kid.clone()),
    };
    let mut events = vec![
        Changing {
            by,
            change: "keys.revoke",
            now,
        }
        .event(serde_json::to_value(&out).expect("serializes")),
    ];
    if let Some(k) = &replacement {
        let rotating = Changing {
            by,
            change: "keys.rotate",
            now,
        };
        events
            .push(rotating.event(
                json!({"kid": k.kid, "alg": k.alg.as_str(), "purpose": k.purpose.as_str()}),
            ));
    }
    match store
        .revoke_key(kid, replacement.as_ref(), now, &events)
        .await
    {
        // Revoked meanwhile, by another call: nothing of this one was written.
        Err(crate::store::StoreError::NotFound(_)) => {
            return Err(AdminError::Invalid(format!(
                "signing key {kid} is already revoked"
            )));
        }
        other => other?,
    }
    Ok(out)
}
