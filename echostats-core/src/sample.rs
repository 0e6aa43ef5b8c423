//! Sample export generator (being written).
