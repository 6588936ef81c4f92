//! Finding objects by module and qualified name, as pickle and cloudpickle
//! do to decide that an object can be pickled by reference.
//!
//! Plain module and class attributes are read straight from their dicts,
//! which is faster than attribute lookup; anything else (a module
//! `__getattr__`, a descriptor, an import) goes through Python.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

use crate::cache::ObjectCache;

use crate::py::{_PyType_Lookup, cache};
use crate::py_compat::{cfunction_fields, function_slot, FuncSlot};

/// `sys.modules[name]` if present and not None.
pub fn imported_module<'py>(
    py: Python<'py>,
    name: &Bound<'py, PyString>,
) -> Option<Bound<'py, PyAny>> {
    // SAFETY: GIL held (`py`). `PyImport_GetModuleDict` returns `sys.modules`,
    // alive for the life of the interpreter, and an entry found there becomes
    // a reference before any other code runs.
    unsafe {
        let modules = ffi::PyImport_GetModuleDict();
        let m = ffi::PyDict_GetItemWithError(modules, name.as_ptr());
        if m.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        let m = Bound::from_borrowed_ptr(py, m);
        (!m.is_none()).then_some(m)
    }
}

/// `owner.<name>` when it can be read without running Python code: an
/// entry of a module's dict, or a class attribute that is not a descriptor,
/// on a class whose metaclass is `type`.
pub fn plain_attr<'py>(
    owner: &Bound<'py, PyAny>,
    name: &Bound<'py, PyAny>,
) -> Option<Bound<'py, PyAny>> {
    // SAFETY: GIL held (`owner` is bound). `owner`'s exact type is checked
    // before its module dict or MRO is read, and a value found there becomes a
    // reference at once.
    unsafe {
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
}

/// Follows the dotted `path` from `module`; returns the object and its
/// parent.
pub fn deep_getattr<'py>(
    module: &Bound<'py, PyAny>,
    path: &Bound<'py, PyList>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let mut parent = module.clone();
    let mut current = module.clone();
    for part in path.iter() {
        parent = current;
        current = match plain_attr(&parent, &part) {
            Some(v) => v,
            None => parent.getattr(part.cast::<PyString>()?)?,
        };
    }
    Ok((current, parent))
}

/// `name.split(".")`, as pickle splits qualified names.
pub fn dotted_path<'py>(name: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyList>> {
    // SAFETY: `PyUnicode_Split` returns a new reference or null with an
    // exception set.
    unsafe {
        let py = name.py();
        let dot = pyo3::intern!(py, ".");
        crate::errors::owned(py, ffi::PyUnicode_Split(name.as_ptr(), dot.as_ptr(), -1))?
            .cast_into::<PyList>()
            .map_err(Into::into)
    }
}

/// Where a function was found by reference: enough to write it as a global
/// without looking it up again.
pub struct Located<'py> {
    pub module_name: Bound<'py, PyString>,
    pub global_name: Bound<'py, PyString>,
    pub path: Bound<'py, PyList>,
    pub module: Bound<'py, PyAny>,
    pub parent: Bound<'py, PyAny>,
}

/// A function found by reference before: the `__qualname__` and
/// `__module__` objects it had then, and where it was.
struct KnownFunction {
    qualname: usize,
    module_attr: usize,
    module_name: Py<PyString>,
    global_name: Py<PyString>,
    path: Py<PyList>,
    module: Py<PyAny>,
    parent: Py<PyAny>,
}

/// Functions pickled by reference (cloudpickle's reconstructors in every
/// by-value payload, typically), by address. An entry is used only after
/// checking, without running Python code, that the function still has the
/// same names and that its module still holds it there.
static KNOWN_FUNCTIONS: ObjectCache<KnownFunction> = ObjectCache::new(1024);

/// The function's `__qualname__` and `__module__` objects, read from its
/// struct.
///
/// # Safety
/// GIL held; `obj` alive. Functions and builtin functions only (None
/// for anything else).
unsafe fn function_names(obj: *mut ffi::PyObject) -> Option<(usize, usize)> {
    // SAFETY: `obj` is alive (contract), and its struct is read only after its
    // exact type was checked; only addresses are taken from it.
    unsafe {
        let tp = ffi::Py_TYPE(obj);
        if tp == std::ptr::addr_of_mut!(ffi::PyFunction_Type) {
            let qualname = function_slot(obj, FuncSlot::Qualname)?;
            let module = function_slot(obj, FuncSlot::Module)?;
            return Some((qualname as usize, module as usize));
        }
        if tp == std::ptr::addr_of_mut!(ffi::PyCFunction_Type) {
            // A builtin function: its name is the C string of its method
            // definition (fixed), its `__module__` the object in `m_module`.
            let (name, module) = cfunction_fields(obj)?;
            return Some((name as usize, module as usize));
        }
        None
    }
}

/// Whether `name` is the very string object that names the module of
/// cloudpickle's reconstructors (their `__module__`).
pub(crate) fn is_reconstructor_module(_py: Python<'_>, name: &Bound<'_, PyString>) -> bool {
    // The bridge holds that string, so its address is not reused.
    crate::bridge::installed().is_some_and(|b| b.published_module.as_ptr() == name.as_ptr())
}

/// Where the function `obj` was found by reference before, if that still
/// holds.
pub fn known_function<'py>(obj: &Bound<'py, PyAny>) -> Option<Located<'py>> {
    // SAFETY: `obj` is alive (bound); `function_names` checks its type itself.
    unsafe {
        let py = obj.py();
        let names = function_names(obj.as_ptr())?;
        let located = KNOWN_FUNCTIONS
            .get(obj.as_ptr(), |known| {
                (names == (known.qualname, known.module_attr)).then(|| Located {
                    module_name: known.module_name.bind(py).clone(),
                    global_name: known.global_name.bind(py).clone(),
                    path: known.path.bind(py).clone(),
                    module: known.module.bind(py).clone(),
                    parent: known.parent.bind(py).clone(),
                })
            })
            .flatten()?;
        // cloudpickle's own reconstructors (named `cloudpickle.cloudpickle.X`
        // in every by-value payload) are not looked up again: they are found
        // where they were as long as the package is not rebuilt under us.
        if is_reconstructor_module(py, &located.module_name) {
            return Some(located);
        }
        // Still imported, and still holding the function at the same place?
        let module = imported_module(py, &located.module_name)?;
        if !module.is(&located.module) {
            return None;
        }
        let mut parent = module.clone();
        let mut current = module;
        for part in located.path.iter() {
            parent = current;
            current = plain_attr(&parent, &part)?;
        }
        (current.is(obj) && parent.is(&located.parent)).then_some(located)
    }
}

/// Remembers where the function `obj` was found (see `known_function`);
/// only for functions whose `__module__` named the module.
pub fn remember_function(obj: &Bound<'_, PyAny>, located: &Located<'_>) {
    // SAFETY: `obj` is alive (bound); `function_names` checks its type itself.
    unsafe {
        let Some((qualname, module_attr)) = function_names(obj.as_ptr()) else {
            return;
        };
        if module_attr == 0 || module_attr != located.module_name.as_ptr() as usize {
            return;
        }
        let entry = KnownFunction {
            qualname,
            module_attr,
            module_name: located.module_name.clone().unbind(),
            global_name: located.global_name.clone().unbind(),
            path: located.path.clone().unbind(),
            module: located.module.clone().unbind(),
            parent: located.parent.clone().unbind(),
        };
        KNOWN_FUNCTIONS.insert(obj, entry);
    }
}
