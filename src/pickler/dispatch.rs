//! The dispatch tables: a pickler's `dispatch_table` (by default
//! `Pickler.dispatch_table`, a ChainMap of cloudpickle's reducers and
//! `copyreg.dispatch_table`).

use pyo3::exceptions::PyKeyError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::Engine;
use crate::errors::fetch;

/// Where a dump's dispatch table comes from.
pub enum DispatchSource<'py> {
    /// `cloudpickle.Pickler.dispatch_table`, looked up when first needed.
    PicklerClass,
    /// A table given by a Pickler instance.
    Given(Bound<'py, PyAny>),
}

pub(super) enum Dispatch<'py> {
    Unresolved(DispatchSource<'py>),
    /// Plain dicts, consulted in order with no Python code run.
    Dicts(Arc<DictsDispatch>),
    /// Any other mapping, consulted with `table[type]`.
    Mapping(Bound<'py, PyAny>),
}

/// A dispatch table read as plain dicts: the dicts, consulted in order;
/// whether their contents can be stamped (see `stamp`); the ChainMap they
/// were read from, if any. Shared between the dumps of a thread when it is
/// the `Pickler` class's table (see `ResolvedClassTable`): nothing in it
/// depends on one dump, and `chain_unchanged`, checked before every lookup,
/// tells whether the ChainMap still has these maps.
pub(super) struct DictsDispatch {
    dicts: Vec<Py<PyAny>>,
    stampable: bool,
    origin: Option<ChainOrigin>,
}

/// The `Pickler` class's dispatch table as last resolved on this thread:
/// the object found as `Pickler.dispatch_table`, held, and its dicts.
/// A dump whose `Pickler.dispatch_table` is still that object starts from
/// these dicts instead of reading the ChainMap again (`resolve_dispatch`);
/// forgotten as soon as a lookup finds that the ChainMap's maps changed.
pub(crate) type ResolvedClassTable = (Py<PyAny>, Arc<DictsDispatch>);

/// The default ChainMap whose maps a `Dispatch::Dicts` holds: the list
/// of its maps as read, and its instance dict, where that list is found.
/// pickle consults the ChainMap at every lookup, so a reducer that inserts
/// a map into the list (or assigns `maps`) mid-dump is obeyed from then
/// on; `chain_unchanged` notices it.
pub(super) struct ChainOrigin {
    table: Py<PyAny>,
    instance_dict: Py<PyAny>,
    maps: Py<PyList>,
    /// The stamp (see `stamp`) of the dispatch dicts and the instance dict
    /// when `maps` was last found in the instance dict; 0 for never. Not
    /// consulted from 3.12 on (see `chain_unchanged`). Only read and
    /// written with the GIL held.
    #[cfg_attr(Py_3_12, allow(dead_code))]
    verified: AtomicU64,
}

/// Whether `origin`'s ChainMap still has the very maps `dicts`, in order.
/// Called before every lookup, so it is kept to a few pointer comparisons:
/// the list's items are compared each time, and the instance dict (where
/// `maps` may be assigned) is read only when `stamp`, taken over it too,
/// has moved since it was last read. Up to 3.11 only: from 3.12 on, an
/// instance's attributes may live in its inline values, which an
/// assignment updates without telling the dict's watchers, so the
/// instance dict is read at every lookup.
///
/// # Safety
/// GIL held; `dicts` and `origin`'s dicts are alive exact dicts, as
/// `make_stampable` was given them when `stamp_now` is `Some`.
#[inline(always)]
unsafe fn chain_unchanged(
    py: Python<'_>,
    origin: &ChainOrigin,
    dicts: &[Py<PyAny>],
    stamp_now: Option<u64>,
) -> PyResult<bool> {
    let maps = &origin.maps;
    #[cfg(not(PyPy))]
    // SAFETY: `maps` is a list (its type was checked when it was read).
    let len = unsafe { ffi::PyList_GET_SIZE(maps.as_ptr()) } as usize;
    #[cfg(PyPy)]
    let len = maps.bind(py).len();
    if len != dicts.len() {
        return Ok(false);
    }
    for (i, d) in dicts.iter().enumerate() {
        // SAFETY: `i` is below the list's length (checked above, and no
        // Python code runs in this loop); the item is only compared.
        let item = unsafe { ffi::PyList_GET_ITEM(maps.as_ptr(), i as ffi::Py_ssize_t) };
        if item != d.as_ptr() {
            return Ok(false);
        }
    }
    #[cfg(not(Py_3_12))]
    if let Some(now) = stamp_now {
        if now != 0 && now == origin.verified.load(Ordering::Relaxed) {
            return Ok(true);
        }
    }
    maps_attribute_unchanged(py, origin, stamp_now)
}

/// The slow half of `chain_unchanged`: whether the ChainMap's `maps` is
/// still the list `origin` read; recorded under `stamp_now` when it is.
#[cold]
#[inline(never)]
fn maps_attribute_unchanged(
    py: Python<'_>,
    origin: &ChainOrigin,
    stamp_now: Option<u64>,
) -> PyResult<bool> {
    // A str key: found without Python code unless another key of the
    // instance dict has the same hash (then its `__eq__` runs, which is safe:
    // everything here is held strongly, and the list is compared again at
    // the next lookup).
    let current = origin
        .instance_dict
        .bind(py)
        .cast::<PyDict>()?
        .get_item(pyo3::intern!(py, "maps"))?;
    if !current.is_some_and(|m| m.is(origin.maps.bind(py))) {
        return Ok(false);
    }
    origin
        .verified
        .store(stamp_now.unwrap_or(0), Ordering::Relaxed);
    Ok(true)
}

impl<'py> Dispatch<'py> {
    pub(super) fn new(source: DispatchSource<'py>) -> Self {
        Dispatch::Unresolved(source)
    }
}

/// The last type found in none of the dispatch dicts, with the stamp of
/// their contents when it was looked up (see `stamp`): while the stamp is
/// the same, no dict has changed, and the type is still in none of them.
/// Types are keys that hash by address and compare by identity; a type at
/// the same address later (the first one freed) is another object, but it
/// could only be found in a dict that changed meanwhile. For the types
/// `DispatchSeen` does not keep (heap types: instances of one class, one
/// after the other).
pub(super) type DispatchMiss = (usize, u64);

/// What the dispatch dicts gave for the last few types looked up (the
/// reducer found, or null), kept between dumps on one thread: a dump of a
/// function looks up a handful of types (builtin functions, code objects,
/// cells), the same ones dump after dump.
///
/// An entry stands for a lookup of a static type in given dicts (their
/// addresses) whose contents had a given stamp (see `stamp`). While the
/// stamp is the same, none of those dicts has changed or been freed (from
/// 3.12 the watchers see a watched dict freed; up to 3.11 a dict made later
/// at the same address has a version tag above every earlier one, so the
/// stamp differs), so the answer is the same, and the reducer found is
/// still held by its dict. Only static types are entered: they are never
/// freed, and they hash by address and compare by identity (their
/// metaclass is `type`), so the lookup runs no Python code and depends on
/// nothing else. Entries are plain addresses: nothing is held, so the
/// table needs no clean-up.
#[derive(Default)]
pub struct DispatchSeen {
    entries: [SeenEntry; DISPATCH_SEEN],
    next: usize,
}

#[derive(Clone, Copy, Default)]
struct SeenEntry {
    /// Null for an empty entry.
    tp: usize,
    stamp: u64,
    dicts: [usize; SEEN_DICTS],
    found: usize,
}

const DISPATCH_SEEN: usize = 8;
/// Tables of more dicts are not entered.
const SEEN_DICTS: usize = 3;

/// The addresses of `dicts`, or None when there are too many.
fn dicts_key(dicts: &[Py<PyAny>]) -> Option<[usize; SEEN_DICTS]> {
    if dicts.len() > SEEN_DICTS {
        return None;
    }
    let mut key = [0; SEEN_DICTS];
    for (k, d) in key.iter_mut().zip(dicts) {
        *k = d.as_ptr() as usize;
    }
    Some(key)
}

impl DispatchSeen {
    #[inline(always)]
    fn find(&self, tp: usize, stamp: u64, dicts: &[usize; SEEN_DICTS]) -> Option<usize> {
        self.entries
            .iter()
            .find(|e| e.tp == tp && e.stamp == stamp && e.dicts == *dicts)
            .map(|e| e.found)
    }

    fn record(&mut self, tp: usize, stamp: u64, dicts: [usize; SEEN_DICTS], found: usize) {
        self.entries[self.next] = SeenEntry {
            tp,
            stamp,
            dicts,
            found,
        };
        self.next = (self.next + 1) % DISPATCH_SEEN;
    }
}

/// Dict watchers (CPython 3.12 and later): every change to a watched dict
/// (an entry added, replaced or removed, the dict cleared, cloned into, or
/// freed) bumps `GENERATION` before it happens.
#[cfg(all(Py_3_12, not(PyPy)))]
mod watch {
    use pyo3::ffi;
    use std::os::raw::c_int;
    use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

    type Callback = unsafe extern "C" fn(
        c_int,
        *mut ffi::PyObject,
        *mut ffi::PyObject,
        *mut ffi::PyObject,
    ) -> c_int;

    extern "C" {
        fn PyDict_AddWatcher(callback: Callback) -> c_int;
        fn PyDict_Watch(watcher_id: c_int, dict: *mut ffi::PyObject) -> c_int;
    }

    pub(super) static GENERATION: AtomicU64 = AtomicU64::new(1);
    /// The watcher's id; -2 before one was asked for, -1 if none could be had.
    static WATCHER: AtomicI32 = AtomicI32::new(-2);

    /// Runs no Python code and cannot fail.
    unsafe extern "C" fn on_event(
        _event: c_int,
        _dict: *mut ffi::PyObject,
        _key: *mut ffi::PyObject,
        _new_value: *mut ffi::PyObject,
    ) -> c_int {
        GENERATION.fetch_add(1, Ordering::Relaxed);
        0
    }

    /// Watches `dict`; false (no error set) if it cannot be watched.
    ///
    /// # Safety
    /// GIL held; `dict` an alive dict.
    pub(super) unsafe fn watch(dict: *mut ffi::PyObject) -> bool {
        // SAFETY: GIL held and `dict` an alive dict (contract); a failure's
        // error is cleared at once.
        unsafe {
            let mut id = WATCHER.load(Ordering::Relaxed);
            if id == -2 {
                id = PyDict_AddWatcher(on_event);
                if id < 0 {
                    ffi::PyErr_Clear();
                    id = -1;
                }
                WATCHER.store(id, Ordering::Relaxed);
            }
            if id < 0 {
                return false;
            }
            if PyDict_Watch(id, dict) != 0 {
                ffi::PyErr_Clear();
                return false;
            }
            true
        }
    }
}

/// Whether changes to the dispatch dicts `dicts` will show in `stamp`
/// (only with the fast paths on). From 3.12 on the dicts are watched.
///
/// # Safety
/// GIL held; `dicts` alive exact dicts.
unsafe fn make_stampable(dicts: &[Py<PyAny>]) -> bool {
    if !super::fast_paths::enabled() {
        return false;
    }
    #[cfg(all(Py_3_12, not(PyPy)))]
    {
        // SAFETY: GIL held and each dict alive (contract).
        dicts.iter().all(|d| unsafe { watch::watch(d.as_ptr()) })
    }
    #[cfg(all(not(Py_3_12), not(PyPy)))]
    {
        let _ = dicts;
        true
    }
    #[cfg(PyPy)]
    {
        let _ = dicts;
        false
    }
}

/// A stamp of the contents of the dispatch dicts `dicts` and the dict
/// `extra` (a ChainMap's instance dict), which `make_stampable` accepted:
/// equal stamps mean that none of them changed in between. Up to 3.11 each dict carries a version tag (PEP 509) that
/// every change sets to a new value of a global counter, above all earlier
/// ones: a change to any dict raises the largest tag. From 3.12 on, the
/// watchers' generation.
///
/// # Safety
/// GIL held; `dicts` and `extra` alive exact dicts.
#[inline(always)]
unsafe fn stamp(dicts: &[Py<PyAny>], extra: Option<&Py<PyAny>>) -> u64 {
    #[cfg(all(Py_3_12, not(PyPy)))]
    {
        let _ = (dicts, extra);
        watch::GENERATION.load(std::sync::atomic::Ordering::Relaxed)
    }
    #[cfg(all(not(Py_3_12), not(PyPy)))]
    {
        dicts
            .iter()
            .chain(extra)
            // SAFETY: each is an alive exact dict (contract), whose struct
            // may be read.
            .map(|d| unsafe { (*d.as_ptr().cast::<ffi::PyDictObject>()).ma_version_tag })
            .max()
            .unwrap_or(0)
    }
    #[cfg(PyPy)]
    {
        let _ = (dicts, extra);
        0
    }
}

/// `cls.<name>` found along the MRO without running Python code (no
/// descriptor binding: the attribute is a plain value).
fn class_attr<'py>(
    py: Python<'py>,
    cls: &Bound<'py, PyAny>,
    name: &Bound<'py, pyo3::types::PyString>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    if !cls.is_instance_of::<pyo3::types::PyType>() {
        return Ok(None);
    }
    // An interned name: the type's attribute cache answers.
    // SAFETY: `cls` is a type object (checked above); `_PyType_Lookup`
    // returns a borrowed reference that we turn into an owned one at once.
    unsafe {
        let found = crate::py::_PyType_Lookup(cls.as_ptr().cast(), name.as_ptr());
        Ok((!found.is_null()).then(|| Bound::from_borrowed_ptr(py, found)))
    }
}

/// The maps of a `collections.ChainMap` when they are all plain dicts, read
/// from its instance dict (no Python code runs).
fn chainmap_dicts(table: &Bound<'_, PyAny>) -> PyResult<Option<(Vec<Py<PyAny>>, ChainOrigin)>> {
    let py = table.py();
    // SAFETY: PyObject_GenericGetDict returns a new reference or null.
    let dict = unsafe { ffi::PyObject_GenericGetDict(table.as_ptr(), std::ptr::null_mut()) };
    if dict.is_null() {
        // SAFETY: clearing the AttributeError just raised.
        unsafe { ffi::PyErr_Clear() };
        return Ok(None);
    }
    // SAFETY: `dict` is a new reference.
    let dict = unsafe { Bound::from_owned_ptr(py, dict) };
    let Ok(dict) = dict.cast_into::<PyDict>() else {
        return Ok(None);
    };
    let Some(maps) = dict.get_item(pyo3::intern!(py, "maps"))? else {
        return Ok(None);
    };
    match maps.cast_into::<PyList>() {
        Ok(list) if list.iter().all(|m| m.is_exact_instance_of::<PyDict>()) => {
            let dicts = list.iter().map(Bound::unbind).collect();
            let origin = ChainOrigin {
                table: table.clone().unbind(),
                instance_dict: dict.into_any().unbind(),
                maps: list.unbind(),
                verified: AtomicU64::new(0),
            };
            Ok(Some((dicts, origin)))
        }
        _ => Ok(None),
    }
}

impl<'s, 'py> Engine<'s, 'py> {
    fn resolve_dispatch(&mut self) -> PyResult<()> {
        let Dispatch::Unresolved(source) = &self.dispatch else {
            return Ok(());
        };
        let py = self.py;
        let registered = crate::bridge::installed();
        let class_table = matches!(source, DispatchSource::PicklerClass);
        let table = match source {
            DispatchSource::Given(table) => Some(table.clone()),
            DispatchSource::PicklerClass => match registered {
                Some(r) => class_attr(
                    py,
                    r.pickler_class.bind(py),
                    pyo3::intern!(py, "dispatch_table"),
                )?,
                None => None,
            },
        };
        // The class's table as resolved by an earlier dump on this thread,
        // when `Pickler.dispatch_table` is still the same object (held by
        // the cache, so not another one at the same address).
        let reuse = class_table && self.fast_paths;
        if reuse {
            if let (Some(table), Some((cached, dicts))) = (&table, &self.types.class_table) {
                if cached.as_ptr() == table.as_ptr() {
                    self.dispatch = Dispatch::Dicts(dicts.clone());
                    return Ok(());
                }
            }
        }
        let resolved = match &table {
            None => Dispatch::Dicts(Arc::new(DictsDispatch {
                dicts: vec![unsafe {
                    // SAFETY: the cached pointer is a strong, immortal reference.
                    Bound::from_borrowed_ptr(py, self.c.copyreg_dispatch_table).unbind()
                }],
                stampable: false,
                origin: None,
            })),
            Some(table) => {
                let is_default = registered.is_some_and(|r| r.default_table.bind(py).is(table));
                let dicts = |dicts, origin| {
                    Dispatch::Dicts(Arc::new(DictsDispatch {
                        dicts,
                        stampable: false,
                        origin,
                    }))
                };
                if table.is_exact_instance_of::<PyDict>() {
                    dicts(vec![table.clone().unbind()], None)
                } else if is_default {
                    // The default ChainMap: consult its maps directly when
                    // they are all plain dicts (the usual case).
                    match chainmap_dicts(table)? {
                        Some((maps, origin)) => dicts(maps, Some(origin)),
                        None => Dispatch::Mapping(table.clone()),
                    }
                } else {
                    Dispatch::Mapping(table.clone())
                }
            }
        };
        self.dispatch = match resolved {
            Dispatch::Dicts(mut d) => {
                if let Some(inner) = Arc::get_mut(&mut d) {
                    // SAFETY: GIL held (we have `py`); the dicts are alive
                    // exact dicts, and so is a ChainMap's instance dict, whose
                    // changes the stamp then covers too.
                    inner.stampable = unsafe {
                        make_stampable(&inner.dicts)
                            && (cfg!(Py_3_12)
                                || inner.origin.as_ref().is_none_or(|o| {
                                    make_stampable(std::slice::from_ref(&o.instance_dict))
                                }))
                    };
                }
                if let (true, Some(table)) = (reuse, &table) {
                    self.types.class_table = Some((table.clone().unbind(), d.clone()));
                }
                Dispatch::Dicts(d)
            }
            other => other,
        };
        Ok(())
    }

    /// The reducer registered for type `tp`, if any.
    ///
    /// # Safety
    /// `tp` must be a live type object.
    pub(super) unsafe fn dispatch_lookup(
        &mut self,
        tp: *mut ffi::PyTypeObject,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        // SAFETY: `tp` is a live type (contract). Types hash by address and compare
        // by identity, so the dict lookups run no Python code, and a reducer found
        // becomes a reference at once.
        unsafe {
            if let Dispatch::Unresolved(_) = self.dispatch {
                self.resolve_dispatch()?;
            }
            match &self.dispatch {
                Dispatch::Dicts(resolved) => {
                    let DictsDispatch {
                        dicts,
                        stampable,
                        origin,
                    } = &**resolved;
                    // Read before the lookups: were a dict changed during one,
                    // the stamp recorded below would not be seen again.
                    let stamp = if *stampable {
                        Some(stamp(dicts, origin.as_ref().map(|o| &o.instance_dict)))
                    } else {
                        None
                    };
                    if let Some(o) = origin {
                        if !chain_unchanged(self.py, o, dicts, stamp)? {
                            // Its maps changed mid-dump: consult the ChainMap
                            // itself from now on, as pickle does (and resolve
                            // the table afresh in the next dump).
                            let table = o.table.bind(self.py).clone();
                            self.types.class_table = None;
                            self.dispatch = Dispatch::Mapping(table);
                            return self.dispatch_lookup(tp);
                        }
                    }
                    // Static types only (see `DispatchSeen`).
                    let seen = match (stamp, dicts_key(dicts)) {
                        (Some(stamp), Some(key))
                            if crate::py_compat::type_flags(tp) & ffi::Py_TPFLAGS_HEAPTYPE == 0
                                && ffi::Py_TYPE(tp.cast())
                                    == std::ptr::addr_of_mut!(ffi::PyType_Type) =>
                        {
                            Some((stamp, key))
                        }
                        _ => None,
                    };
                    match (seen, stamp) {
                        (Some((stamp, key)), _) => {
                            if let Some(found) =
                                self.types.dispatch_seen.find(tp as usize, stamp, &key)
                            {
                                let found = found as *mut ffi::PyObject;
                                // A reducer found is still held by its dict
                                // (see `DispatchSeen`).
                                return Ok((!found.is_null())
                                    .then(|| Bound::from_borrowed_ptr(self.py, found)));
                            }
                        }
                        (None, Some(stamp)) => {
                            if self.dispatch_miss == (tp as usize, stamp) {
                                return Ok(None);
                            }
                        }
                        (None, None) => {}
                    }
                    let mut found: *mut ffi::PyObject = std::ptr::null_mut();
                    for d in dicts.iter() {
                        // Types hash by address and compare by identity, so this
                        // lookup runs no Python code.
                        found = ffi::PyDict_GetItemWithError(d.as_ptr(), tp.cast());
                        if !found.is_null() {
                            break;
                        }
                        if !ffi::PyErr_Occurred().is_null() {
                            return Err(fetch(self.py));
                        }
                    }
                    match (seen, stamp) {
                        (Some((stamp, key)), _) => {
                            self.types.dispatch_seen.record(
                                tp as usize,
                                stamp,
                                key,
                                found as usize,
                            );
                        }
                        (None, Some(stamp)) if found.is_null() => {
                            self.dispatch_miss = (tp as usize, stamp);
                        }
                        _ => {}
                    }
                    Ok((!found.is_null()).then(|| Bound::from_borrowed_ptr(self.py, found)))
                }
                Dispatch::Mapping(table) => {
                    let table = table.clone();
                    match table.get_item(super::borrowed(self.py, tp.cast())) {
                        Ok(reducer) => Ok(Some(reducer)),
                        Err(e) if e.is_instance_of::<PyKeyError>(self.py) => Ok(None),
                        Err(e) => Err(e),
                    }
                }
                Dispatch::Unresolved(_) => Ok(None),
            }
        }
    }
}
