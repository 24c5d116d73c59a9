//! Wire types of Tessera's dialects, shared by the server (which parses and renders them) and the
//! SDK (which sends and reads them). Only data shapes live here: no behaviour, no validation
//! beyond what serde does. [`partner`] is the JSON dialect of seed 000 (`/v2/...`).

pub mod partner;
