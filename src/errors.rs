//! Errors: Python exceptions built at the engine's boundary.

use pyo3::exceptions::{PyRecursionError, PySystemError};
use pyo3::ffi;
use pyo3::prelude::*;

use crate::py::cache;

/// The exception CPython set after a C API call returned an error.
pub fn fetch(py: Python<'_>) -> PyErr {
    PyErr::take(py).unwrap_or_else(|| PySystemError::new_err("error return without exception set"))
}

/// A `pickle.PicklingError` with `msg` (a Rust string or a Python object).
pub fn pickling_error<'py>(py: Python<'py>, msg: impl IntoPyObject<'py>) -> PyErr {
    // SAFETY: the cached pointer is a strong reference to the exception
    // class, alive for the life of the process.
    let cls = unsafe { Bound::from_borrowed_ptr(py, cache().pickling_error) };
    match cls.call1((msg,)) {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

/// Turns a RecursionError into the PicklingError cloudpickle raises for
/// graphs too deep to pickle (chained to the original).
pub fn wrap_recursion(py: Python<'_>, err: PyErr) -> PyErr {
    if err.is_instance_of::<PyRecursionError>(py) {
        let new = pickling_error(
            py,
            "Could not pickle object as excessively deep recursion required.",
        );
        new.set_cause(py, Some(err));
        return new;
    }
    err
}

/// Returns an owned reference for a new-reference C API result, or the
/// pending exception if it is null.
///
/// # Safety
/// `ptr` must be a new reference or null, and the GIL held.
#[inline(always)]
pub unsafe fn owned<'py>(py: Python<'py>, ptr: *mut ffi::PyObject) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: `ptr` is a new reference or null, and the GIL is held (contract);
    // the `Bound` takes the reference over.
    unsafe {
        if ptr.is_null() {
            Err(fetch(py))
        } else {
            Ok(Bound::from_owned_ptr(py, ptr))
        }
    }
}

/// `Ok` when the type of `obj` is exactly `tp`; otherwise the TypeError
/// `"{expectation}, not {type name}"` that the engine's functions exposed
/// to Python raise for an argument of the wrong type.
pub fn require_exact_type(
    obj: &Bound<'_, PyAny>,
    tp: *mut ffi::PyTypeObject,
    expectation: &str,
) -> PyResult<()> {
    // SAFETY: GIL held (a Bound); only reads the type of a live object.
    if unsafe { ffi::Py_TYPE(obj.as_ptr()) } == tp {
        return Ok(());
    }
    Err(wrong_type(obj, expectation))
}

/// The TypeError `"{expectation}, not {type name}"`.
pub fn wrong_type(obj: &Bound<'_, PyAny>, expectation: &str) -> PyErr {
    pyo3::exceptions::PyTypeError::new_err(format!("{expectation}, not {}", type_name(obj)))
}

/// The repr of `obj` for error messages, or a placeholder if repr fails.
pub fn repr(obj: &Bound<'_, PyAny>) -> String {
    obj.repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| format!("<{} object>", type_name(obj)))
}

pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}
