//! The Python exception hierarchy, defined in this one place, and the mapping of
//! [`echostats::Error`] kinds onto it.
//!
//! ```text
//! EchostatsError(Exception)
//! ├── ImportFailedError          .file, .entry (an export file could not be read)
//! ├── NotFoundError(KeyError)    (user, track, ... does not exist)
//! ├── InvalidInputError(ValueError)  (bad period, time zone, URL, limit, ...)
//! ├── NotSupportedError          (the backend cannot do this, e.g. mongodb:// before it lands)
//! ├── BackendUnavailableError    (database unreachable; try again later)
//! └── BackendError               (the database failed in another way)
//! ```

use echostats::Error;
use pyo3::exceptions::{PyException, PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

pyo3::create_exception!(echostats, EchostatsError, PyException, "Base class of every error raised by echostats.");
pyo3::create_exception!(
    echostats,
    ImportFailedError,
    EchostatsError,
    "An export file could not be read; nothing of it was stored. Attributes: `file` (str) and `entry` \
     (zero-based index of the bad entry in the file's JSON array, or None)."
);
pyo3::create_exception!(echostats, NotSupportedError, EchostatsError, "The backend cannot do this.");
pyo3::create_exception!(
    echostats,
    BackendUnavailableError,
    EchostatsError,
    "The database cannot be reached right now (connection refused, timeout); try again later."
);
pyo3::create_exception!(echostats, BackendError, EchostatsError, "The database failed.");

// `create_exception!` takes one base; these two also derive from a builtin, so they are
// made with `type(name, (EchostatsError, builtin), ns)` once per interpreter.
static NOT_FOUND: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static INVALID_INPUT: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn dual_base<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
    builtin: Bound<'py, PyType>,
    doc: &str,
) -> PyResult<Bound<'py, PyType>> {
    let ty = cell.get_or_try_init(py, || -> PyResult<Py<PyType>> {
        let bases = PyTuple::new(py, [py.get_type::<EchostatsError>(), builtin])?;
        let ns = PyDict::new(py);
        ns.set_item("__module__", "echostats")?;
        ns.set_item("__doc__", doc)?;
        Ok(py.get_type::<PyType>().call1((name, bases, ns))?.cast_into::<PyType>()?.unbind())
    })?;
    Ok(ty.bind(py).clone())
}

/// `NotFoundError(EchostatsError, KeyError)`.
pub fn not_found_error(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
    dual_base(py, &NOT_FOUND, "NotFoundError", py.get_type::<PyKeyError>(), "The thing asked for does not exist.")
}

/// `InvalidInputError(EchostatsError, ValueError)`.
pub fn invalid_input_error(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
    dual_base(
        py,
        &INVALID_INPUT,
        "InvalidInputError",
        py.get_type::<PyValueError>(),
        "A value passed in is not acceptable (period, time zone, URL, limit, ...).",
    )
}

/// Adds the exception classes to the native module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("EchostatsError", py.get_type::<EchostatsError>())?;
    m.add("ImportFailedError", py.get_type::<ImportFailedError>())?;
    m.add("NotFoundError", not_found_error(py)?)?;
    m.add("InvalidInputError", invalid_input_error(py)?)?;
    m.add("NotSupportedError", py.get_type::<NotSupportedError>())?;
    m.add("BackendUnavailableError", py.get_type::<BackendUnavailableError>())?;
    m.add("BackendError", py.get_type::<BackendError>())?;
    Ok(())
}

fn from_type(ty: PyResult<Bound<'_, PyType>>, message: String) -> PyErr {
    match ty {
        Ok(ty) => PyErr::from_type(ty, message),
        Err(e) => e,
    }
}

/// Maps a core error to its Python exception (the message is the error's `Display`).
pub fn to_py(py: Python<'_>, err: Error) -> PyErr {
    let message = err.to_string();
    match err {
        Error::NotFound { .. } => from_type(not_found_error(py), message),
        Error::InvalidInput { .. } => from_type(invalid_input_error(py), message),
        Error::Import { file, entry, .. } => {
            let e = ImportFailedError::new_err(message);
            let value = e.value(py);
            if let Err(set) = value.setattr("file", file).and_then(|_| value.setattr("entry", entry)) {
                return set;
            }
            e
        }
        Error::NotSupported { .. } => NotSupportedError::new_err(message),
        Error::BackendUnavailable { .. } => BackendUnavailableError::new_err(message),
        Error::Backend { .. } => BackendError::new_err(message),
        _ => EchostatsError::new_err(message),
    }
}

/// An [`Error::InvalidInput`] as a Python exception.
pub fn invalid(py: Python<'_>, message: impl Into<String>) -> PyErr {
    to_py(py, Error::invalid(message))
}
