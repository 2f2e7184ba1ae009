//! End-to-end tests of the four services live in `tests/e2e/`: one test binary, a module per
//! feature (`cargo test -p e2e --test e2e saga::`).
