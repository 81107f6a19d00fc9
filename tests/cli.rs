//! Tests of `list` and `snapshot`.
