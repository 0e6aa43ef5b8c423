//! `echostats serve --demo`: a server with data from the first start. The bundled sample
//! export is imported for the demo user unless that user already has history.

use echostats::ingest::{self, ImportOptions, ImportSummary};
use echostats::store::{HistoryQuery, Store};
use echostats::PlayRules;
use std::path::{Path, PathBuf};

/// The user the demo signs in.
pub const DEMO_USER: &str = "demo";

/// The synthetic sample export of this repository (`tests/fixtures/sample_export`).
pub fn bundled_export() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sample_export")
}

/// Imports `export` for `user_id` when the user has no history yet. Returns the import
/// summary, or `None` when there was history already.
pub async fn import_if_empty(
    store: &dyn Store,
    user_id: &str,
    export: &Path,
    rules: &PlayRules,
) -> echostats::Result<Option<ImportSummary>> {
    let probe = HistoryQuery { limit: 1, ..HistoryQuery::default() };
    if store.history(user_id, &probe).await?.total > 0 {
        return Ok(None);
    }
    let opts = ImportOptions { rules: rules.clone(), ..ImportOptions::default() };
    let summary = ingest::import_paths(store, user_id, &[export.to_path_buf()], &opts, None).await?;
    Ok(Some(summary))
}
