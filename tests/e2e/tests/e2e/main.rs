//! The whole system end to end, one test binary with a module per feature. `common` starts the
//! four services, each against a fresh database, with a nats-server of the test's own, and looks
//! at them through their public HTTP APIs.
//!
//! The tests run in parallel in this one process, each on its own ports, databases and
//! nats-server. What they share is the process's metrics recorder: a test that reads a counter
//! compares it with what it read before, never with an absolute value.
//!
//! One feature: `cargo test -p e2e --test e2e saga::`; one test: its path, such as
//! `cargo test -p e2e --test e2e cluster::a_rolling_upgrade`.

mod admission;
mod bad_input;
mod cluster;
mod common;
mod connections;
mod dashboard;
mod deploy;
mod growth;
mod help;
mod openapi;
mod operations;
mod ops_docs;
mod payment;
mod reconcile;
mod saga;
mod startup;
mod supervision;
mod tracing;
