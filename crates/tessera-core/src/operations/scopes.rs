//! The scope registry.

use super::*;
pub use tessera_proto::admin::ScopesAdded;

/// Scope names given one by one (the admin API's `names`, the CLI's arguments): each must be
/// one scope.
pub fn scope_names(names: &[String]) -> Result<ScopeSet, AdminError> {
    for name in names {
        let one = scopes(name)?;
        if one.iter().count() != 1 || one.iter().next() != Some(name.as_str()) {
            return Err(AdminError::Invalid(format!(
                "{name:?} is not one scope name: give each scope on its own"
            )));
        }
    }
    Ok(ScopeSet::from_names(names.iter().cloned()))
}

pub async fn add_scopes(
    store: &dyn Store,
    by: &Operator,
    names: &ScopeSet,
    description: Option<&str>,
    now: i64,
) -> Result<ScopesAdded, AdminError> {
    let changing = Changing {
        by,
        change: "scope.add",
        now,
    };
    let added = admin::add_scopes(store, names, description, &changing).await?;
    Ok(ScopesAdded { scopes: added })
}
