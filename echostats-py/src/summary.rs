//! `ImportSummary` and `FileReport`: frozen, read-only result objects.

use echostats::ingest::{self, FileStatus};
use pyo3::prelude::*;
use std::collections::BTreeMap;

/// What happened to one file of an import.
#[pyclass(frozen, get_all, module = "echostats", name = "FileReport")]
#[derive(Debug, Clone)]
pub struct FileReport {
    /// File name (inside a zip: `archive.zip!path`).
    pub file: String,
    /// `extended_history`, `account_music`, `account_podcast`, or None.
    pub format: Option<String>,
    /// `imported`, `skipped` or `failed`.
    pub status: String,
    /// Why it was skipped, or the error that failed it.
    pub reason: Option<String>,
    /// Entries read.
    pub entries: u64,
    /// New plays stored.
    pub added: u64,
    /// Stored plays replaced by a richer record.
    pub replaced: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Entries that are not plays.
    pub rejected: u64,
}

#[pymethods]
impl FileReport {
    fn __repr__(&self) -> String {
        let reason = self.reason.as_ref().map(|r| format!(", reason={r:?}")).unwrap_or_default();
        format!(
            "FileReport(file={:?}, status={:?}{reason}, entries={}, added={}, replaced={}, duplicates={}, rejected={})",
            self.file, self.status, self.entries, self.added, self.replaced, self.duplicates, self.rejected
        )
    }
}

/// Summary of an import.
#[pyclass(frozen, get_all, module = "echostats", name = "ImportSummary")]
#[derive(Debug, Clone)]
pub struct ImportSummary {
    /// Per file, in order.
    pub files: Vec<FileReport>,
    /// Entries read by kind (`track`, `episode`, ...) in imported files.
    pub entries_by_kind: BTreeMap<String, u64>,
    /// New plays stored.
    pub added: u64,
    /// Stored plays replaced by a richer record.
    pub replaced: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Rejected entries by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Wall time in seconds.
    pub elapsed_s: f64,
}

#[pymethods]
impl ImportSummary {
    /// Entries read in all imported files.
    #[getter]
    fn entries(&self) -> u64 {
        self.entries_by_kind.values().sum()
    }

    /// The files that failed (nothing of them was stored).
    #[getter]
    fn failed(&self) -> Vec<FileReport> {
        self.files.iter().filter(|f| f.status == "failed").cloned().collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "ImportSummary(files={}, entries={}, entries_by_kind={}, added={}, replaced={}, duplicates={}, \
             rejected={}, failed={}, elapsed_s={:.3})",
            self.files.len(),
            self.entries(),
            py_dict(&self.entries_by_kind),
            self.added,
            self.replaced,
            self.duplicates,
            py_dict(&self.rejected),
            self.files.iter().filter(|f| f.status == "failed").count(),
            self.elapsed_s
        )
    }
}

/// `{'a': 1, 'b': 2}`, as Python prints a dict of str to int.
fn py_dict(map: &BTreeMap<String, u64>) -> String {
    let items: Vec<String> =
        map.iter().map(|(k, v)| format!("'{}': {v}", k.replace('\\', "\\\\").replace('\'', "\\'"))).collect();
    format!("{{{}}}", items.join(", "))
}

impl From<ingest::ImportSummary> for ImportSummary {
    fn from(s: ingest::ImportSummary) -> Self {
        ImportSummary {
            files: s
                .files
                .into_iter()
                .map(|f| {
                    let (status, reason) = match f.status {
                        FileStatus::Imported => ("imported", None),
                        FileStatus::Skipped { reason } => ("skipped", Some(reason)),
                        FileStatus::Failed { error } => ("failed", Some(error)),
                    };
                    FileReport {
                        file: f.file,
                        format: f
                            .format
                            .and_then(|fmt| serde_json::to_value(fmt).ok())
                            .and_then(|v| v.as_str().map(String::from)),
                        status: status.into(),
                        reason,
                        entries: f.entries,
                        added: f.outcome.added,
                        replaced: f.outcome.replaced,
                        duplicates: f.outcome.duplicates,
                        rejected: f.rejected_count,
                    }
                })
                .collect(),
            entries_by_kind: s.entries_by_kind.into_iter().map(|(k, n)| (k.as_str().to_string(), n)).collect(),
            added: s.outcome.added,
            replaced: s.outcome.replaced,
            duplicates: s.outcome.duplicates,
            rejected: s.rejected,
            elapsed_s: s.elapsed.as_secs_f64(),
        }
    }
}
