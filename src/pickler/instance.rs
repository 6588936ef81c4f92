//! Instances of ordinary classes, without calling `__reduce_ex__`.
//!
//! For an instance of a class that keeps `object`'s reduce machinery (no
//! `__reduce__`, `__reduce_ex__`, `__getnewargs[_ex]__`, no C base other
//! than `object`), `object.__reduce_ex__(2+)` returns
//! `(copyreg.__newobj__, (cls,), state)`, and `save_reduce` writes the
//! class, an empty tuple, NEWOBJ, the memo entry, then the state and BUILD
//! (nothing when the state is None). This module writes that directly, for
//! three kinds of classes (`Kind`):
//!
//! - plain: no `__slots__` anywhere, `object.__getstate__`: the state is
//!   the instance `__dict__`, or None when it is empty;
//! - slotted: `__slots__` (and maybe a `__dict__`), `object.__getstate__`:
//!   the state is `(dict or None, {name: value})` for the names of
//!   `copyreg._slotnames(cls)` that have a value (missing ones are
//!   skipped), or just the dict (or None) when no slot has a value. Each
//!   value is read through the slot's member descriptor offset, which is
//!   what `getattr` does when the name finds that descriptor on the type
//!   (a data descriptor wins over the instance dict) and the type keeps
//!   `object`'s attribute lookup. The temporary dict and tuple are only
//!   written, with their memo indices, as `write_partial` does;
//! - getstate: a Python `__getstate__` function: the state is what it
//!   returns.
//!
//! Whether a class qualifies, and how, is cached per type and per type
//! version tag: CPython gives a type a new tag whenever it, or a base, is
//! modified (assigning `__slotnames__` included). Mutating the
//! `__slotnames__` list in place does not change the tag: a slotted
//! instance compares the list with the cached names first.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

use super::opcodes::*;
use super::trail::Step;
use super::Engine;
use crate::py::_PyType_Lookup;

/// An object saved as a global, with the module name and global name it
/// was saved under.
pub(super) type NamedGlobal = (Py<PyAny>, Py<PyString>, Py<PyString>);

/// Slotted classes with more slots than this take the general path.
const MAX_SLOTS: usize = 16;

/// How instances of a class are written (see the module docs).
#[derive(Clone)]
pub(super) enum Kind {
    /// By `__reduce_ex__` (the general path).
    Other,
    Plain,
    Slotted(Arc<SlotLayout>),
    /// The class's `__getstate__` function.
    GetState(Arc<Py<PyAny>>),
}

pub(super) struct SlotLayout {
    /// The class's `__slotnames__` list.
    list: Py<PyAny>,
    /// The list's items when the layout was made (exact strs), with the
    /// offset of each slot's value in an instance.
    slots: Vec<(Py<PyAny>, isize)>,
    /// Whether instances have a `__dict__`.
    has_dict: bool,
}

#[derive(Default)]
pub struct TypeCache {
    last: Option<(usize, u32, Kind)>,
    map: HashMap<usize, (u32, Kind)>,
    /// cloudpickle's own reconstructors with the module name and global
    /// name they were saved under (see `Engine::save_own_global`).
    pub(super) own_globals: Vec<NamedGlobal>,
    /// Static (non-heap) types found in `builtins`, by address, with the
    /// module name and global name they were saved under (see
    /// `Engine::save_builtin_type`).
    pub(super) builtin_types: HashMap<usize, NamedGlobal>,
    /// What the dispatch dicts gave for the last few static types.
    pub(super) dispatch_seen: super::dispatch::DispatchSeen,
    /// The `Pickler` class's dispatch table as last resolved (see
    /// `dispatch::ResolvedClassTable`).
    pub(super) class_table: Option<super::dispatch::ResolvedClassTable>,
    /// The base globals the last one-shot dump made (see
    /// `reduce::function_reduction::reuse_base_globals`).
    pub(super) base_globals: crate::reduce::function_reduction::KeptBaseGlobals,
}

impl TypeCache {
    #[inline(always)]
    fn get(&self, tp: usize, tag: u32) -> Option<Kind> {
        if let Some((t, g, kind)) = &self.last {
            if *t == tp && *g == tag {
                return Some(kind.clone());
            }
        }
        match self.map.get(&tp) {
            Some((g, kind)) if *g == tag => Some(kind.clone()),
            _ => None,
        }
    }

    fn set(&mut self, tp: usize, tag: u32, kind: Kind) {
        if self.map.len() > 4096 {
            self.map.clear();
        }
        self.map.insert(tp, (tag, kind.clone()));
        self.last = Some((tp, tag, kind));
    }
}

/// Slot values read from an instance, with a reference held to each: the
/// index of the slot in the layout and the value.
struct SlotValues {
    n: usize,
    items: [(usize, *mut ffi::PyObject); MAX_SLOTS],
}

impl SlotValues {
    fn values(&self) -> &[(usize, *mut ffi::PyObject)] {
        &self.items[..self.n]
    }
}

impl Drop for SlotValues {
    fn drop(&mut self) {
        for &(_, v) in self.values() {
            // SAFETY: our own references, taken with the GIL held, which
            // the engine holds for as long as these exist.
            unsafe { ffi::Py_DECREF(v) };
        }
    }
}

/// The layout of `PyMemberDescrObject`, the same in CPython 3.9 to 3.15.
#[repr(C)]
struct MemberDescr {
    ob_base: ffi::PyObject,
    d_type: *mut ffi::PyTypeObject,
    d_name: *mut ffi::PyObject,
    d_qualname: *mut ffi::PyObject,
    d_member: *mut ffi::PyMemberDef,
}

impl<'s, 'py> Engine<'s, 'py> {
    /// How instances of `tp` are written.
    ///
    /// # Safety
    /// `tp` must be a live type object.
    unsafe fn instance_kind(&mut self, tp: *mut ffi::PyTypeObject) -> Kind {
        // SAFETY: `tp` is a live type (contract), as `version_tag` and
        // `compute_kind` require.
        unsafe {
            let tag = crate::py::version_tag(tp, self.c.py_minor);
            if tag != 0 {
                if let Some(kind) = self.types.get(tp as usize, tag) {
                    return kind;
                }
            }
            let kind = self.compute_kind(tp);
            // The lookups above assign a tag to a type that had none, and
            // `copyreg._slotnames` sets `__slotnames__` (a new tag).
            let tag = crate::py::version_tag(tp, self.c.py_minor);
            if tag != 0 {
                self.types.set(tp as usize, tag, kind.clone());
            }
            kind
        }
    }

    /// # Safety
    /// `tp` must be a live type object.
    unsafe fn compute_kind(&mut self, tp: *mut ffi::PyTypeObject) -> Kind {
        // SAFETY: `tp` is a live type (contract), whose struct may be read. Its MRO
        // tuple is held by `_mro` while it is walked, and the class dict read again
        // after `copyreg._slotnames` ran (Python code).
        unsafe {
            let c = self.c;
            let t = &*tp;
            if t.tp_flags & ffi::Py_TPFLAGS_HEAPTYPE == 0
                || t.tp_itemsize != 0
                || t.tp_new.is_none()
                || !t.tp_getattro.is_some_and(|f| {
                    std::ptr::fn_addr_eq(f, ffi::PyObject_GenericGetAttr as ffi::getattrofunc)
                })
            {
                return Kind::Other;
            }
            // Every base but `object` must be a Python class: then the
            // instance layout is object + slots + __dict__ + __weakref__, and
            // object.__reduce_ex__ would not refuse it.
            let mro = t.tp_mro;
            if mro.is_null() || ffi::PyTuple_Check(mro) == 0 {
                return Kind::Other;
            }
            // Lookups below can run Python code (a key's `__eq__`), which
            // could replace the MRO.
            let _mro = super::borrowed(self.py, mro);
            let n = crate::py_compat::tuple_size(mro);
            let mut slots_declared = false;
            for i in 0..n {
                let base = crate::py_compat::tuple_item(mro, i) as *mut ffi::PyTypeObject;
                if base == std::ptr::addr_of_mut!(ffi::PyBaseObject_Type) {
                    if i != n - 1 {
                        return Kind::Other;
                    }
                    continue;
                }
                if (*base).tp_flags & ffi::Py_TPFLAGS_HEAPTYPE == 0 {
                    return Kind::Other;
                }
                let dict = (*base).tp_dict;
                if dict.is_null() {
                    return Kind::Other;
                }
                if !ffi::PyDict_GetItemWithError(dict, c.s_slots).is_null() {
                    slots_declared = true;
                } else if !ffi::PyErr_Occurred().is_null() {
                    ffi::PyErr_Clear();
                    return Kind::Other;
                }
            }
            let reduces_plainly = _PyType_Lookup(tp, c.s_reduce_ex) == c.object_reduce_ex
                && _PyType_Lookup(tp, c.s_reduce) == c.object_reduce
                && _PyType_Lookup(tp, c.s_getnewargs_ex).is_null()
                && _PyType_Lookup(tp, c.s_getnewargs).is_null()
                && _PyType_Lookup(tp, c.s_class) == c.object_class;
            if !reduces_plainly {
                return Kind::Other;
            }
            let getstate = _PyType_Lookup(tp, c.s_getstate);
            if getstate != c.object_getstate {
                // A Python function, called as `obj.__getstate__()` would call
                // it (a plain function is a non-data descriptor: the instance
                // dict is checked for the name before each call).
                if !getstate.is_null() && ffi::PyFunction_Check(getstate) != 0 {
                    let getstate = super::borrowed(self.py, getstate).unbind();
                    return Kind::GetState(Arc::new(getstate));
                }
                return Kind::Other;
            }
            // `object.__getstate__` (or none, before 3.11): the slot names are
            // `copyreg._slotnames(cls)`, cached in the class dict.
            let mut slotnames = ffi::PyDict_GetItemWithError(t.tp_dict, c.s_slotnames);
            if slotnames.is_null() {
                if !ffi::PyErr_Occurred().is_null() {
                    ffi::PyErr_Clear();
                    return Kind::Other;
                }
                // `object.__reduce_ex__` caches the slot names in the class
                // (`copyreg._slotnames`): do the same, so that the class looks
                // the same afterwards (a class pickled by value later carries
                // its `__slotnames__`, as with pickle).
                let cls = super::borrowed(self.py, tp.cast());
                let computed = self
                    .py
                    .import(pyo3::intern!(self.py, "copyreg"))
                    .and_then(|m| m.getattr(pyo3::intern!(self.py, "_slotnames")))
                    .and_then(|f| f.call1((cls,)));
                let Ok(computed) = computed else {
                    return Kind::Other;
                };
                // What the class dict holds now (the general path would read
                // it from there too); the list computed if it could not be set.
                slotnames = ffi::PyDict_GetItemWithError(t.tp_dict, c.s_slotnames);
                if slotnames.is_null() {
                    ffi::PyErr_Clear();
                    if ffi::PyList_CheckExact(computed.as_ptr()) == 0
                        || ffi::PyList_GET_SIZE(computed.as_ptr()) != 0
                    {
                        return Kind::Other;
                    }
                    return if slots_declared {
                        self.slot_layout(tp, computed.as_ptr())
                    } else {
                        Kind::Plain
                    };
                }
            }
            if ffi::PyList_CheckExact(slotnames) == 0 {
                return Kind::Other;
            }
            if ffi::PyList_GET_SIZE(slotnames) == 0 && !slots_declared {
                return Kind::Plain;
            }
            self.slot_layout(tp, slotnames)
        }
    }

    /// The layout of a class with `object.__getstate__` and the slot names
    /// `slotnames` (an exact list), or `Other` when reading the slots
    /// through their offsets could differ from `getattr`.
    ///
    /// # Safety
    /// `tp` must be a live type object and `slotnames` an alive exact list.
    unsafe fn slot_layout(
        &mut self,
        tp: *mut ffi::PyTypeObject,
        slotnames: *mut ffi::PyObject,
    ) -> Kind {
        // SAFETY: `tp` is a live type (contract). The names are copied out of the
        // list (with references) before any lookup that could run Python code, and
        // each member descriptor is read only after its exact type was checked.
        unsafe {
            let n = ffi::PyList_GET_SIZE(slotnames) as usize;
            if n > MAX_SLOTS {
                return Kind::Other;
            }
            let t = &*tp;
            let mut slots: Vec<(Py<PyAny>, isize)> = Vec::with_capacity(n);
            // Lookups below can run Python code (a key's `__eq__`), which
            // could change the list, or replace it in the class dict: it and
            // its items are held first.
            let list = super::borrowed(self.py, slotnames);
            let names: Vec<Bound<'py, PyAny>> = (0..n)
                .map(|i| super::borrowed(self.py, ffi::PyList_GET_ITEM(slotnames, i as isize)))
                .collect();
            for name in &names {
                let name = name.as_ptr();
                // Exact strs only: looking one up runs no Python code, and
                // pickle writes it as a string.
                if ffi::PyUnicode_CheckExact(name) == 0 {
                    return Kind::Other;
                }
                // Duplicates would make a dict of fewer entries than names.
                for (other, _) in &slots {
                    if ffi::PyUnicode_Compare(other.as_ptr(), name) == 0 {
                        return Kind::Other;
                    }
                }
                let descr = _PyType_Lookup(tp, name);
                if descr.is_null()
                    || ffi::Py_TYPE(descr) != std::ptr::addr_of_mut!(ffi::PyMemberDescr_Type)
                {
                    return Kind::Other;
                }
                let descr = descr as *mut MemberDescr;
                let member = (*descr).d_member;
                // An object slot (T_OBJECT_EX: null reads as AttributeError),
                // no flag but READONLY (no audit hook, no relative offset), of
                // a class in the MRO, inside the instance.
                if member.is_null()
                    || (*member).type_code != ffi::Py_T_OBJECT_EX
                    || (*member).flags & !ffi::Py_READONLY != 0
                    || ffi::PyType_IsSubtype(tp, (*descr).d_type) == 0
                    || (*member).offset < std::mem::size_of::<ffi::PyObject>() as isize
                    || (*member).offset + std::mem::size_of::<*mut ffi::PyObject>() as isize
                        > t.tp_basicsize
                {
                    return Kind::Other;
                }
                slots.push((super::borrowed(self.py, name).unbind(), (*member).offset));
            }
            // `object.__getstate__` refuses instances larger than object plus
            // their slots, __dict__ and __weakref__ pointers; counted here so
            // that a layout it might refuse goes the general way.
            let ptr = std::mem::size_of::<*mut ffi::PyObject>() as isize;
            let mut size = ffi::PyBaseObject_Type.tp_basicsize + ptr * n as isize;
            if t.tp_dictoffset > 0 {
                size += ptr;
            }
            if t.tp_weaklistoffset > 0 {
                size += ptr;
            }
            if t.tp_basicsize > size {
                return Kind::Other;
            }
            Kind::Slotted(Arc::new(SlotLayout {
                list: list.unbind(),
                slots,
                has_dict: has_instance_dict(tp),
            }))
        }
    }

    /// The instance dict of `obj`, if it is an exact dict that does not
    /// shadow the names pickle looks up on the instance; None (with no
    /// error set) otherwise.
    ///
    /// # Safety
    /// `obj` must be alive.
    unsafe fn instance_dict(&mut self, obj: *mut ffi::PyObject) -> Option<Bound<'py, PyAny>> {
        // SAFETY: `obj` is alive (contract); `PyObject_GenericGetDict` returns a
        // new reference, held by `dict`.
        unsafe {
            let dict = ffi::PyObject_GenericGetDict(obj, std::ptr::null_mut());
            if dict.is_null() {
                ffi::PyErr_Clear();
                return None;
            }
            // SAFETY: PyObject_GenericGetDict returned a new reference.
            let dict = Bound::from_owned_ptr(self.py, dict);
            if ffi::PyDict_CheckExact(dict.as_ptr()) == 0 {
                return None;
            }
            // Names looked up on the instance by pickle would find these first.
            for name in [self.c.s_reduce_ex, self.c.s_getstate] {
                if !ffi::PyDict_GetItemWithError(dict.as_ptr(), name).is_null() {
                    return None;
                }
                if !ffi::PyErr_Occurred().is_null() {
                    ffi::PyErr_Clear();
                    return None;
                }
            }
            Some(dict)
        }
    }

    /// Writes the class, the empty arguments, NEWOBJ and the memo entry
    /// of `obj`; returns false when saving the class memoized `obj`
    /// already (then it has been fetched from the memo instead, and the
    /// state must not be written).
    ///
    /// # Safety
    /// `obj` must be alive and `tp` its type, both held by the caller for the
    /// whole call.
    unsafe fn write_newobj(
        &mut self,
        obj: *mut ffi::PyObject,
        tp: *mut ffi::PyTypeObject,
        transient: bool,
    ) -> PyResult<bool> {
        // SAFETY: `obj` and `tp` are alive (contract), and the empty tuple is
        // held by the cache.
        unsafe {
            // The class, usually in the memo already.
            if !self.save_memoized_inline(tp.cast())? {
                self.save(tp.cast(), false)
                    .map_err(|e| self.failed_at(Step::Callable, tp.cast(), e))?;
            }
            self.save_empty_tuple()?;
            self.out.byte(NEWOBJ);
            if let Some(idx) = self.memo.get(obj) {
                self.out.byte(POP);
                self.memo_get(idx)?;
                return Ok(false);
            }
            self.memo_put(obj, transient)?;
            Ok(true)
        }
    }

    /// `save(())` for the empty arguments of NEWOBJ (protocol 2 and later),
    /// without the dispatch when nothing would run first (no persistent_id
    /// hook, no full frame to commit): the memo's entry for it if it has one
    /// (only a memo assigned to a Pickler can), else EMPTY_TUPLE, which is
    /// what `save_tuple` writes for it, inside the same recursion guard that
    /// `save` takes for a tuple.
    #[inline(always)]
    fn save_empty_tuple(&mut self) -> PyResult<()> {
        let empty = self.c.empty_tuple;
        if !self.fast_paths || self.persistent_id.is_some() || self.out.frame_full() {
            // SAFETY: the empty tuple is held by the cache for the life of the
            // process.
            return unsafe { self.save(empty, false) };
        }
        if let Some(idx) = self.memo.get(empty) {
            return self.memo_get(idx);
        }
        self.enter()?;
        self.out.byte(EMPTY_TUPLE);
        self.leave();
        Ok(())
    }

    /// Saves `obj` if it is an instance of a class this module handles;
    /// returns false (having written nothing and run no Python code) if it
    /// is not. Protocol 2 and later.
    ///
    /// # Safety
    /// `obj` must be alive and `tp` its type, both held by the caller for the
    /// whole call.
    pub(super) unsafe fn save_plain_instance(
        &mut self,
        obj: *mut ffi::PyObject,
        tp: *mut ffi::PyTypeObject,
        transient: bool,
    ) -> PyResult<bool> {
        // SAFETY: `obj` and `tp` are alive (contract), as the savers below require.
        unsafe {
            match self.instance_kind(tp) {
                Kind::Other => Ok(false),
                Kind::Plain => self.save_dict_instance(obj, tp, transient),
                Kind::Slotted(layout) => self.save_slotted_instance(obj, tp, &layout, transient),
                Kind::GetState(getstate) => {
                    self.save_getstate_instance(obj, tp, getstate.as_ptr(), transient)
                }
            }
        }
    }

    /// # Safety
    /// `obj` must be alive and `tp` its type, both held by the caller for the
    /// whole call.
    unsafe fn save_dict_instance(
        &mut self,
        obj: *mut ffi::PyObject,
        tp: *mut ffi::PyTypeObject,
        transient: bool,
    ) -> PyResult<bool> {
        // SAFETY: `obj` and `tp` are alive (contract); the instance dict is held
        // by `dict` while it is saved.
        unsafe {
            let Some(dict) = self.instance_dict(obj) else {
                return Ok(false);
            };
            if !self.write_newobj(obj, tp, transient)? {
                return Ok(true);
            }
            if ffi::PyDict_Size(dict.as_ptr()) != 0 {
                // Only the instance refers to its dict (plus our reference) when
                // its count is 2: then the dict is reached once, like a
                // transient container item. Read now: saving the class may have
                // run Python code.
                let dict_transient = ffi::Py_REFCNT(dict.as_ptr()) == 2;
                self.save(dict.as_ptr(), dict_transient)
                    .map_err(|e| self.failed_at(Step::State, dict.as_ptr(), e))?;
                self.out.byte(BUILD);
            }
            Ok(true)
        }
    }

    /// # Safety
    /// `obj` must be alive and `tp` its type, both held by the caller for the
    /// whole call, and `getstate` an alive function.
    unsafe fn save_getstate_instance(
        &mut self,
        obj: *mut ffi::PyObject,
        tp: *mut ffi::PyTypeObject,
        getstate: *mut ffi::PyObject,
        transient: bool,
    ) -> PyResult<bool> {
        // SAFETY: `obj`, `tp` and `getstate` are alive (contract); the state is a
        // new reference, held by `state`.
        unsafe {
            let has_dict = has_instance_dict(tp);
            if has_dict && self.instance_dict(obj).is_none() {
                return Ok(false);
            }
            // `obj.__getstate__()`, as `object.__reduce_ex__` calls it, before
            // anything is written.
            let args = [obj];
            let state = ffi::PyObject_Vectorcall(getstate, args.as_ptr(), 1, std::ptr::null_mut());
            let state = crate::errors::owned(self.py, state)?;
            if !self.write_newobj(obj, tp, transient)? {
                return Ok(true);
            }
            if !state.is_none() {
                let state_transient = ffi::Py_REFCNT(state.as_ptr()) == 1;
                self.save(state.as_ptr(), state_transient)
                    .map_err(|e| self.failed_at(Step::State, state.as_ptr(), e))?;
                self.out.byte(BUILD);
            }
            Ok(true)
        }
    }

    /// # Safety
    /// `obj` must be alive and `tp` its type, both held by the caller for the
    /// whole call, and `layout` the slot layout of `tp`.
    unsafe fn save_slotted_instance(
        &mut self,
        obj: *mut ffi::PyObject,
        tp: *mut ffi::PyTypeObject,
        layout: &SlotLayout,
        transient: bool,
    ) -> PyResult<bool> {
        // SAFETY: `obj` and `tp` are alive (contract), and `layout` was made for
        // `tp`: each slot offset is inside the instance (see `slot_layout`). Slot
        // values are taken with references before any Python code can run.
        unsafe {
            // The state's dict and tuple are only written when nobody could
            // see them: no persistent_id hook (pickle passes them to it), a
            // one-shot dump (pickle's memo, which a Pickler shows, holds them).
            if !self.private_temporaries || self.persistent_id.is_some() {
                return Ok(false);
            }
            let list = layout.list.as_ptr();
            let n = layout.slots.len();
            if ffi::PyList_GET_SIZE(list) != n as isize {
                return Ok(false);
            }
            for (i, (name, _)) in layout.slots.iter().enumerate() {
                if ffi::PyList_GET_ITEM(list, i as isize) != name.as_ptr() {
                    return Ok(false);
                }
            }
            let dict = if layout.has_dict {
                match self.instance_dict(obj) {
                    Some(dict) => Some(dict),
                    None => return Ok(false),
                }
            } else {
                None
            };
            // The slot values now, as `object.__getstate__` reads them before
            // anything is saved.
            let mut values = SlotValues {
                n: 0,
                items: [(0, std::ptr::null_mut()); MAX_SLOTS],
            };
            for (i, &(_, offset)) in layout.slots.iter().enumerate() {
                // SAFETY: `offset` is the offset of an object slot of a class
                // in the MRO of `tp`, inside the instance (see `slot_layout`).
                let value = *((obj as *mut u8).offset(offset) as *mut *mut ffi::PyObject);
                if !value.is_null() {
                    ffi::Py_INCREF(value);
                    values.items[values.n] = (i, value);
                    values.n += 1;
                }
            }
            if !self.write_newobj(obj, tp, transient)? {
                return Ok(true);
            }
            let dict = dict.filter(|d| ffi::PyDict_Size(d.as_ptr()) != 0);
            if values.n == 0 {
                if let Some(dict) = dict {
                    let dict_transient = ffi::Py_REFCNT(dict.as_ptr()) == 2;
                    self.save(dict.as_ptr(), dict_transient)
                        .map_err(|e| self.failed_at(Step::State, dict.as_ptr(), e))?;
                    self.out.byte(BUILD);
                }
                return Ok(true);
            }
            // The state tuple, (dict or None, {name: value}), as save_tuple
            // and save_dict write it.
            self.boundary()?;
            self.enter()?;
            let r = self.write_slot_state(layout, dict.as_ref(), &values);
            self.leave();
            r?;
            self.out.byte(BUILD);
            Ok(true)
        }
    }

    fn write_slot_state(
        &mut self,
        layout: &SlotLayout,
        dict: Option<&Bound<'py, PyAny>>,
        values: &SlotValues,
    ) -> PyResult<()> {
        // SAFETY: `values` holds a reference to each value, and the dict is held
        // by the caller's `Bound`.
        unsafe {
            let first = dict.map_or(ffi::Py_None(), |d| d.as_ptr());
            let first_transient = dict.is_some_and(|d| ffi::Py_REFCNT(d.as_ptr()) == 2);
            if let Err(e) = self.save(first, first_transient) {
                let e = self.failed_at(Step::Item(0), first, e);
                return Err(self.slot_state_failed(layout, dict, values, e));
            }
            self.boundary()?;
            self.enter()?;
            let r = self.write_slot_dict(layout, values);
            self.leave();
            if let Err(e) = r {
                return Err(self.slot_state_failed_in_dict(layout, dict, values, e));
            }
            self.out.byte(TUPLE2);
            self.memo_skip()
        }
    }

    /// The `{name: value}` dict of a slotted instance's state (fewer than
    /// `BATCHSIZE` entries: one SETITEM or one batch).
    fn write_slot_dict(&mut self, layout: &SlotLayout, values: &SlotValues) -> PyResult<()> {
        // SAFETY: `values` holds a reference to each value, `layout` to each name.
        unsafe {
            self.out.byte(EMPTY_DICT);
            self.memo_skip()?;
            let many = values.n > 1;
            if many {
                self.out.byte(MARK);
            }
            for &(i, value) in values.values() {
                let name = layout.slots[i].0.as_ptr();
                self.save(name, false).map_err(|e| {
                    let key = super::borrowed(self.py, name).unbind();
                    self.failed_at(Step::Key(key), name, e)
                })?;
                // Held by the instance and by `values` only: not in the memo.
                let value_transient = ffi::Py_REFCNT(value) == 2;
                self.save(value, value_transient).map_err(|e| {
                    let key = super::borrowed(self.py, name).unbind();
                    self.failed_at(Step::Value(key), value, e)
                })?;
            }
            self.out.byte(if many { SETITEMS } else { SETITEM });
            Ok(())
        }
    }

    /// The objects the general path would have built, for the failure
    /// trail (see `trail`): the slots dict and the state tuple.
    #[cold]
    #[inline(never)]
    fn slot_state_objects(
        &mut self,
        layout: &SlotLayout,
        dict: Option<&Bound<'py, PyAny>>,
        values: &SlotValues,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        // SAFETY: `values` holds a reference to each value.
        unsafe {
            let py = self.py;
            let slots = pyo3::types::PyDict::new(py);
            for &(i, value) in values.values() {
                slots.set_item(layout.slots[i].0.bind(py), super::borrowed(py, value))?;
            }
            let first = dict.cloned().unwrap_or_else(|| py.None().into_bound(py));
            let state = pyo3::types::PyTuple::new(py, [first, slots.clone().into_any()])?;
            Ok((slots.into_any(), state.into_any()))
        }
    }

    #[cold]
    #[inline(never)]
    fn slot_state_failed_in_dict(
        &mut self,
        layout: &SlotLayout,
        dict: Option<&Bound<'py, PyAny>>,
        values: &SlotValues,
        e: PyErr,
    ) -> PyErr {
        match self.slot_state_objects(layout, dict, values) {
            Ok((slots, _)) => {
                // SAFETY: `slots` is held for the call.
                let e = unsafe { self.failed_at(Step::Item(1), slots.as_ptr(), e) };
                self.slot_state_failed(layout, dict, values, e)
            }
            Err(_) => e,
        }
    }

    #[cold]
    #[inline(never)]
    fn slot_state_failed(
        &mut self,
        layout: &SlotLayout,
        dict: Option<&Bound<'py, PyAny>>,
        values: &SlotValues,
        e: PyErr,
    ) -> PyErr {
        match self.slot_state_objects(layout, dict, values) {
            // SAFETY: `state` is held for the call.
            Ok((_, state)) => unsafe { self.failed_at(Step::State, state.as_ptr(), e) },
            Err(_) => e,
        }
    }
}

/// `Py_TPFLAGS_MANAGED_DICT` (Python 3.11 and later; the bit is unused
/// before, where PyO3 does not name it).
const MANAGED_DICT: std::os::raw::c_ulong = 1 << 4;

/// Whether instances of `tp` have a `__dict__`: a dict offset, or (3.11+)
/// a dict managed by the interpreter.
///
/// # Safety
/// GIL held; `tp` a live type object.
unsafe fn has_instance_dict(tp: *mut ffi::PyTypeObject) -> bool {
    // SAFETY: `tp` is a live type (contract).
    unsafe {
        (*tp).tp_dictoffset != 0
            || (crate::py::cache().py_minor >= 11 && (*tp).tp_flags & MANAGED_DICT != 0)
    }
}
