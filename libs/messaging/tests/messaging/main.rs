//! The messaging core against a real PostgreSQL and a nats-server each test starts itself,
//! a module per feature.

mod dead_letters;
mod delivery;
mod majors;
mod migrations;
mod provisioning;
mod relays;
mod retention;
mod rig;
