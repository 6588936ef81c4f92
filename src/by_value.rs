//! The by-value decision: whether a function or class can be found again
//! by importing its module on the loading side (by reference), or must
//! travel with its code (by value). Same rule as cloudpickle's
//! `_should_pickle_by_reference`, kept in this one place.

use pyo3::exceptions::PyAttributeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

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

/// Whether no module is registered for pickling by value.
pub fn registry_is_empty(py: Python<'_>) -> bool {
    crate::bridge::installed().is_none_or(|b| b.by_value_registry.bind(py).is_empty())
}

/// Whether `obj` is a function or a class (its type is a subclass of
/// `type`: an object lying about its `__class__` is not a class).
pub fn is_function_or_class(obj: &Bound<'_, PyAny>) -> bool {
    // SAFETY: GIL held (a Bound); both checks only read type flags.
    unsafe { ffi::PyFunction_Check(obj.as_ptr()) != 0 || ffi::PyType_Check(obj.as_ptr()) != 0 }
}

/// Whether the function, class or module `obj` is pickled by reference
/// (under `name`, default its qualified name); TypeError for other
/// objects, as cloudpickle's `_should_pickle_by_reference` raises.
pub fn should_pickle_by_reference_any(
    obj: &Bound<'_, PyAny>,
    name: Option<&Bound<'_, PyAny>>,
) -> PyResult<bool> {
    if is_function_or_class(obj) {
        // SAFETY: GIL held (a Bound); `obj` is alive (borrowed).
        return unsafe {
            match name {
                None => should_pickle_by_reference(obj),
                Some(name) => should_pickle_by_reference_named(obj, Some(name)),
            }
        };
    }
    if obj.is_instance_of::<pyo3::types::PyModule>() {
        return module_by_reference(obj);
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "cannot check importability of {} instances",
        obj.get_type().name()?
    )))
}

/// Whether the function or class `obj` is pickled by reference.
///
/// # Safety
/// The GIL must be held and `obj` alive.
pub unsafe fn should_pickle_by_reference(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = obj.py();
    if let Some(located) = crate::lookup::known_function(obj) {
        return Ok(!is_registered(py, &located.module_name.to_cow()?)?);
    }
    // SAFETY: GIL held (caller's contract).
    unsafe { should_pickle_by_reference_named(obj, None) }
}

/// Whether `obj` (a function, class or type variable) is pickled by
/// reference under `name` (default: its qualified name): it can be
/// imported back (`lookup_module_and_qualname`) from a module not
/// registered for pickling by value.
///
/// # Safety
/// The GIL must be held.
#[inline]
pub unsafe fn should_pickle_by_reference_named(
    obj: &Bound<'_, PyAny>,
    name: Option<&Bound<'_, PyAny>>,
) -> PyResult<bool> {
    // SAFETY: GIL held (caller's contract).
    Ok(unsafe { importable_by_reference(obj, name) }?.is_some())
}

/// `(module, name)` when `obj` is pickled by reference under `name` (see
/// `should_pickle_by_reference_named`), None when it goes by value.
///
/// # Safety
/// The GIL must be held.
#[inline]
pub unsafe fn importable_by_reference<'py>(
    obj: &Bound<'py, PyAny>,
    name: Option<&Bound<'py, PyAny>>,
) -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyString>)>> {
    // SAFETY: GIL held (caller's contract).
    let Some((module, name)) = unsafe { lookup_module_and_qualname(obj, name) }? else {
        return Ok(None);
    };
    if registry_is_empty(obj.py()) || !is_registered_module(&module)? {
        return Ok(Some((module, name)));
    }
    Ok(None)
}

/// Whether the module `module` (by its own `__name__`), or a package
/// containing it, is registered for pickling by value.
pub fn is_registered_module(module: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = module.py();
    if registry_is_empty(py) {
        return Ok(false);
    }
    let name = module.getattr(pyo3::intern!(py, "__name__"))?;
    is_registered(py, &name.cast_into::<PyString>()?.to_cow()?)
}

/// Whether the module `module` is pickled by reference (`subimport`): it is
/// in `sys.modules` under its name and not registered for pickling by
/// value. Otherwise it travels with its namespace.
pub fn module_by_reference(module: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = module.py();
    if is_registered_module(module)? {
        return Ok(false);
    }
    let name = module.getattr(pyo3::intern!(py, "__name__"))?;
    // SAFETY: GIL held; the module dict is borrowed from the interpreter,
    // which keeps it alive.
    let modules = unsafe { Bound::from_borrowed_ptr(py, ffi::PyImport_GetModuleDict()) };
    modules.contains(name)
}

/// `(module, name)` under which `obj` can be imported by the loading
/// process, or None (cloudpickle's `_lookup_module_and_qualname`).
///
/// `name` defaults to `obj.__qualname__`, then `obj.__name__`. The module
/// is `obj.__module__`, or the one found by searching `sys.modules`
/// (`which_module`); it must be imported, must not be `__main__`, and
/// must hold `obj` itself under `name`.
///
/// # Safety
/// The GIL must be held.
pub unsafe fn lookup_module_and_qualname<'py>(
    obj: &Bound<'py, PyAny>,
    name: Option<&Bound<'py, PyAny>>,
) -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyString>)>> {
    let py = obj.py();
    // An exact function's `__qualname__` is its field (always a str), read
    // directly on CPython.
    // SAFETY: the field is read only from an exact function, alive (bound).
    let field = unsafe {
        if crate::py_compat::LAYOUT_READS
            && ffi::Py_TYPE(obj.as_ptr()) == std::ptr::addr_of_mut!(ffi::PyFunction_Type)
        {
            crate::py_compat::function_slot(obj.as_ptr(), crate::py_compat::FuncSlot::Qualname)
                .filter(|q| !q.is_null())
                .map(|q| Bound::from_borrowed_ptr(py, q))
        } else {
            None
        }
    };
    let name = match (name, field) {
        (Some(n), _) if !n.is_none() => n.clone(),
        (_, Some(qualname)) => qualname,
        _ => match obj.getattr_opt(pyo3::intern!(py, "__qualname__"))? {
            Some(n) if !n.is_none() => n,
            _ => match obj.getattr_opt(pyo3::intern!(py, "__name__"))? {
                Some(n) if !n.is_none() => n,
                _ => return Ok(None),
            },
        },
    };
    let Ok(name) = name.cast_into::<PyString>() else {
        return Ok(None);
    };
    // A local (nested) object can never be found by attribute lookup.
    if name.to_cow()?.contains("<locals>") {
        return Ok(None);
    }
    // SAFETY: GIL held (caller's contract).
    let Some(module_name) = unsafe { crate::which_module::whichmodule(obj, name.as_any()) }? else {
        return Ok(None);
    };
    let Ok(module_name) = module_name.cast_into::<PyString>() else {
        return Ok(None);
    };
    if module_name.to_cow()? == "__main__" {
        return Ok(None);
    }
    let Some(module) = imported_module(py, &module_name) else {
        return Ok(None);
    };
    let path = dotted_path(&name)?;
    let found = match deep_getattr(&module, &path) {
        Ok((found, _)) => found,
        Err(e) if e.is_instance_of::<PyAttributeError>(py) => return Ok(None),
        Err(e) => return Err(e),
    };
    if !found.is(obj) {
        return Ok(None);
    }
    Ok(Some((module, name)))
}
