//! Code objects written from recorded opcodes.
//!
//! A function pickled by value carries its code object, reduced to
//! `(types.CodeType, args)` where `args` holds a dozen and a half fields:
//! counts, the bytecode, names, constants, file name, line table. Code
//! objects are immutable and their reductions are cached (`code_reduction`,
//! at the end of this file, keeps what is recorded here beside each
//! reduction), yet every `dumps` call walked `args` again,
//! item by item, to write the same opcodes: a third of the work of
//! pickling a small closure.
//!
//! At protocol 4 and above, what `args` pickles to does not depend on where
//! in the stream it is written, provided that none of its objects is in the
//! memo yet (otherwise pickle writes a `BINGET` to the earlier copy) and
//! that no frame is committed in its middle: memoizing is the index-free
//! `MEMOIZE`. So the first time the arguments are written the normal way,
//! their bytes are recorded along with the objects they memoize, in order;
//! later, when those conditions hold, the bytes are copied and the objects
//! entered in the memo under the indices the normal path would give them.
//! Only arguments made of plain data (str, bytes, int, float, bool, None,
//! tuples and frozensets of those) are recorded: saving them consults no
//! hook, and gives bytes that depend only on the objects, which are
//! immutable. (A frozenset constant is written with its items in canonical
//! order, see `canonical`: the record notes whether the order was
//! canonical, and is replayed only where it is again.) Anything else, or any doubt, takes the normal path:
//! the bytes are the same either way (tested against `pickle` and the
//! reference).

use std::sync::Arc;

use pyo3::ffi;
use pyo3::prelude::*;

use super::opcodes::REDUCE;
use super::output::FRAME_SIZE_TARGET;
use super::trail::Step;
use super::Engine;
use crate::cache::ObjectCache;

/// What is known of writing the arguments of one cached code reduction;
/// kept with the reduction in the code-object cache (`reduce`).
#[derive(Clone)]
pub(crate) enum Fragment {
    /// Not recorded yet, after this many attempts that found some of the
    /// objects already memoized.
    Unknown(u8),
    /// The arguments cannot be recorded (not plain data, or an object
    /// occurs twice in them).
    Unusable,
    Recorded(Arc<Recorded>),
}

impl Default for Fragment {
    fn default() -> Self {
        Fragment::Unknown(0)
    }
}

/// The recorded opcodes of one code object's arguments.
pub(crate) struct Recorded {
    proto: u8,
    /// Whether sets were written in canonical order (see `canonical`).
    canonical: bool,
    bytes: Box<[u8]>,
    /// The objects the bytes memoize, in the order of their `MEMOIZE`s.
    /// Borrowed from `args`: an immutable tuple of immutable objects,
    /// which this record keeps alive.
    objects: Box<[*mut ffi::PyObject]>,
    /// Held, never read: keeps the objects above alive.
    _args: Py<PyAny>,
}

// SAFETY: the raw pointers are only dereferenced by the engine with the
// GIL held, and the objects they designate are kept alive by `_args`, a
// strong reference owned by the record.
unsafe impl Send for Recorded {}
// SAFETY: as for `Send`: shared access reads the pointers, never the
// objects, except in the engine with the GIL held.
unsafe impl Sync for Recorded {}

/// Attempts at recording before giving up: arguments whose objects are
/// always memoized already when they are written (functions that share
/// names, pickled together) cannot be replayed either.
const MAX_ATTEMPTS: u8 = 8;
/// Arguments with more memoized objects, or more bytes, are not recorded.
const MAX_OBJECTS: usize = 256;
const MAX_BYTES: usize = 16 * 1024;

/// The objects saving `args` memoizes, when it is plain data in which no
/// object occurs twice; None otherwise. Mirrors the engine: str and bytes
/// are memoized when written, a non-empty tuple or a frozenset after its
/// items, ints, floats, bools and None never. In order, except for the
/// items of a frozenset (the engine may write them in another order: the
/// record takes the order from the memo).
///
/// # Safety
/// GIL held; `args` alive.
unsafe fn plain_objects(args: *mut ffi::PyObject) -> Option<Vec<*mut ffi::PyObject>> {
    // SAFETY: GIL held and `args` alive (contract), as `collect` requires.
    unsafe {
        let mut objects = Vec::with_capacity(32);
        let mut size = 0usize;
        collect(args, &mut objects, &mut size, 0)?;
        let mut sorted = objects.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return None;
        }
        Some(objects)
    }
}

/// # Safety
/// GIL held; `obj` alive.
unsafe fn collect(
    obj: *mut ffi::PyObject,
    objects: &mut Vec<*mut ffi::PyObject>,
    size: &mut usize,
    depth: usize,
) -> Option<()> {
    // SAFETY: GIL held and `obj` alive (contract); a tuple's items live as long
    // as it does, and each object is read only after its exact type was
    // checked.
    unsafe {
        let tp = ffi::Py_TYPE(obj);
        if obj == ffi::Py_None()
            || obj == ffi::Py_True()
            || obj == ffi::Py_False()
            || tp == std::ptr::addr_of_mut!(ffi::PyLong_Type)
            || tp == std::ptr::addr_of_mut!(ffi::PyFloat_Type)
        {
            return Some(());
        }
        if tp == std::ptr::addr_of_mut!(ffi::PyUnicode_Type) {
            // An upper bound of its UTF-8 size.
            *size += 4 * ffi::PyUnicode_GetLength(obj) as usize;
        } else if tp == std::ptr::addr_of_mut!(ffi::PyBytes_Type) {
            *size += ffi::PyBytes_Size(obj) as usize;
        } else if tp == std::ptr::addr_of_mut!(ffi::PyFrozenSet_Type) {
            if depth > 8 {
                return None;
            }
            // Its own items: iterating an exact frozenset runs no Python code.
            let iter = ffi::PyObject_GetIter(obj);
            if iter.is_null() {
                ffi::PyErr_Clear();
                return None;
            }
            let mut complete = true;
            loop {
                let item = ffi::PyIter_Next(iter);
                if item.is_null() {
                    if !ffi::PyErr_Occurred().is_null() {
                        ffi::PyErr_Clear();
                        complete = false;
                    }
                    break;
                }
                // Held by the frozenset, which `args` holds.
                ffi::Py_DECREF(item);
                if collect(item, objects, size, depth + 1).is_none() {
                    complete = false;
                    break;
                }
            }
            ffi::Py_DECREF(iter);
            if !complete {
                return None;
            }
        } else if tp == std::ptr::addr_of_mut!(ffi::PyTuple_Type) {
            if depth > 8 {
                return None;
            }
            let len = crate::py_compat::tuple_size(obj);
            if len == 0 {
                // Written as EMPTY_TUPLE, never memoized.
                return Some(());
            }
            for i in 0..len {
                collect(
                    crate::py_compat::tuple_item(obj, i),
                    objects,
                    size,
                    depth + 1,
                )?;
            }
        } else {
            return None;
        }
        objects.push(obj);
        (objects.len() <= MAX_OBJECTS && *size <= MAX_BYTES).then_some(())
    }
}

/// Whether `a` and `b` hold the same objects (each holds distinct ones).
fn same_objects(a: &[*mut ffi::PyObject], b: &[*mut ffi::PyObject]) -> bool {
    if a == b {
        return true;
    }
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

impl<'s, 'py> Engine<'s, 'py> {
    /// Whether recorded bytes may stand for what `save` would write: a
    /// protocol with index-free memoizing and frames, no hook that `save`
    /// would consult for plain data, and a memo.
    fn fragments_apply(&self) -> bool {
        self.proto >= 4
            && super::fast_paths::enabled()
            && !self.fast
            && self.persistent_id.is_none()
            && self.reducer_override.is_none()
            && self.out.framing()
    }

    /// Writes `rv`, the cached reduction of the code object `code` by
    /// cloudpickle's own `_code_reduce` (`(types.CodeType, args)`), as
    /// `save_reduce` would, with its arguments from recorded bytes when
    /// `fragment` has them and they apply here (see module docs); otherwise
    /// the normal way, recording them when they qualify. False when `rv`
    /// has another shape (the caller then writes it the general way).
    ///
    /// # Safety
    /// GIL held; `code` and `rv` alive; no parked memo entries (code
    /// objects are met outside the pure region, see `Engine::leave_pure`).
    pub(super) unsafe fn save_code_reduction(
        &mut self,
        code: *mut ffi::PyObject,
        rv: &Bound<'py, PyAny>,
        fragment: Fragment,
    ) -> PyResult<bool> {
        // SAFETY: `code` and `rv` are alive (contract); `callable` and `args` are
        // items of `rv`, alive as long as it is.
        unsafe {
            let rv = rv.as_ptr();
            if ffi::PyTuple_CheckExact(rv) == 0 || crate::py_compat::tuple_size(rv) != 2 {
                return Ok(false);
            }
            let callable = crate::py_compat::tuple_item(rv, 0);
            let args = crate::py_compat::tuple_item(rv, 1);
            if callable != crate::py_compat::code_type().cast()
                || ffi::PyTuple_CheckExact(args) == 0
            {
                return Ok(false);
            }
            let by_value = self.by_value_callable(callable);
            self.canonical_scope(by_value, |e| {
                e.save(callable, false)
                    .map_err(|err| e.failed_at(Step::Callable, callable, err))?;
                e.save_code_args(code, rv, args, fragment)
                    .map_err(|err| e.failed_at(Step::Args(0), args, err))?;
                e.out.byte(REDUCE);
                e.memoize_reduced(code)
            })?;
            Ok(true)
        }
    }

    /// Saves `args`, the arguments of the reduction `rv` of `code` (see
    /// `save_code_reduction`).
    ///
    /// # Safety
    /// `code`, `rv` (its cached reduction) and `args` (the arguments tuple
    /// of `rv`) must be alive.
    unsafe fn save_code_args(
        &mut self,
        code: *mut ffi::PyObject,
        rv: *mut ffi::PyObject,
        args: *mut ffi::PyObject,
        fragment: Fragment,
    ) -> PyResult<()> {
        // SAFETY: `code`, `rv` and `args` are alive (contract); `plain_objects`
        // walks `args`, which the caller holds.
        unsafe {
            if !self.fragments_apply() {
                return self.save(args, false);
            }
            match fragment {
                Fragment::Recorded(recorded) => {
                    if recorded.proto == self.proto
                        && recorded.canonical == self.canonical()
                        && self.replay(&recorded)?
                    {
                        return Ok(());
                    }
                    self.save(args, false)
                }
                Fragment::Unusable => self.save(args, false),
                Fragment::Unknown(attempts) => match plain_objects(args) {
                    Some(objects) => self.save_recording(code, rv, args, objects, attempts),
                    None => {
                        set_code_fragment(code, rv, Fragment::Unusable);
                        self.save(args, false)
                    }
                },
            }
        }
    }

    /// Whether none of `objects` is in the memo.
    fn none_memoized(&self, objects: &[*mut ffi::PyObject]) -> bool {
        objects.iter().all(|&o| self.memo.get(o).is_none())
    }

    /// Writes `recorded` and memoizes its objects; false (nothing written)
    /// when the normal path could write something else here.
    fn replay(&mut self, recorded: &Recorded) -> PyResult<bool> {
        // SAFETY: every object of `recorded` is kept alive by `recorded._args`
        // (see `Recorded`), as `Memo::put` requires.
        unsafe {
            // What `save(args)` does first.
            self.boundary()?;
            if self.out.open_frame_len() + recorded.bytes.len() >= FRAME_SIZE_TARGET
                || !self.none_memoized(&recorded.objects)
                || self.memo.len() + recorded.objects.len() >= u32::MAX as usize
            {
                return Ok(false);
            }
            self.out.bytes(&recorded.bytes);
            // None of them is in the memo (checked above), and no two are
            // the same (see `plain_objects`).
            self.memo.put_absent(&recorded.objects);
            Ok(true)
        }
    }

    /// Saves `args` the normal way and records the bytes when they could
    /// be replayed elsewhere: nothing was in the memo before, and the frame
    /// open at the start is still open at the end.
    ///
    /// # Safety
    /// As for `save_code_args`, and `objects` must be what `plain_objects(args)`
    /// returned.
    unsafe fn save_recording(
        &mut self,
        code: *mut ffi::PyObject,
        rv: *mut ffi::PyObject,
        args: *mut ffi::PyObject,
        objects: Vec<*mut ffi::PyObject>,
        attempts: u8,
    ) -> PyResult<()> {
        // SAFETY: `args` is alive (contract), and so are `objects`, which it holds;
        // the record keeps its own reference to `args` for them.
        unsafe {
            self.boundary()?;
            if !self.none_memoized(&objects) {
                self.save(args, false)?;
                let fragment = if attempts + 1 >= MAX_ATTEMPTS {
                    Fragment::Unusable
                } else {
                    Fragment::Unknown(attempts + 1)
                };
                set_code_fragment(code, rv, fragment);
                return Ok(());
            }
            let recordable = self.out.frame_is_open();
            let start = self.out.position();
            let frame = self.out.frame_mark();
            let memo_start = self.memo.len();
            let entered_start = self.memo.entered();
            self.save(args, false)?;
            // The objects in the order they were memoized: `objects` with
            // the items of each frozenset in the order they were written.
            let entered = self.memo.entered_since(entered_start);
            let bytes = if recordable
                && self.out.frame_mark() == frame
                && self.memo.len() - memo_start == objects.len()
                && entered.len() == objects.len()
                && same_objects(entered, &objects)
            {
                self.out.copy_since(start)
            } else {
                None
            };
            if let Some(bytes) = bytes {
                let recorded = Recorded {
                    proto: self.proto,
                    canonical: self.canonical(),
                    bytes,
                    objects: entered.into(),
                    _args: Bound::from_borrowed_ptr(self.py, args).unbind(),
                };
                set_code_fragment(code, rv, Fragment::Recorded(Arc::new(recorded)));
            }
            Ok(())
        }
    }
}

/// A cached code reduction: its reduction, and what the engine recorded of
/// writing the reduction's arguments (see `pickler::fragment`). Code objects
/// are immutable, so their reductions never go stale.
struct CodeEntry {
    rv: Py<PyAny>,
    fragment: Fragment,
}

static CODE_CACHE: ObjectCache<CodeEntry> = ObjectCache::new(4096);

/// `reducer(code)` for `reducer` cloudpickle's own `_code_reduce` (the
/// caller checked it: the reduction is made natively, without calling it)
/// and `code` an exact code object: from the cache (code objects are
/// immutable, so their reductions never go stale), with what the engine
/// recorded of writing it.
pub(crate) fn code_reduction<'py>(
    reducer: &Bound<'py, PyAny>,
    code: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyAny>, Fragment)> {
    let py = code.py();
    let cached = CODE_CACHE.get(code.as_ptr(), |entry| {
        (entry.rv.bind(py).clone(), entry.fragment.clone())
    });
    if let Some(found) = cached {
        return Ok(found);
    }
    debug_assert!(crate::reduce::is_code_reduce(reducer));
    let rv = crate::reduce::code_reduction::code_reduce(code)?;
    CODE_CACHE.insert(
        code,
        CodeEntry {
            rv: rv.clone().unbind(),
            fragment: Fragment::default(),
        },
    );
    Ok((rv, Fragment::default()))
}

/// Records `fragment` for the cached reduction `rv` of `code` (nothing
/// when the cache has another reduction for it by now).
pub(crate) fn set_code_fragment(
    code: *mut ffi::PyObject,
    rv: *mut ffi::PyObject,
    fragment: Fragment,
) {
    let previous = CODE_CACHE
        .update(code, |entry| {
            (entry.rv.as_ptr() == rv).then(|| std::mem::replace(&mut entry.fragment, fragment))
        })
        .flatten();
    // Released outside the lock: dropping references may run finalizers.
    drop(previous);
}
