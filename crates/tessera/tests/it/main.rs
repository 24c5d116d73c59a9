//! Tessera's integration tests: one test binary (each file under `tests/` would link the whole
//! crate again), real servers on port 0, real SQLite files.

mod cli;
mod errors;
mod input;
mod logs;
mod refresh;
mod seed000;
mod support;
