//! Instances of ordinary classes, without calling `__reduce_ex__`.
//!
//! For an instance of a class that keeps `object`'s reduce machinery (no
//! `__reduce__`, `__reduce_ex__`, `__getstate__`, `__getnewargs[_ex]__`, no
//! `__slots__`, no C base other than `object`), `object.__reduce_ex__(2+)`
//! returns `(copyreg.__newobj__, (cls,), state)` where state is the instance
//! `__dict__`, or None when it is empty. This module writes what `save_reduce`
//! writes for that value, directly: the class, an empty tuple, NEWOBJ, the
//! memo entry, then the dict and BUILD.
//!
//! Whether a class qualifies is cached per type and per type version tag:
//! CPython gives a type a new tag whenever it, or a base, is modified.

use std::collections::HashMap;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

use super::opcodes::*;
use super::Engine;
use crate::py::_PyType_Lookup;

/// An object saved as a global, with the module name and global name it
/// was saved under.
pub(super) type NamedGlobal = (Py<PyAny>, Py<PyString>, Py<PyString>);

#[derive(Default)]
pub struct TypeCache {
    last: Option<(usize, u32, bool)>,
    map: HashMap<usize, (u32, bool)>,
    /// cloudpickle's own reconstructors with the module name and global
    /// name they were saved under (see `Engine::save_own_global`).
    pub(super) own_globals: Vec<NamedGlobal>,
    /// Static (non-heap) types found in `builtins`, by address, with the
    /// module name and global name they were saved under (see
    /// `Engine::save_builtin_type`).
    pub(super) builtin_types: HashMap<usize, NamedGlobal>,
}

impl TypeCache {
    #[inline(always)]
    fn get(&self, tp: usize, tag: u32) -> Option<bool> {
        if let Some((t, g, ok)) = self.last {
            if t == tp && g == tag {
                return Some(ok);
            }
        }
        match self.map.get(&tp) {
            Some(&(g, ok)) if g == tag => Some(ok),
            _ => None,
        }
    }

    fn set(&mut self, tp: usize, tag: u32, ok: bool) {
        if self.map.len() > 4096 {
            self.map.clear();
        }
        self.map.insert(tp, (tag, ok));
        self.last = Some((tp, tag, ok));
    }
}

impl<'s, 'py> Engine<'s, 'py> {
    /// Whether instances of `tp` reduce the plain `object` way.
    unsafe fn is_plain_class(&mut self, tp: *mut ffi::PyTypeObject) -> bool {
        let tag = crate::py::version_tag(tp, self.c.py_minor);
        if tag != 0 {
            if let Some(ok) = self.types.get(tp as usize, tag) {
                return ok;
            }
        }
        let ok = self.compute_plain_class(tp);
        // The lookups above assign a tag to a type that had none.
        let tag = crate::py::version_tag(tp, self.c.py_minor);
        if tag != 0 {
            self.types.set(tp as usize, tag, ok);
        }
        ok
    }

    unsafe fn compute_plain_class(&mut self, tp: *mut ffi::PyTypeObject) -> bool {
        let c = self.c;
        let t = &*tp;
        if t.tp_flags & ffi::Py_TPFLAGS_HEAPTYPE == 0
            || t.tp_itemsize != 0
            || t.tp_new.is_none()
            || !t.tp_getattro.is_some_and(|f| {
                std::ptr::fn_addr_eq(f, ffi::PyObject_GenericGetAttr as ffi::getattrofunc)
            })
        {
            return false;
        }
        // Every base but `object` must be a Python class without __slots__:
        // then the instance layout is object + __dict__ + __weakref__ and
        // object.__reduce_ex__ would not refuse it.
        let mro = t.tp_mro;
        if mro.is_null() || ffi::PyTuple_Check(mro) == 0 {
            return false;
        }
        let n = ffi::PyTuple_GET_SIZE(mro);
        for i in 0..n {
            let base = ffi::PyTuple_GET_ITEM(mro, i) as *mut ffi::PyTypeObject;
            if base == std::ptr::addr_of_mut!(ffi::PyBaseObject_Type) {
                if i != n - 1 {
                    return false;
                }
                continue;
            }
            if (*base).tp_flags & ffi::Py_TPFLAGS_HEAPTYPE == 0 {
                return false;
            }
            let dict = (*base).tp_dict;
            if dict.is_null() || !ffi::PyDict_GetItemWithError(dict, c.s_slots).is_null() {
                return false;
            }
            if !ffi::PyErr_Occurred().is_null() {
                ffi::PyErr_Clear();
                return false;
            }
        }
        // copyreg caches slot names in the class dict; only an empty list
        // (no slots) is acceptable.
        let slotnames = ffi::PyDict_GetItemWithError(t.tp_dict, c.s_slotnames);
        if !slotnames.is_null()
            && (ffi::PyList_CheckExact(slotnames) == 0 || ffi::PyList_GET_SIZE(slotnames) != 0)
        {
            return false;
        }
        ffi::PyErr_Clear();
        let plain = _PyType_Lookup(tp, c.s_reduce_ex) == c.object_reduce_ex
            && _PyType_Lookup(tp, c.s_reduce) == c.object_reduce
            && _PyType_Lookup(tp, c.s_getstate) == c.object_getstate
            && _PyType_Lookup(tp, c.s_getnewargs_ex).is_null()
            && _PyType_Lookup(tp, c.s_getnewargs).is_null()
            && _PyType_Lookup(tp, c.s_class) == c.object_class;
        if plain && slotnames.is_null() {
            // `object.__reduce_ex__` caches the slot names in the class
            // (`copyreg._slotnames`): do the same, so that the class looks
            // the same afterwards (a class pickled by value later carries
            // its `__slotnames__`, as with pickle).
            let cls = super::borrowed(self.py, tp.cast());
            let slotnames = self
                .py
                .import(pyo3::intern!(self.py, "copyreg"))
                .and_then(|m| m.getattr(pyo3::intern!(self.py, "_slotnames")))
                .and_then(|f| f.call1((cls,)));
            return matches!(slotnames, Ok(names) if names.is_exact_instance_of::<pyo3::types::PyList>() && names.len().is_ok_and(|n| n == 0));
        }
        plain
    }

    /// Saves `obj` if it is a plain instance; returns false (having written
    /// nothing) if it is not.
    pub(super) unsafe fn save_plain_instance(
        &mut self,
        obj: *mut ffi::PyObject,
        tp: *mut ffi::PyTypeObject,
        transient: bool,
    ) -> PyResult<bool> {
        if !self.is_plain_class(tp) {
            return Ok(false);
        }
        let dict = ffi::PyObject_GenericGetDict(obj, std::ptr::null_mut());
        if dict.is_null() {
            ffi::PyErr_Clear();
            return Ok(false);
        }
        // SAFETY: PyObject_GenericGetDict returned a new reference.
        let dict = Bound::from_owned_ptr(self.py, dict);
        if ffi::PyDict_CheckExact(dict.as_ptr()) == 0 {
            return Ok(false);
        }
        // Names looked up on the instance by pickle would find these first.
        for name in [self.c.s_reduce_ex, self.c.s_getstate] {
            if !ffi::PyDict_GetItemWithError(dict.as_ptr(), name).is_null() {
                return Ok(false);
            }
            if !ffi::PyErr_Occurred().is_null() {
                ffi::PyErr_Clear();
                return Ok(false);
            }
        }
        self.save(tp.cast(), false)
            .map_err(|e| self.failed_at(super::trail::Step::Callable, tp.cast(), e))?;
        self.save(self.c.empty_tuple, false)?;
        self.out.byte(NEWOBJ);
        if let Some(idx) = self.memo.get(obj) {
            self.out.byte(POP);
            self.memo_get(idx)?;
            return Ok(true);
        }
        self.memo_put(obj, transient)?;
        if ffi::PyDict_Size(dict.as_ptr()) != 0 {
            // Only the instance refers to its dict (plus our reference) when
            // its count is 2: then the dict is reached once, like a
            // transient container item. Read now: saving the class may have
            // run Python code.
            let dict_transient = ffi::Py_REFCNT(dict.as_ptr()) == 2;
            self.save(dict.as_ptr(), dict_transient)
                .map_err(|e| self.failed_at(super::trail::Step::State, dict.as_ptr(), e))?;
            self.out.byte(BUILD);
        }
        Ok(true)
    }
}
