//! Load-side reconstructors implemented natively: payloads call them by
//! name (`cloudpickle.cloudpickle._make_function`, ...), with the same
//! arguments and behaviour as the Python versions in `_reconstructors.py`
//! (and as the reference cloudpickle's), so the wire format is unchanged.

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::errors::owned;

/// `builtins.__dict__`.
fn builtins_dict(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    py.import(pyo3::intern!(py, "builtins"))?
        .getattr(pyo3::intern!(py, "__dict__"))
}

/// Create the skeleton of a function sent by value:
/// `types.FunctionType(code, globals, name, argdefs, closure)`, with the
/// builtins made explicit in `globals`.
#[pyfunction]
#[pyo3(name = "_make_function")]
pub fn make_function<'py>(
    py: Python<'py>,
    code: &Bound<'py, PyAny>,
    globals: &Bound<'py, PyAny>,
    name: &Bound<'py, PyAny>,
    argdefs: &Bound<'py, PyAny>,
    closure: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    globals.set_item(pyo3::intern!(py, "__builtins__"), builtins_dict(py)?)?;
    // SAFETY: taking the address of the function type object.
    let function_type = unsafe {
        Bound::from_borrowed_ptr(py, std::ptr::addr_of_mut!(ffi::PyFunction_Type).cast())
    };
    function_type.call1((code, globals, name, argdefs, closure))
}

/// Give a function built by `_make_function` its state
/// `(attributes, slotstate)`: attributes into its `__dict__`, the globals it
/// uses into its namespace, the closure values into its cells, and the
/// other slot entries (`__qualname__`, `__defaults__`, ...) as attributes.
#[pyfunction]
#[pyo3(name = "_function_setstate")]
pub fn function_setstate<'py>(obj: &Bound<'py, PyAny>, state: &Bound<'py, PyAny>) -> PyResult<()> {
    let py = obj.py();
    let state = state.cast::<PyTuple>()?;
    if state.len() != 2 {
        return Err(PyTypeError::new_err(
            "function state must be (attributes, slotstate)",
        ));
    }
    let attributes = state.get_item(0)?;
    let slotstate = state.get_item(1)?.cast_into::<PyDict>()?;
    obj.getattr(pyo3::intern!(py, "__dict__"))?
        .call_method1(pyo3::intern!(py, "update"), (attributes,))?;

    let namespace = obj.getattr(pyo3::intern!(py, "__globals__"))?;
    let used_globals = slotstate
        .as_any()
        .get_item(pyo3::intern!(py, "__globals__"))?;
    namespace.call_method1(pyo3::intern!(py, "update"), (used_globals,))?;
    namespace.set_item(pyo3::intern!(py, "__builtins__"), builtins_dict(py)?)?;

    let shipped = slotstate
        .as_any()
        .get_item(pyo3::intern!(py, "__closure__"))?;
    if !shipped.is_none() {
        let own = obj.getattr(pyo3::intern!(py, "__closure__"))?;
        for (own_cell, shipped_cell) in own.try_iter()?.zip(shipped.try_iter()?) {
            let (own_cell, shipped_cell) = (own_cell?, shipped_cell?);
            // SAFETY: both are checked to be cells before the cell API is
            // used; PyCell_Get returns a new reference or null (empty).
            unsafe {
                if ffi::PyCell_Check(own_cell.as_ptr()) == 0
                    || ffi::PyCell_Check(shipped_cell.as_ptr()) == 0
                {
                    return Err(PyTypeError::new_err("closure entries must be cells"));
                }
                let value = ffi::PyCell_Get(shipped_cell.as_ptr());
                if value.is_null() {
                    // An empty cell stays empty.
                    ffi::PyErr_Clear();
                    continue;
                }
                let value = owned(py, value)?;
                if ffi::PyCell_Set(own_cell.as_ptr(), value.as_ptr()) != 0 {
                    return Err(crate::errors::fetch(py));
                }
            }
        }
    }

    for (attr, value) in slotstate.iter() {
        if let Ok(name) = attr.extract::<&str>() {
            if matches!(
                name,
                "__globals__" | "__closure__" | "_cloudpickle_submodules"
            ) {
                continue;
            }
        }
        obj.setattr(attr.cast_into::<pyo3::types::PyString>()?, value)?;
    }
    Ok(())
}
