//! `echostats._echostats`: the native module of the `echostats` Python package. The
//! public API is the Python layer in `python/echostats/__init__.py`.

mod errors;
mod store;
mod summary;
mod tables;

use echostats::import::{parse_inputs, ImportLimits, ParseEvent};
use pyo3::prelude::*;
use pyo3_arrow::PyTable;
use std::future::Future;
use std::path::PathBuf;
use std::sync::OnceLock;
use tokio::runtime::Runtime;

/// The one tokio runtime of the process, started on first use.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("echostats")
            .enable_all()
            .build()
            .expect("cannot start the tokio runtime")
    })
}

/// Runs `fut` to completion on the runtime with the GIL released.
pub(crate) fn block_on<F>(py: Python<'_>, fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    py.detach(|| runtime().block_on(fut))
}

/// A one-batch Arrow table.
pub(crate) fn table(batch: arrow_array::RecordBatch) -> PyResult<PyTable> {
    let schema = batch.schema();
    PyTable::try_new(vec![batch], schema)
}

/// Opens a store from a URL (`sqlite://FILE`, `postgres://...`, `memory://`).
#[pyfunction]
fn open(py: Python<'_>, url: String) -> PyResult<store::Store> {
    let inner = block_on(py, async move { echostats::open_store(&url).await }).map_err(|e| errors::to_py(py, e))?;
    Ok(store::Store { inner })
}

/// Parses an export (a .json file, a folder, or the zip) without a store: every record,
/// in file order, as an Arrow table. A file that cannot be read raises.
#[pyfunction]
fn read_export(py: Python<'_>, path: PathBuf) -> PyResult<PyTable> {
    let batch = py
        .detach(move || -> echostats::Result<arrow_array::RecordBatch> {
            let mut records = Vec::new();
            let mut failure = None;
            parse_inputs(&[path], &ImportLimits::default(), 10_000, &mut |ev| match ev {
                ParseEvent::Chunk { records: chunk, .. } => {
                    records.extend(chunk);
                    true
                }
                ParseEvent::FileFailed { error, .. } => {
                    failure = Some(error);
                    false
                }
                _ => true,
            })?;
            if let Some(e) = failure {
                return Err(e);
            }
            tables::plays_batch(records.iter()).map_err(|e| echostats::Error::invalid(e.to_string()))
        })
        .map_err(|e| errors::to_py(py, e))?;
    table(batch)
}

/// mimalloc for the module's Rust allocations, and SQLite's (set when the module loads,
/// before any store opens): reading a history hands every row from SQLite's thread to
/// the decoding one, which the C library's malloc handles badly. `history()` of 984k
/// plays took 5.3-6.2 s instead of 7.1-13.3 s (see `echostats::sqlite_allocator`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[pymodule]
fn _echostats(m: &Bound<'_, PyModule>) -> PyResult<()> {
    echostats::sqlite_allocator::use_mimalloc();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    m.add_class::<store::Store>()?;
    m.add_class::<summary::ImportSummary>()?;
    m.add_class::<summary::FileReport>()?;
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(read_export, m)?)?;
    Ok(())
}
