//! Tests of `camstream serve` (being written).
