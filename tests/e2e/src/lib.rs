//! End-to-end tests of the four services live in `tests/`.
