//! cloudpickle's own reductions, consulted where pickle consults
//! `reducer_override`: the place where functions and classes that cannot be
//! imported on the loading side are turned into by-value reductions.
//!
//! This version pickles every function and class by reference (as `pickle`
//! does); by-value reductions are added here, one module per family.

use pyo3::ffi;
use pyo3::prelude::*;

/// The reduction cloudpickle uses for `obj`, or `None` to let the regular
/// pickle rules apply.
///
/// # Safety
/// `obj` must be alive and the GIL held.
#[inline(always)]
pub unsafe fn reducer_override<'py>(
    _py: Python<'py>,
    _obj: *mut ffi::PyObject,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(None)
}
