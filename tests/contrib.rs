//! Tests of contrib/ (being written).
