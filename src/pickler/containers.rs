//! Lists, dicts, tuples, sets and frozensets, batched exactly as `_pickle.c`
//! batches them.

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyIterator;

use super::opcodes::*;
use super::trail::Step;
use super::Engine;
use crate::errors::{fetch, owned};
use crate::reduce::reduction;

/// Saves item `index` of the list `list`, holding a reference to it
/// meanwhile: Python code run while it is saved (its reducer, a hook,
/// `file.write` when a full frame is flushed) may drop the list's own
/// reference, and the failure trail names the item after its save failed.
/// An int or float is written inline when nothing can run before it is
/// written: no persistent_id hook, and no full frame to hand to
/// `file.write` at this opcode boundary (which `save` would do first).
///
/// Requires what `save` does: GIL held, `list` an exact list alive for the
/// whole call, `index` in bounds.
macro_rules! save_list_item {
    ($self:ident, $list:expr, $index:expr) => {{
        let index: ffi::Py_ssize_t = $index;
        let item = ffi::PyList_GET_ITEM($list, index);
        let tp = ffi::Py_TYPE(item);
        let inline = $self.persistent_id.is_none() && !$self.out.frame_full();
        if inline && tp == std::ptr::addr_of_mut!(ffi::PyFloat_Type) {
            $self.save_float(item);
            Ok(())
        } else if inline
            && tp == std::ptr::addr_of_mut!(ffi::PyLong_Type)
            && $self.save_i64_long(item)
        {
            Ok(())
        } else {
            // Read before our own reference is taken.
            let transient = $self.is_transient(item);
            ffi::Py_INCREF(item);
            let r = $self
                .save(item, transient)
                .map_err(|e| $self.failed_at(Step::Item(index), item, e));
            ffi::Py_DECREF(item);
            r
        }
    }};
}

/// Whether `obj` is an exact int or float (where a run of atoms may start).
///
/// # Safety
/// `obj` must be alive.
#[inline(always)]
unsafe fn is_int_or_float(obj: *mut ffi::PyObject) -> bool {
    // SAFETY: `obj` is alive (contract): its type may be read.
    let tp = unsafe { ffi::Py_TYPE(obj) };
    tp == std::ptr::addr_of_mut!(ffi::PyFloat_Type)
        || tp == std::ptr::addr_of_mut!(ffi::PyLong_Type)
}

/// The next item of `iter`, `None` at its end, or the error it raised.
#[inline(always)]
fn next_item<'py>(iter: &Bound<'py, PyIterator>) -> PyResult<Option<Bound<'py, PyAny>>> {
    // SAFETY: `iter` is an alive iterator (its type says so) and the GIL is
    // held (a Bound); PyIter_Next returns a new reference, or null at the
    // end or with an error set.
    unsafe {
        let item = ffi::PyIter_Next(iter.as_ptr());
        if item.is_null() {
            if !ffi::PyErr_Occurred().is_null() {
                return Err(fetch(iter.py()));
            }
            return Ok(None);
        }
        Ok(Some(Bound::from_owned_ptr(iter.py(), item)))
    }
}

impl<'s, 'py> Engine<'s, 'py> {
    /// Runs `save` for a list or dict, with fast mode's cycle detection.
    ///
    /// # Safety
    /// `obj` must be alive for the whole call.
    unsafe fn fast_guarded(
        &mut self,
        obj: *mut ffi::PyObject,
        save: impl FnOnce(&mut Self) -> PyResult<()>,
    ) -> PyResult<()> {
        // SAFETY: `obj` is alive (contract), as `fast_enter` requires.
        unsafe {
            if !self.fast {
                return save(self);
            }
            self.fast_enter(obj)?;
            let r = save(self);
            self.fast_leave(obj);
            r
        }
    }

    /// Whether a child is held only by the container being traversed. Such
    /// a child is not in the memo table (whose entries hold references), so
    /// `save` skips looking it up; in the pure region it may also be parked
    /// (see `memo`). Read right before saving the child: Python code run
    /// earlier may have added references.
    ///
    /// # Safety
    /// `item` must be alive.
    #[inline(always)]
    unsafe fn is_transient(&self, item: *mut ffi::PyObject) -> bool {
        // SAFETY: `item` is alive (contract).
        (unsafe { ffi::Py_REFCNT(item) }) == 1
    }

    /// # Safety
    /// `obj` must be an exact list, alive for the whole call.
    pub(super) unsafe fn save_list(
        &mut self,
        obj: *mut ffi::PyObject,
        transient: bool,
    ) -> PyResult<()> {
        // SAFETY: `obj` is an alive exact list (contract), as `save_list_items`
        // requires.
        unsafe { self.fast_guarded(obj, |e| e.save_list_items(obj, transient)) }
    }

    /// # Safety
    /// `obj` must be an exact list, alive for the whole call.
    unsafe fn save_list_items(&mut self, obj: *mut ffi::PyObject, transient: bool) -> PyResult<()> {
        // SAFETY: `obj` is an alive exact list (contract). Each item is read at an
        // index checked against the list's current size, and `save_list_item!`
        // holds it while Python code can run (its reducer may remove it).
        unsafe {
            if self.bin {
                self.out.byte(EMPTY_LIST);
            } else {
                self.out.bytes(&[MARK, LIST]);
            }
            self.memo_put(obj, transient)?;
            let len = ffi::PyList_GET_SIZE(obj);
            if len == 0 {
                return Ok(());
            }
            if !self.bin {
                // Protocol 0 has no APPENDS.
                let mut i = 0;
                while i < ffi::PyList_GET_SIZE(obj) {
                    save_list_item!(self, obj, i)?;
                    self.out.byte(APPEND);
                    i += 1;
                }
                return Ok(());
            }
            if len == 1 {
                save_list_item!(self, obj, 0)?;
                self.out.byte(APPEND);
                return Ok(());
            }
            // Python 3.14's pickle refuses a list whose size changed while its
            // items were being saved (by their reducers).
            let fixed_size = self.c.py_minor >= 14;
            let atom_runs = self.fast_paths
                && self.persistent_id.is_none()
                && super::atoms::compact_layout_checked(self.c.py_minor);
            let mut total = 0;
            loop {
                if self.c.py_minor >= 15 && ffi::PyList_GET_SIZE(obj) - total == 1 {
                    // Python 3.15's pickle writes a last batch of one item as
                    // APPEND, as pickle.py does.
                    save_list_item!(self, obj, total)?;
                    self.out.byte(APPEND);
                    break;
                }
                self.out.byte(MARK);
                let mut batch = 0;
                while total < ffi::PyList_GET_SIZE(obj) {
                    if atom_runs && is_int_or_float(ffi::PyList_GET_ITEM(obj, total)) {
                        // Ints and floats up to the end of the batch (or the
                        // first other item, or a full frame): no Python code
                        // runs meanwhile, so the size cannot change.
                        let end = ffi::PyList_GET_SIZE(obj)
                            .min(total + (BATCHSIZE - batch) as ffi::Py_ssize_t);
                        let n = self.save_atom_run(obj, total, end);
                        total += n;
                        batch += n as usize;
                        if batch == BATCHSIZE || total >= ffi::PyList_GET_SIZE(obj) {
                            break;
                        }
                    }
                    save_list_item!(self, obj, total)?;
                    total += 1;
                    if fixed_size && ffi::PyList_GET_SIZE(obj) != len {
                        return Err(pyo3::exceptions::PyRuntimeError::new_err(
                            "list changed size during iteration",
                        ));
                    }
                    batch += 1;
                    if batch == BATCHSIZE {
                        break;
                    }
                }
                self.out.byte(APPENDS);
                if total >= ffi::PyList_GET_SIZE(obj) {
                    break;
                }
            }
            Ok(())
        }
    }

    /// Writes items `start..end` of the list `obj` while they are exact
    /// floats or exact ints of one digit (what `_pickle.c` writes as
    /// BINFLOAT, BININT1, BININT2 or BININT), with raw writes into room
    /// reserved once; returns how many it wrote. Stops before the first
    /// other item and before an item at whose start the open frame is full:
    /// there `save` commits the frame first, and `_pickle.c` commits frames
    /// only at those boundaries, so the caller saves that item the general
    /// way. A protocol-1+ fast path, with no persistent_id hook.
    ///
    /// No Python code runs and nothing is allocated (but the buffer's room),
    /// so the items (borrowed) stay alive and the list unchanged meanwhile.
    ///
    /// # Safety
    /// `obj` an alive exact list of at least `end` items, `start <= end`;
    /// GIL held; `self.bin`; the compact int layout checked
    /// (`compact_layout_checked`).
    #[inline(never)]
    unsafe fn save_atom_run(
        &mut self,
        obj: *mut ffi::PyObject,
        start: ffi::Py_ssize_t,
        end: ffi::Py_ssize_t,
    ) -> ffi::Py_ssize_t {
        // SAFETY: `obj` is an alive exact list of at least `end` items and no
        // Python code runs in this function (contract), so `items[start..end]`
        // are alive objects; each is read as a float or an int only after its
        // exact type was checked. Room for 9 bytes per item (the longest
        // written) was reserved before the first write, and `len` counts the
        // bytes written so far, all initialised before `set_len`.
        unsafe {
            let Some(items) = crate::py_compat::list_items(obj) else {
                return 0;
            };
            let float_type = std::ptr::addr_of_mut!(ffi::PyFloat_Type);
            let long_type = std::ptr::addr_of_mut!(ffi::PyLong_Type);
            if start >= end {
                return 0;
            }
            let tp = ffi::Py_TYPE(*items.offset(start));
            if tp != float_type && tp != long_type {
                return 0;
            }
            // What the first write would do anyway.
            self.out.open_frame_if_needed(0);
            let full_at = self.out.full_at_len();
            let count = (end - start) as usize;
            self.out.buf.reserve(count * 9);
            let base = self.out.buf.as_mut_ptr();
            let mut len = self.out.buf.len();
            let minor = self.c.py_minor;
            let mut i = start;
            while i < end {
                if len >= full_at {
                    break;
                }
                let item = *items.offset(i);
                let tp = ffi::Py_TYPE(item);
                let p = base.add(len);
                if tp == float_type {
                    let x = ffi::PyFloat_AS_DOUBLE(item);
                    *p = BINFLOAT;
                    std::ptr::write_unaligned(p.add(1) as *mut [u8; 8], x.to_be_bytes());
                    len += 9;
                } else if tp == long_type {
                    let Some(v) = super::atoms::read_compact(item, minor) else {
                        break;
                    };
                    // One digit: within i32.
                    let (word, n) = if (0..=0xff).contains(&v) {
                        (u64::from(BININT1) | (v as u64) << 8, 2)
                    } else if (0..=0xffff).contains(&v) {
                        (u64::from(BININT2) | (v as u64) << 8, 3)
                    } else {
                        (u64::from(BININT) | u64::from(v as i32 as u32) << 8, 5)
                    };
                    std::ptr::write_unaligned(p as *mut [u8; 8], word.to_le_bytes());
                    len += n;
                } else {
                    break;
                }
                i += 1;
            }
            self.out.buf.set_len(len);
            i - start
        }
    }

    /// # Safety
    /// `obj` must be an exact dict, alive for the whole call.
    pub(super) unsafe fn save_dict(
        &mut self,
        obj: *mut ffi::PyObject,
        transient: bool,
    ) -> PyResult<()> {
        // SAFETY: `obj` is an alive exact dict (contract), as `save_dict_items`
        // requires.
        unsafe { self.fast_guarded(obj, |e| e.save_dict_items(obj, transient)) }
    }

    /// # Safety
    /// `obj` must be an exact dict, alive for the whole call.
    unsafe fn save_dict_items(&mut self, obj: *mut ffi::PyObject, transient: bool) -> PyResult<()> {
        // SAFETY: `obj` is an alive exact dict (contract), whose struct may be read.
        // `PyDict_Next` stays in bounds even after Python code resized the dict,
        // and `save_item_pair` holds each entry while it is saved.
        unsafe {
            if self.bin {
                self.out.byte(EMPTY_DICT);
            } else {
                self.out.bytes(&[MARK, DICT]);
            }
            self.memo_put(obj, transient)?;
            let size = ffi::PyDict_Size(obj);
            if size == 0 {
                return Ok(());
            }
            // SAFETY: `obj` is an exact dict.
            let combined = crate::py_compat::dict_is_combined(obj);
            let mut entries = crate::py_compat::DictIter::new();
            let mut key = std::ptr::null_mut();
            let mut value = std::ptr::null_mut();
            if !self.bin {
                while entries.next(obj, &mut key, &mut value) {
                    self.save_item_pair(combined, key, value)?;
                    self.out.byte(SETITEM);
                    if ffi::PyDict_Size(obj) != size || entries.changed() {
                        return Err(PyRuntimeError::new_err(
                            "dictionary changed size during iteration",
                        ));
                    }
                }
                return Ok(());
            }
            if size == 1 {
                if !entries.next(obj, &mut key, &mut value) {
                    return Err(PyRuntimeError::new_err(
                        "dictionary changed size during iteration",
                    ));
                }
                self.save_item_pair(combined, key, value)?;
                self.out.byte(SETITEM);
                return Ok(());
            }
            // Python 3.15's pickle batches as pickle.py does: a last batch of one
            // item is a SETITEM, and no empty batch follows a full one.
            let py_batching = self.c.py_minor >= 15;
            let mut total: ffi::Py_ssize_t = 0;
            loop {
                if py_batching && size - total == 1 {
                    if !entries.next(obj, &mut key, &mut value) {
                        return Err(PyRuntimeError::new_err(
                            "dictionary changed size during iteration",
                        ));
                    }
                    self.save_item_pair(combined, key, value)?;
                    self.out.byte(SETITEM);
                    if ffi::PyDict_Size(obj) != size || entries.changed() {
                        return Err(PyRuntimeError::new_err(
                            "dictionary changed size during iteration",
                        ));
                    }
                    break;
                }
                self.out.byte(MARK);
                let mut batch = 0;
                while entries.next(obj, &mut key, &mut value) {
                    self.save_item_pair(combined, key, value)?;
                    batch += 1;
                    if batch == BATCHSIZE {
                        break;
                    }
                }
                total += batch as ffi::Py_ssize_t;
                self.out.byte(SETITEMS);
                if ffi::PyDict_Size(obj) != size || entries.changed() {
                    return Err(PyRuntimeError::new_err(
                        "dictionary changed size during iteration",
                    ));
                }
                // Before 3.15, as in `_pickle.c`, a full batch is always followed
                // by another one, even if empty.
                if batch != BATCHSIZE || (py_batching && total == size) {
                    break;
                }
            }
            Ok(())
        }
    }

    /// A dict entry: the value may be transient, and so may the key of a
    /// combined-table dict (a split-table dict shares its keys with other
    /// dicts: its keys may be reached again).
    ///
    /// # Safety
    /// `key` and `value` must be alive: an entry just read from a dict,
    /// before any Python code ran.
    #[inline(always)]
    unsafe fn save_item_pair(
        &mut self,
        combined: bool,
        key: *mut ffi::PyObject,
        value: *mut ffi::PyObject,
    ) -> PyResult<()> {
        // SAFETY: `key` and `value` are alive (contract): our references keep them
        // so while Python code runs and until the failure trail has named them.
        unsafe {
            ffi::Py_INCREF(key);
            ffi::Py_INCREF(value);
            let tk = combined && self.is_transient_value(key);
            // A str key met before (an attribute name, say) is a memo
            // reference: written inline when `save` would write just that.
            let key_saved = if !tk && ffi::PyUnicode_CheckExact(key) != 0 {
                self.save_memoized_inline(key)
            } else {
                Ok(false)
            };
            let r = match key_saved.and_then(|done| if done { Ok(()) } else { self.save(key, tk) })
            {
                // After the key: saving it may have run Python code.
                Ok(()) => self.save_dict_value(value).map_err(|e| {
                    let key_obj = pyo3::Bound::from_borrowed_ptr(self.py, key).unbind();
                    self.failed_at(Step::Value(key_obj), value, e)
                }),
                Err(e) => {
                    let key_obj = pyo3::Bound::from_borrowed_ptr(self.py, key).unbind();
                    Err(self.failed_at(Step::Key(key_obj), key, e))
                }
            };
            ffi::Py_DECREF(key);
            ffi::Py_DECREF(value);
            r
        }
    }

    /// Saves a dict value we hold a reference to. An int or float is
    /// written inline when nothing can run before it is written (as
    /// `save_list_item!` does): no persistent_id hook, no full frame to
    /// commit at this opcode boundary.
    ///
    /// # Safety
    /// `value` must be alive for the whole call.
    #[inline(always)]
    unsafe fn save_dict_value(&mut self, value: *mut ffi::PyObject) -> PyResult<()> {
        // SAFETY: `value` is alive (contract), and of the exact type each inline
        // writer handles (checked right before).
        unsafe {
            if self.fast_paths && self.persistent_id.is_none() && !self.out.frame_full() {
                let tp = ffi::Py_TYPE(value);
                if tp == std::ptr::addr_of_mut!(ffi::PyFloat_Type) {
                    self.save_float(value);
                    return Ok(());
                }
                if tp == std::ptr::addr_of_mut!(ffi::PyLong_Type) && self.save_i64_long(value) {
                    return Ok(());
                }
            }
            self.save(value, self.is_transient_value(value))
        }
    }

    /// `is_transient` for a dict key or value we already hold one reference
    /// to.
    ///
    /// # Safety
    /// `value` must be alive.
    #[inline(always)]
    unsafe fn is_transient_value(&self, value: *mut ffi::PyObject) -> bool {
        // SAFETY: `value` is alive (contract).
        (unsafe { ffi::Py_REFCNT(value) }) == 2
    }

    /// # Safety
    /// `obj` must be an exact tuple, alive for the whole call.
    pub(super) unsafe fn save_tuple(
        &mut self,
        obj: *mut ffi::PyObject,
        transient: bool,
    ) -> PyResult<()> {
        // SAFETY: `obj` is an alive exact tuple (contract); a tuple never drops its
        // items, so the items it holds (read in bounds) live as long as it does.
        unsafe {
            let len = crate::py_compat::tuple_size(obj);
            if len == 0 {
                if self.bin {
                    self.out.byte(EMPTY_TUPLE);
                } else {
                    self.out.bytes(&[MARK, TUPLE]);
                }
                return Ok(());
            }
            let small = len <= 3 && self.proto >= 2;
            if !small {
                self.out.byte(MARK);
            }
            for i in 0..len {
                // A tuple is memoized after its items, so a recursive tuple is
                // traversed twice (see below): in the pure region, an item only
                // it holds could be parked the first time and not found the
                // second. A transient tuple cannot be recursive, though: its
                // only referrer is its parent, which is in the table or
                // transient itself up to an ancestor that is, so no path leads
                // back to it; an item only it holds is reached once too. (The
                // root tuple is transient for another reason, see `dump`.)
                // Outside the pure region every memoized object is in the
                // table, so the item's count alone tells.
                let item = crate::py_compat::tuple_item(obj, i);
                let t = self.is_transient(item)
                    && (!self.transient_memo || (transient && obj != self.root));
                self.save(item, t)
                    .map_err(|e| self.failed_at(Step::Item(i), item, e))?;
            }
            // Saving the items memoized the tuple itself: it is recursive, so
            // drop what was pushed and fetch it from the memo.
            if let Some(idx) = self.memo.get(obj) {
                if small {
                    for _ in 0..len {
                        self.out.byte(POP);
                    }
                } else if self.bin {
                    self.out.byte(POP_MARK);
                } else {
                    for _ in 0..=len {
                        self.out.byte(POP);
                    }
                }
                return self.memo_get(idx);
            }
            if small {
                self.out
                    .byte([EMPTY_TUPLE, TUPLE1, TUPLE2, TUPLE3][len as usize]);
            } else {
                self.out.byte(TUPLE);
            }
            self.memo_put(obj, transient)
        }
    }

    /// # Safety
    /// `obj` must be an exact set, alive for the whole call.
    pub(super) unsafe fn save_set(
        &mut self,
        obj: *mut ffi::PyObject,
        transient: bool,
    ) -> PyResult<()> {
        // SAFETY: `obj` is an alive exact set (contract); its items come from an
        // iterator as new references, held while they are saved.
        unsafe {
            if self.proto < 4 {
                return self.save_set_by_reduce(obj, std::ptr::addr_of_mut!(ffi::PySet_Type));
            }
            self.out.byte(EMPTY_SET);
            self.memo_put(obj, transient)?;
            let size = ffi::PySet_Size(obj);
            if size == 0 {
                return Ok(());
            }
            let iter = self.set_items(obj)?;
            // From Python 3.15 on, no empty batch follows a full one.
            let py_batching = self.c.py_minor >= 15;
            let mut total: ffi::Py_ssize_t = 0;
            loop {
                self.out.byte(MARK);
                let mut batch = 0;
                while let Some(item) = next_item(&iter)? {
                    self.save(item.as_ptr(), false)
                        .map_err(|e| self.failed_at(Step::SetItem, item.as_ptr(), e))?;
                    batch += 1;
                    if batch == BATCHSIZE {
                        break;
                    }
                }
                total += batch as ffi::Py_ssize_t;
                self.out.byte(ADDITEMS);
                if ffi::PySet_Size(obj) != size {
                    return Err(PyRuntimeError::new_err("set changed size during iteration"));
                }
                if batch != BATCHSIZE || (py_batching && total == size) {
                    break;
                }
            }
            Ok(())
        }
    }

    /// Protocols < 4 have no set opcodes: `(set, (list(obj),))`.
    ///
    /// # Safety
    /// `obj` must be an alive set or frozenset and `tp` its exact type.
    unsafe fn save_set_by_reduce(
        &mut self,
        obj: *mut ffi::PyObject,
        tp: *mut ffi::PyTypeObject,
    ) -> PyResult<()> {
        // SAFETY: `obj` is an alive set or frozenset and `tp` its (static) type
        // (contract); the reduction built here is held while it is saved.
        unsafe {
            let items = if self.canonical() {
                self.canonical_items(obj)?.into_any()
            } else {
                owned(self.py, ffi::PySequence_List(obj))?
            };
            let rv = reduction(&super::borrowed(self.py, tp.cast()), (items,))?;
            self.save_reduce(rv.as_ptr(), Some(obj))
        }
    }

    /// An iterator over the items of the set or frozenset `obj`: in
    /// canonical order inside by-value reductions, else the set's own.
    ///
    /// # Safety
    /// `obj` must be an alive set or frozenset.
    unsafe fn set_items(&mut self, obj: *mut ffi::PyObject) -> PyResult<Bound<'py, PyIterator>> {
        // SAFETY: `obj` is alive (contract), as is the canonical list while
        // the iterator is made (the iterator then holds it);
        // PyObject_GetIter returns a new reference or null, and what it
        // returns passed its iterator check.
        unsafe {
            let iter = if self.canonical() {
                let items = self.canonical_items(obj)?;
                owned(self.py, ffi::PyObject_GetIter(items.as_ptr()))?
            } else {
                owned(self.py, ffi::PyObject_GetIter(obj))?
            };
            Ok(iter.cast_into_unchecked())
        }
    }

    /// # Safety
    /// `obj` must be an exact frozenset, alive for the whole call.
    pub(super) unsafe fn save_frozenset(
        &mut self,
        obj: *mut ffi::PyObject,
        transient: bool,
    ) -> PyResult<()> {
        // SAFETY: `obj` is an alive exact frozenset (contract); its items come from
        // an iterator as new references, held while they are saved.
        unsafe {
            if self.proto < 4 {
                return self.save_set_by_reduce(obj, std::ptr::addr_of_mut!(ffi::PyFrozenSet_Type));
            }
            self.out.byte(MARK);
            let iter = self.set_items(obj)?;
            while let Some(item) = next_item(&iter)? {
                self.save(item.as_ptr(), false)
                    .map_err(|e| self.failed_at(Step::SetItem, item.as_ptr(), e))?;
            }
            if let Some(idx) = self.memo.get(obj) {
                self.out.byte(POP_MARK);
                return self.memo_get(idx);
            }
            self.out.byte(FROZENSET);
            self.memo_put(obj, transient)
        }
    }

    /// Bytearrays: BYTEARRAY8 at protocol 5, `bytearray(bytes)` below.
    ///
    /// # Safety
    /// `obj` must be an exact bytearray, alive for the whole call.
    pub(super) unsafe fn save_bytearray(
        &mut self,
        obj: *mut ffi::PyObject,
        transient: bool,
    ) -> PyResult<()> {
        // SAFETY: `obj` is an alive exact bytearray (contract). Its buffer is
        // read only until `file.write` can run: `write_bytes_like` hands
        // `file.write` the bytearray itself.
        unsafe {
            let size = ffi::PyByteArray_Size(obj) as usize;
            if self.proto < 5 {
                let tp = super::borrowed(
                    self.py,
                    std::ptr::addr_of_mut!(ffi::PyByteArray_Type).cast(),
                );
                let rv = if size == 0 {
                    reduction(&tp, ())?
                } else {
                    reduction(&tp, (owned(self.py, ffi::PyBytes_FromObject(obj))?,))?
                };
                return self.save_reduce(rv.as_ptr(), Some(obj));
            }
            // The bytearray owns `size` bytes there until Python code runs
            // (`file.write` on the bypass path, which receives the bytearray
            // itself).
            let data =
                super::atoms::RawBytes::new(ffi::PyByteArray_AsString(obj) as *const u8, size);
            self.write_bytes_like(
                &super::atoms::header_u64(BYTEARRAY8, size as u64),
                data,
                Some(obj),
            )?;
            self.memo_put(obj, transient)
        }
    }
}
