//! Python objects the engine needs on every call, looked up once when the
//! extension module is initialised: interned attribute names, type objects,
//! pickle's error class and tables.

use std::ffi::CStr;
use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

pub use crate::py_compat::{_PyBytes_Resize, _PyType_Lookup};

/// Strong references kept for the life of the process; raw pointers so the
/// hot path compares and passes them without reference-count traffic.
pub struct Cache {
    pub s_reduce_ex: *mut ffi::PyObject,
    pub s_reduce: *mut ffi::PyObject,
    pub s_getstate: *mut ffi::PyObject,
    pub s_getnewargs_ex: *mut ffi::PyObject,
    pub s_getnewargs: *mut ffi::PyObject,
    pub s_slots: *mut ffi::PyObject,
    pub s_slotnames: *mut ffi::PyObject,
    pub s_class: *mut ffi::PyObject,
    pub s_qualname: *mut ffi::PyObject,
    pub s_name: *mut ffi::PyObject,
    pub s_module: *mut ffi::PyObject,
    pub s_new: *mut ffi::PyObject,
    pub s_main: *mut ffi::PyObject,
    pub s_latin1: *mut ffi::PyObject,

    /// `object.__reduce_ex__`, `object.__reduce__`, `object.__getstate__`
    /// (null before 3.11) and `object.__class__`, as found in `object`'s dict.
    pub object_reduce_ex: *mut ffi::PyObject,
    pub object_reduce: *mut ffi::PyObject,
    pub object_getstate: *mut ffi::PyObject,
    pub object_class: *mut ffi::PyObject,

    pub pickling_error: *mut ffi::PyObject,
    pub copyreg_dispatch_table: *mut ffi::PyObject,
    pub extension_registry: *mut ffi::PyObject,
    pub name_mapping_3to2: *mut ffi::PyObject,
    pub import_mapping_3to2: *mut ffi::PyObject,
    pub codecs_encode: *mut ffi::PyObject,
    pub builtins_getattr: *mut ffi::PyObject,
    pub partial: *mut ffi::PyObject,
    pub empty_tuple: *mut ffi::PyObject,
    pub picklebuffer_type: *mut ffi::PyTypeObject,
    pub module_type: *mut ffi::PyTypeObject,
    /// The running Python's minor version (3.x), for the few places where
    /// pickle's output differs between versions.
    pub py_minor: u8,
}

// SAFETY: every pointer is a strong reference that is never released, to an
// object only used with the GIL held.
unsafe impl Send for Cache {}
// SAFETY: as for `Send`: the pointers never change after initialisation,
// and the objects are only used with the GIL held.
unsafe impl Sync for Cache {}

static CACHE: OnceLock<Cache> = OnceLock::new();

/// The cache. Only callable after module initialisation.
#[inline(always)]
pub fn cache() -> &'static Cache {
    // SAFETY of unwrap_unchecked-like use: module init fills the cache before
    // any function of the module can be called.
    CACHE
        .get()
        .expect("cloudpickle._engine used before initialisation")
}

fn intern(py: Python<'_>, s: &str) -> *mut ffi::PyObject {
    PyString::intern(py, s).into_any().unbind().into_ptr()
}

fn attr(py: Python<'_>, module: &str, name: &str) -> PyResult<*mut ffi::PyObject> {
    Ok(py.import(module)?.getattr(name)?.unbind().into_ptr())
}

/// Looks `name` up on `object` without binding it.
fn object_attr(py: Python<'_>, name: &str) -> *mut ffi::PyObject {
    let name = PyString::intern(py, name);
    // SAFETY: GIL held (`py`); `name` is a str we hold; `_PyType_Lookup`
    // returns a borrowed reference (or null), which we turn into a strong
    // one.
    unsafe {
        let found = _PyType_Lookup(
            std::ptr::addr_of_mut!(ffi::PyBaseObject_Type),
            name.as_ptr(),
        );
        if !found.is_null() {
            ffi::Py_INCREF(found);
        }
        found
    }
}

pub fn init(py: Python<'_>) -> PyResult<()> {
    if CACHE.get().is_some() {
        return Ok(());
    }
    crate::py_compat::init(py)?;
    let s_reduce_ex = intern(py, "__reduce_ex__");
    let s_reduce = intern(py, "__reduce__");
    let s_getstate = intern(py, "__getstate__");
    let s_class = intern(py, "__class__");
    let compat = py.import("_compat_pickle")?;
    let cache = Cache {
        s_reduce_ex,
        s_reduce,
        s_getstate,
        s_getnewargs_ex: intern(py, "__getnewargs_ex__"),
        s_getnewargs: intern(py, "__getnewargs__"),
        s_slots: intern(py, "__slots__"),
        s_slotnames: intern(py, "__slotnames__"),
        s_class,
        s_qualname: intern(py, "__qualname__"),
        s_name: intern(py, "__name__"),
        s_module: intern(py, "__module__"),
        s_new: intern(py, "__new__"),
        s_main: intern(py, "__main__"),
        s_latin1: intern(py, "latin1"),
        object_reduce_ex: object_attr(py, "__reduce_ex__"),
        object_reduce: object_attr(py, "__reduce__"),
        object_getstate: object_attr(py, "__getstate__"),
        object_class: object_attr(py, "__class__"),
        pickling_error: attr(py, "pickle", "PicklingError")?,
        copyreg_dispatch_table: attr(py, "copyreg", "dispatch_table")?,
        extension_registry: attr(py, "copyreg", "_extension_registry")?,
        name_mapping_3to2: compat.getattr("REVERSE_NAME_MAPPING")?.unbind().into_ptr(),
        import_mapping_3to2: compat
            .getattr("REVERSE_IMPORT_MAPPING")?
            .unbind()
            .into_ptr(),
        codecs_encode: attr(py, "codecs", "encode")?,
        builtins_getattr: attr(py, "builtins", "getattr")?,
        partial: attr(py, "functools", "partial")?,
        // SAFETY: PyTuple_New(0) returns a new reference to the empty tuple.
        empty_tuple: unsafe { ffi::PyTuple_New(0) },
        picklebuffer_type: crate::py_compat::picklebuffer_type(),
        module_type: std::ptr::addr_of_mut!(ffi::PyModule_Type),
        py_minor: py.version_info().minor,
    };
    let _ = CACHE.set(cache);
    Ok(())
}

/// `builtins.getattr`.
pub fn builtins_getattr(py: Python<'_>) -> Bound<'_, PyAny> {
    // SAFETY: a strong reference the cache holds for the life of the
    // process; GIL held (`py`).
    unsafe { Bound::from_borrowed_ptr(py, cache().builtins_getattr) }
}

/// The type object `tp` as a Python object.
///
/// # Safety
/// `tp` must be a type object that lives as long as the interpreter (a
/// static type such as `PyDict_Type`, or one held for the life of the
/// process), and the GIL held (`py`).
pub unsafe fn type_object(py: Python<'_>, tp: *mut ffi::PyTypeObject) -> Bound<'_, PyAny> {
    // SAFETY: `tp` is alive for the interpreter's life (contract).
    unsafe { Bound::from_borrowed_ptr(py, tp.cast()) }
}

/// A C string for error messages and `Py_EnterRecursiveCall`.
pub const WHILE_PICKLING: &CStr = c" while pickling an object";

pub use crate::py_compat::version_tag;

/// Stops the garbage collector from tracking `obj`, a container the engine
/// made for itself (a reduce tuple, a state dict). Such temporaries are
/// referenced only by the engine and its memo and are never part of a
/// reference cycle, so the collector has nothing to find in them; left
/// tracked, the ones the memo keeps alive would be traversed again by
/// every collection that runs while a large payload is being pickled.
/// Untracked containers still keep their items alive, and CPython tracks a
/// dict again if a container is later stored in it.
#[inline]
pub fn untrack(obj: &Bound<'_, PyAny>) {
    crate::py_compat::gc_untrack(obj)
}
