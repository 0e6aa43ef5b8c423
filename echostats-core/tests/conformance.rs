//! The conformance suite against the in-memory reference store.
#![cfg(feature = "conformance")]

use echostats_core::store::{MemoryStore, Store};

async fn memory_store() -> Option<Box<dyn Store>> {
    Some(Box::new(MemoryStore::new()))
}

mod memory {
    echostats_core::conformance_tests!(super::memory_store);
}
