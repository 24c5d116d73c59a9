//! Tessera's integration tests: one test binary (each file under `tests/` would link the whole
//! crate again), real servers on port 0, real SQLite files.

mod admin_api;
mod authcode;
mod binding;
mod browser;
mod cli;
mod cluster_limits;
mod crash;
mod deploy;
mod enumeration;
mod errors;
mod flood;
mod flows;
mod histories;
mod input;
mod interop;
mod lockout;
mod logs;
mod metrics;
mod multinode;
mod oidc;
mod par;
mod proxy;
mod refresh;
mod rollout;
mod sdk;
mod seed000;
mod seed002;
mod slow;
mod standard;
mod support;
mod upgrade;
