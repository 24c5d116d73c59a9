//! The scope registry.

use super::*;
pub use tessera_proto::admin::ScopesAdded;

pub async fn add_scopes(
    store: &dyn Store,
    by: &Operator,
    names: &[String],
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
