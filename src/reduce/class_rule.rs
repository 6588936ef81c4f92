//! Which of cloudpickle's rules pickles a class: the one decision that
//! `reducer_override` (in the engine) and `_class_reduce` (its Python
//! name) both act on, each in its own terms.

use pyo3::ffi;
use pyo3::prelude::*;

use crate::bridge::bridge;
use crate::by_value::should_pickle_by_reference_any;

/// How the class `obj` is pickled, in the order cloudpickle checks.
pub(crate) enum ClassRule<'py> {
    /// The type of `None`, `...` or `NotImplemented`: `type(value)`, with
    /// the singleton `value` held here.
    Singleton(Bound<'py, PyAny>),
    /// A type that only the `types` module names (code, cell, function...):
    /// `_builtin_type(name)`, with the name held here.
    Builtin(Bound<'py, PyAny>),
    /// Importable on the loading side: pickle saves it as a global.
    ByReference,
    /// Anything else: the class is rebuilt from its namespace.
    ByValue,
}

/// The singleton whose type `obj` is, if `obj` is `NoneType`,
/// `EllipsisType` or `NotImplementedType`.
pub(crate) fn singleton_of_type(obj: *mut ffi::PyObject) -> Option<*mut ffi::PyObject> {
    // SAFETY: only compares addresses with the types of the three
    // singletons, which live as long as the interpreter.
    unsafe {
        [ffi::Py_None(), ffi::Py_Ellipsis(), ffi::Py_NotImplemented()]
            .into_iter()
            .find(|&s| obj == ffi::Py_TYPE(s).cast())
    }
}

/// The rule for the class `obj`.
pub(crate) fn class_rule<'py>(obj: &Bound<'py, PyAny>) -> PyResult<ClassRule<'py>> {
    let py = obj.py();
    if let Some(singleton) = singleton_of_type(obj.as_ptr()) {
        // SAFETY: the singletons are immortal (or held by the interpreter);
        // the new reference is owned by the Bound.
        return Ok(ClassRule::Singleton(unsafe {
            Bound::from_borrowed_ptr(py, singleton)
        }));
    }
    // A dict keyed by types: the lookup runs no Python code.
    if let Some(name) = bridge(py)?.builtin_type_names.bind(py).get_item(obj)? {
        return Ok(ClassRule::Builtin(name));
    }
    // Not a class (`_class_reduce` called from Python on anything): the
    // check raises TypeError, as cloudpickle's does.
    if should_pickle_by_reference_any(obj, None)? {
        return Ok(ClassRule::ByReference);
    }
    Ok(ClassRule::ByValue)
}
