//! The by-value decision: whether a function or class can be found again
//! by importing its module on the loading side (by reference), or must
//! travel with its code (by value). Same rule as cloudpickle's
//! `_should_pickle_by_reference`, kept in this one place.

use pyo3::exceptions::PyAttributeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::cache::ObjectCache;
use crate::lookup::{deep_getattr, dotted_path, imported_module};

/// Whether `module_name` or one of its parent packages is registered for
/// pickling by value.
pub fn is_registered(py: Python<'_>, module_name: &str) -> PyResult<bool> {
    let Some(bridge) = crate::bridge::installed() else {
        return Ok(false);
    };
    let registry = bridge.by_value_registry.bind(py);
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

/// Modules found for objects without `__module__`, by object: scanning
/// every imported module is slow, so the answer is remembered and only
/// re-checked (one lookup) on later calls.
static WHICHMODULE: ObjectCache<Py<PyString>> = ObjectCache::new(1024);

/// The module holding `obj` under `name`, for an object without
/// `__module__` (the reference's `_whichmodule`), or None.
fn whichmodule<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyString>>> {
    let py = obj.py();
    if let Some(module_name) = remembered_module(obj, name)? {
        return Ok(Some(module_name));
    }
    let found = crate::bridge::bridge(py)?
        .whichmodule
        .bind(py)
        .call1((obj, name))?;
    if found.is_none() {
        return Ok(None);
    }
    let found = found.cast_into::<PyString>()?;
    remember_module(obj, &found);
    Ok(Some(found))
}

/// The module remembered for `obj` (found by scanning `sys.modules`
/// earlier), if it still holds `obj` under `name`.
pub fn remembered_module<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyString>>> {
    // SAFETY: clearing the lookup error (set by `deep_getattr`), which only
    // means "not there".
    unsafe {
        let py = obj.py();
        let cached = WHICHMODULE.get(obj.as_ptr(), |module_name| module_name.bind(py).clone());
        let Some(module_name) = cached else {
            return Ok(None);
        };
        let Some(module) = imported_module(py, &module_name) else {
            return Ok(None);
        };
        let path = dotted_path(name)?;
        match deep_getattr(&module, &path) {
            Ok((found, _)) if found.is(obj) => Ok(Some(module_name)),
            _ => {
                // SAFETY: clearing a lookup error, which only means "no".
                ffi::PyErr_Clear();
                Ok(None)
            }
        }
    }
}

/// Remembers that `module_name` holds `obj` (see `remembered_module`).
pub fn remember_module(obj: &Bound<'_, PyAny>, module_name: &Bound<'_, PyString>) {
    WHICHMODULE.insert(obj, module_name.clone().unbind());
}

/// Whether no module is registered for pickling by value.
pub fn registry_is_empty(py: Python<'_>) -> bool {
    crate::bridge::installed().is_none_or(|b| b.by_value_registry.bind(py).is_empty())
}

/// Whether the function or class `obj` is pickled by reference.
pub fn should_pickle_by_reference(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = obj.py();
    if let Some(located) = crate::lookup::known_function(obj) {
        return Ok(!is_registered(py, &located.module_name.to_cow()?)?);
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
        _ => match whichmodule(obj, &name)? {
            Some(found) => found.into_any(),
            None => return Ok(false),
        },
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
    let found = match deep_getattr(&module, &path) {
        Ok((found, _)) => found,
        Err(e) if e.is_instance_of::<PyAttributeError>(py) => return Ok(false),
        Err(e) => return Err(e),
    };
    if !found.is(obj) {
        return Ok(false);
    }
    if crate::bridge::installed().is_none_or(|b| b.by_value_registry.bind(py).is_empty()) {
        return Ok(true);
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
