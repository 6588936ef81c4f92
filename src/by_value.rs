//! The by-value decision: whether a function or class can be found again
//! by importing its module on the loading side (by reference), or must
//! travel with its code (by value). Same rule as cloudpickle's
//! `_should_pickle_by_reference`, kept in this one place.

use std::sync::OnceLock;

use pyo3::exceptions::PyAttributeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PySet, PyString};

use crate::lookup::{deep_getattr, dotted_path, imported_module};

/// The set of module names registered with `register_pickle_by_value`
/// (owned by the Python package, shared with the engine at import).
pub static REGISTRY: OnceLock<Py<PySet>> = OnceLock::new();

/// Whether `module_name` or one of its parent packages is registered for
/// pickling by value.
pub fn is_registered(py: Python<'_>, module_name: &str) -> PyResult<bool> {
    let Some(registry) = REGISTRY.get() else {
        return Ok(false);
    };
    let registry = registry.bind(py);
    if registry.is_empty() {
        return Ok(false);
    }
    let mut name = module_name;
    loop {
        if registry.contains(name)? {
            return Ok(true);
        }
        match name.rfind('.') {
            Some(i) => name = &name[..i],
            None => return Ok(false),
        }
    }
}

/// Whether the function or class `obj` is pickled by reference.
///
/// # Safety
/// The GIL must be held and `obj` alive.
pub unsafe fn should_pickle_by_reference(
    obj: &Bound<'_, PyAny>,
    before_python: &mut dyn FnMut(),
) -> PyResult<bool> {
    let py = obj.py();
    let native = {
        let tp = ffi::Py_TYPE(obj.as_ptr());
        tp == std::ptr::addr_of_mut!(ffi::PyFunction_Type)
            || tp == std::ptr::addr_of_mut!(ffi::PyType_Type)
    };
    if !native {
        before_python();
    }
    let name = match obj.getattr_opt(pyo3::intern!(py, "__qualname__"))? {
        Some(n) if !n.is_none() => n,
        _ => match obj.getattr_opt(pyo3::intern!(py, "__name__"))? {
            Some(n) if !n.is_none() => n,
            _ => return Ok(false),
        },
    };
    let Ok(name) = name.cast_into::<PyString>() else {
        return Ok(false);
    };
    // A local (nested) object can never be found by attribute lookup.
    if name.to_cow()?.contains("<locals>") {
        return Ok(false);
    }
    let module_name = match obj.getattr_opt(pyo3::intern!(py, "__module__"))? {
        Some(m) if !m.is_none() => m,
        _ => {
            // No __module__: look for the object in every imported module,
            // as the reference's _whichmodule does.
            before_python();
            let found = crate::reduce::helper(py, "_whichmodule")?.call1((obj, &name))?;
            if found.is_none() {
                return Ok(false);
            }
            found
        }
    };
    let Ok(module_name) = module_name.cast_into::<PyString>() else {
        return Ok(false);
    };
    let module_str = module_name.to_cow()?;
    if module_str == "__main__" {
        return Ok(false);
    }
    let Some(module) = imported_module(py, &module_name) else {
        return Ok(false);
    };
    let path = dotted_path(&name)?;
    let found = match deep_getattr(&module, &path, before_python) {
        Ok((found, _)) => found,
        Err(e) if e.is_instance_of::<PyAttributeError>(py) => return Ok(false),
        Err(e) => return Err(e),
    };
    if !found.is(obj) {
        return Ok(false);
    }
    // The registry names modules by their own __name__.
    let registered_name = match module.getattr_opt(pyo3::intern!(py, "__name__"))? {
        Some(n) => n
            .extract::<String>()
            .unwrap_or_else(|_| module_str.to_string()),
        None => module_str.to_string(),
    };
    Ok(!is_registered(py, &registered_name)?)
}
