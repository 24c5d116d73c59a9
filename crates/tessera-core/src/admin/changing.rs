//! The audit event of an administrative change, built where the change is written so that
//! the store appends it in the change's transaction.

use serde_json::Value;

use crate::audit::{AuditEvent, Event};
use crate::operations::Operator;

/// An administrative change being made: who makes it, which change it is, and when.
pub(crate) struct Changing<'a> {
    pub by: &'a Operator,
    pub change: &'static str,
    pub now: i64,
}

impl Changing<'_> {
    /// The change's `admin.change` event, `about` what it names: fields named `partner_id`,
    /// `client_id` and `username` go to the event's own columns, the rest to its detail. It
    /// carries where the call came from (the admin API's request context), as every event does.
    pub fn event(&self, about: Value) -> AuditEvent {
        let mut event = AuditEvent::new(Event::AdminChange, self.now)
            .detail("change", self.change)
            .detail("by", self.by.0.as_str())
            .in_request_context();
        if let Value::Object(fields) = about {
            for (k, v) in fields {
                match k.as_str() {
                    "partner_id" => event.partner_id = v.as_str().map(str::to_string),
                    "client_id" => event.client_id = v.as_str().map(str::to_string),
                    "username" => event.username = v.as_str().map(str::to_string),
                    _ => {
                        event.detail.insert(k, v);
                    }
                }
            }
        }
        event
    }
}
