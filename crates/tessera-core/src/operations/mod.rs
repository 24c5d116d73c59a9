//! An operator's operations, written once for the `tessera` CLI and the admin HTTP API: each
//! takes its input as data, validates it and writes through the registry writes (`admin`,
//! private to this module) with its `admin.change` audit event naming who did it
//! ([`Operator`]) in the same store transaction, and returns what the operator is shown. The
//! CLI parses flags into these inputs and prints the outputs; the admin API deserializes them
//! from JSON and serializes the outputs. Reads are [`crate::inventory`].
//!
//! One module per noun (`partners`, `clients`, `users`, `scopes`, `grants`, `keys`,
//! `admin_tokens`), re-exported here; this one holds the [`Operator`] and what they share. The
//! outputs are the admin API's wire types (`tessera_proto::admin`), re-exported; the inputs are
//! typed ([`NewPartner`], [`NewClient`], a [`ScopeSet`]) and parsed once from those wire types
//! (`TryFrom`), by the admin API and the CLI alike.

use serde_json::json;

pub use crate::admin::AdminError;
use crate::admin::{self, Changing, NewUser};
pub use crate::admin::{NewClient, NewPartner};
use crate::keys::{Alg, KeyState, KeyUse};
use crate::master::MasterKey;
use crate::model::{AdminScope, AdminToken, GrantType, PartnerStatus};
use crate::password::Passwords;
use crate::scope::ScopeSet;
use crate::secret::{SecretDigest, SecretKind, generate, new_id};
use crate::store::Store;

/// Who performs an operation, as the audit trail names them: `cli:<login>` or
/// `api:<admin token id>`.
#[derive(Clone, Debug)]
pub struct Operator(pub String);

impl Operator {
    /// The admin API, calling with the admin token `token_id`.
    pub fn api(token_id: &str) -> Operator {
        Operator(format!("api:{token_id}"))
    }
}

/// A scope list as the admin API and the CLI write it (space- or comma-separated), parsed.
fn scopes(list: &str) -> Result<ScopeSet, AdminError> {
    ScopeSet::parse(list).map_err(|e| AdminError::Invalid(e.to_string()))
}

mod admin_tokens;
mod clients;
mod grants;
mod keys;
mod partners;
mod scopes;
mod users;

pub use admin_tokens::*;
pub use clients::*;
pub use grants::*;
pub use keys::*;
pub use partners::*;
pub use scopes::*;
pub use users::*;
