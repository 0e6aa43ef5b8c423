//! Import parser (being written).
