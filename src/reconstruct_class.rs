//! `_make_skeleton_class` on the load side.
//!
//! Every payload that carries a class by value creates a skeleton class,
//! then hands it to the class tracker, which returns the class already
//! loaded under the same tracker id if there is one (the skeleton is then
//! thrown away, and `_class_setstate` fills the known class). Workers that
//! receive the same class in payload after payload pay for creating a type
//! object each time (most of the cost of loading a class) only to discard
//! it. Here the tracker is asked first: when it knows the class, and
//! creating the skeleton could have had no visible effect (metaclass
//! `type`, bases without `__init_subclass__` hooks, a namespace of plain
//! strings), the known class is returned directly. Everything else goes to
//! the Python implementation (`cloudpickle._reconstructors`), unchanged.

use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

/// The `cloudpickle._reconstructors` module's namespace.
static RECONSTRUCTORS: OnceLock<Py<PyAny>> = OnceLock::new();

fn reconstructors(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    if let Some(m) = RECONSTRUCTORS.get() {
        return Ok(m.bind(py));
    }
    let dict = py
        .import(pyo3::intern!(py, "cloudpickle._reconstructors"))?
        .dict()
        .into_any()
        .unbind();
    Ok(RECONSTRUCTORS.get_or_init(|| dict).bind(py))
}

/// `_make_skeleton_class(type_constructor, name, bases, type_kwargs,
/// class_tracker_id, extra)`: the class known under `class_tracker_id`, or
/// a new skeleton class (see the module docs).
#[pyfunction]
#[pyo3(name = "_make_skeleton_class")]
pub fn make_skeleton_class<'py>(
    py: Python<'py>,
    type_constructor: &Bound<'py, PyAny>,
    name: &Bound<'py, PyAny>,
    bases: &Bound<'py, PyAny>,
    type_kwargs: &Bound<'py, PyAny>,
    class_tracker_id: &Bound<'py, PyAny>,
    extra: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let namespace = reconstructors(py)?;
    if let Some(known) = tracked_class(namespace, class_tracker_id)? {
        if creation_is_invisible(py, type_constructor, bases, type_kwargs) {
            return Ok(known);
        }
    }
    namespace
        .get_item(pyo3::intern!(py, "_make_skeleton_class"))?
        .call1((
            type_constructor,
            name,
            bases,
            type_kwargs,
            class_tracker_id,
            extra,
        ))
}

/// The live class the tracker holds under `tracker_id`, read from the
/// `WeakValueDictionary`'s own dict without running Python code.
fn tracked_class<'py>(
    namespace: &Bound<'py, PyAny>,
    tracker_id: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = namespace.py();
    if !tracker_id.is_exact_instance_of::<pyo3::types::PyString>() {
        return Ok(None);
    }
    let Ok(namespace) = namespace.cast::<PyDict>() else {
        return Ok(None);
    };
    let Some(tracker) = namespace.get_item(pyo3::intern!(py, "_DYNAMIC_CLASS_TRACKER_BY_ID"))?
    else {
        return Ok(None);
    };
    // SAFETY: GIL held; PyObject_GenericGetDict returns a new reference or
    // null (with an exception set, cleared: no dict means no answer).
    let attrs = unsafe { ffi::PyObject_GenericGetDict(tracker.as_ptr(), std::ptr::null_mut()) };
    if attrs.is_null() {
        // SAFETY: clearing the error just raised.
        unsafe { ffi::PyErr_Clear() };
        return Ok(None);
    }
    // SAFETY: a new reference.
    let attrs = unsafe { Bound::from_owned_ptr(py, attrs) };
    let Ok(attrs) = attrs.cast_into::<PyDict>() else {
        return Ok(None);
    };
    let Some(data) = attrs.get_item(pyo3::intern!(py, "data"))? else {
        return Ok(None);
    };
    let Ok(data) = data.cast_into::<PyDict>() else {
        return Ok(None);
    };
    // Keys are strings: the lookup runs no Python code.
    let Some(weak) = data.get_item(tracker_id)? else {
        return Ok(None);
    };
    // SAFETY: GIL held; checking the type of a live object.
    if unsafe { ffi::PyWeakref_CheckRef(weak.as_ptr()) } == 0 {
        return Ok(None);
    }
    // Calling a weak reference returns its referent, or None once dead.
    let known = weak.call0()?;
    Ok((!known.is_none()).then_some(known))
}

/// Whether creating the skeleton with `type(name, bases, namespace)` could
/// have no effect visible outside the new class: metaclass `type`, plain
/// bases that do not override `__init_subclass__`, and a namespace (with
/// `__module__`) of strings and None, which have no `__set_name__`.
fn creation_is_invisible(
    py: Python<'_>,
    type_constructor: &Bound<'_, PyAny>,
    bases: &Bound<'_, PyAny>,
    type_kwargs: &Bound<'_, PyAny>,
) -> bool {
    let type_type: *mut ffi::PyObject = std::ptr::addr_of_mut!(ffi::PyType_Type).cast();
    if type_constructor.as_ptr() != type_type {
        return false;
    }
    let Ok(bases) = bases.cast::<PyTuple>() else {
        return false;
    };
    let hook = pyo3::intern!(py, "__init_subclass__");
    // SAFETY: GIL held; `_PyType_Lookup` reads type dicts along the MRO and
    // returns a borrowed reference (or null), compared by address only.
    let default_hook = unsafe {
        crate::py::_PyType_Lookup(
            std::ptr::addr_of_mut!(ffi::PyBaseObject_Type),
            hook.as_ptr(),
        )
    };
    for base in bases.iter() {
        // SAFETY: as above; `base` is a type when its type is `type`.
        let plain = unsafe {
            ffi::Py_TYPE(base.as_ptr()) == std::ptr::addr_of_mut!(ffi::PyType_Type)
                && crate::py::_PyType_Lookup(base.as_ptr().cast(), hook.as_ptr()) == default_hook
        };
        if !plain {
            return false;
        }
    }
    let Ok(kwargs) = type_kwargs.cast::<PyDict>() else {
        return false;
    };
    let mut has_module = false;
    for (key, value) in kwargs.iter() {
        if !key.is_exact_instance_of::<pyo3::types::PyString>() {
            return false;
        }
        has_module |= key
            .cast::<pyo3::types::PyString>()
            .is_ok_and(|k| k.to_cow().is_ok_and(|k| k == "__module__"));
        if !(value.is_none() || value.is_exact_instance_of::<pyo3::types::PyString>()) {
            return false;
        }
    }
    has_module
}
