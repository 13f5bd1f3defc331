//! tests/harness
