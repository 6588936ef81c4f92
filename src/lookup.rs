//! Finding objects by module and qualified name, as pickle and cloudpickle
//! do to decide that an object can be pickled by reference.
//!
//! Plain module and class attributes are read straight from their dicts so
//! that the common case runs no Python code; `before_python` is called
//! before anything that may run some (a module `__getattr__`, a descriptor,
//! an import).

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

use crate::py::{_PyType_Lookup, cache};

/// `sys.modules[name]` if present and not None.
///
/// # Safety
/// The GIL must be held.
pub unsafe fn imported_module<'py>(
    py: Python<'py>,
    name: &Bound<'py, PyString>,
) -> Option<Bound<'py, PyAny>> {
    let modules = ffi::PyImport_GetModuleDict();
    let m = ffi::PyDict_GetItemWithError(modules, name.as_ptr());
    if m.is_null() {
        ffi::PyErr_Clear();
        return None;
    }
    let m = Bound::from_borrowed_ptr(py, m);
    (!m.is_none()).then_some(m)
}

/// `owner.<name>` when it can be read without running Python code: an
/// entry of a module's dict, or a class attribute that is not a descriptor,
/// on a class whose metaclass is `type`.
///
/// # Safety
/// The GIL must be held.
pub unsafe fn plain_attr<'py>(
    owner: &Bound<'py, PyAny>,
    name: &Bound<'py, PyAny>,
) -> Option<Bound<'py, PyAny>> {
    let py = owner.py();
    let tp = ffi::Py_TYPE(owner.as_ptr());
    if tp == cache().module_type {
        let dict = ffi::PyModule_GetDict(owner.as_ptr());
        if dict.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        let v = ffi::PyDict_GetItemWithError(dict, name.as_ptr());
        if v.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        return Some(Bound::from_borrowed_ptr(py, v));
    }
    if tp == std::ptr::addr_of_mut!(ffi::PyType_Type) {
        // A name also defined on `type` itself would win over the class's
        // own attribute: let getattr decide then.
        if !_PyType_Lookup(tp, name.as_ptr()).is_null() {
            return None;
        }
        let v = _PyType_Lookup(owner.as_ptr().cast(), name.as_ptr());
        if v.is_null() || (*ffi::Py_TYPE(v)).tp_descr_get.is_some() {
            return None;
        }
        return Some(Bound::from_borrowed_ptr(py, v));
    }
    None
}

/// Follows the dotted `path` from `module`; returns the object and its
/// parent.
///
/// # Safety
/// The GIL must be held.
pub unsafe fn deep_getattr<'py>(
    module: &Bound<'py, PyAny>,
    path: &Bound<'py, PyList>,
    before_python: &mut dyn FnMut(),
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let mut parent = module.clone();
    let mut current = module.clone();
    for part in path.iter() {
        parent = current;
        current = match plain_attr(&parent, &part) {
            Some(v) => v,
            None => {
                before_python();
                parent.getattr(part.cast::<PyString>()?)?
            }
        };
    }
    Ok((current, parent))
}

/// `name.split(".")`, as pickle splits qualified names.
///
/// # Safety
/// The GIL must be held.
pub unsafe fn dotted_path<'py>(name: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyList>> {
    let py = name.py();
    let dot = pyo3::intern!(py, ".");
    crate::errors::owned(py, ffi::PyUnicode_Split(name.as_ptr(), dot.as_ptr(), -1))?
        .cast_into::<PyList>()
        .map_err(Into::into)
}
