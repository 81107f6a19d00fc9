//! Integration tests (placeholder until written).
