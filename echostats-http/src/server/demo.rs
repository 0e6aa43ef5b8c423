//! `echostats serve --demo`: a server with data from the first start. A sample export
//! ending at the start is imported for the demo user unless that user already has history.

use chrono::{DateTime, Utc};
use echostats::ingest::{self, ImportOptions, ImportSummary};
use echostats::sample::{generate_export, SampleOptions, SampleSummary};
use echostats::store::{HistoryQuery, Store};
use echostats::PlayRules;
use std::path::Path;

/// The user the demo signs in.
pub const DEMO_USER: &str = "demo";

/// Writes the demo's export into `dir`: the sample of this repository
/// ([`SampleOptions::small`], checked in as `tests/fixtures/sample_export`) but with its
/// history ending at `end`. The periods are rolling, so the checked-in copy, which ends
/// on 2026-11-01, would leave a demo started weeks later with an empty week and month;
/// and a binary installed elsewhere has no source tree to read it from.
pub fn write_sample_export(dir: &Path, end: DateTime<Utc>) -> std::io::Result<SampleSummary> {
    generate_export(dir, &SampleOptions { end, ..SampleOptions::small() })
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
