//! cloudpickle's own reductions, consulted where pickle consults
//! `reducer_override`: functions (and, later, classes) that cannot be
//! imported on the loading side become by-value reductions referencing
//! cloudpickle's reconstructors.

use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::by_value::should_pickle_by_reference;

/// The Python module holding the pickling-side helpers.
static HELPERS: OnceLock<Py<PyModule>> = OnceLock::new();

/// A function of `cloudpickle._reducers`.
pub fn helper<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let module = match HELPERS.get() {
        Some(m) => m.bind(py).clone(),
        None => {
            let m = py.import("cloudpickle._reducers")?;
            let _ = HELPERS.set(m.clone().unbind());
            m
        }
    };
    module.getattr(name)
}

/// What a reduction needs from the pickler it runs in.
pub struct ReduceContext<'a, 'py> {
    /// id(func.__globals__) -> the globals dict shipped for it, so that
    /// functions sharing globals share them after loading.
    pub globals_ref: &'a mut Option<Bound<'py, PyDict>>,
}

/// The reduction cloudpickle uses for `obj`, or `None` to let the regular
/// pickle rules apply (which pickle importable functions and classes by
/// reference).
///
/// # Safety
/// `obj` must be alive and the GIL held.
pub unsafe fn reducer_override<'py>(
    obj: &Bound<'py, PyAny>,
    ctx: ReduceContext<'_, 'py>,
    before_python: &mut dyn FnMut(),
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = obj.py();
    let tp = ffi::Py_TYPE(obj.as_ptr());
    if tp == std::ptr::addr_of_mut!(ffi::PyFunction_Type) {
        if should_pickle_by_reference(obj, before_python)? {
            return Ok(None);
        }
        before_python();
        let globals_ref = match ctx.globals_ref {
            Some(g) => g.clone(),
            None => {
                let g = PyDict::new(py);
                *ctx.globals_ref = Some(g.clone());
                g
            }
        };
        let rv = helper(py, "_dynamic_function_reduce")?.call1((obj, globals_ref))?;
        return Ok(Some(rv));
    }
    Ok(None)
}
