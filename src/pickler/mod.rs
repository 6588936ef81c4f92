//! The pickling engine: walks the object graph and writes opcodes.
//!
//! `save` follows the order of CPython's `_pickle.c` `save()` exactly, so
//! that `persistent_id`, `reducer_override`, the dispatch tables and the memo
//! behave as with `pickle`, and builtin data pickles to the same bytes:
//! persistent_id, atoms (not memoized), the memo, str/bytes, containers,
//! `reducer_override`, type-specific savers and dispatch tables, then
//! `__reduce_ex__` / `__reduce__`.
//!
//! The engine works on borrowed raw object pointers on its hot path. Every
//! function taking one requires the GIL to be held (the engine only exists
//! inside a `Python<'py>` token's lifetime) and the object to be alive for
//! the duration of the call, which callers guarantee by holding a reference
//! (their own, or their container's while no Python code can run).

pub mod fast_paths;
pub mod memo;
pub mod opcodes;
pub mod output;

mod atoms;
mod buffer;
pub(crate) mod canonical;
mod containers;
mod dispatch;
pub(crate) mod fragment;
mod function_writer;
mod global;
mod instance;
mod partial;
mod reduce;
pub(crate) mod tracker_id;
mod trail;

use pyo3::exceptions::PyRecursionError;
use pyo3::ffi;
use pyo3::prelude::*;

use crate::errors::fetch;
use crate::py::{cache, Cache};
use dispatch::Dispatch;
pub use dispatch::DispatchSource;
pub use instance::TypeCache;
use memo::Memo;
use opcodes::*;
use output::Output;

/// How a dump is configured; mirrors the attributes of a `pickle.Pickler`.
pub struct Options<'py> {
    pub proto: u8,
    /// `file.write`, when pickling to a file.
    pub write: Option<Bound<'py, PyAny>>,
    pub buffer_callback: Option<Bound<'py, PyAny>>,
    /// A Python-level `reducer_override` (a subclass's); `None` means the
    /// engine's own.
    pub reducer_override: Option<Bound<'py, PyAny>>,
    pub persistent_id: Option<Bound<'py, PyAny>>,
    pub dispatch_table: DispatchSource<'py>,
    /// The pickler's `globals_ref` (None for one-shot dumps: a fresh one is
    /// made when first needed).
    pub globals_ref: Option<Bound<'py, pyo3::types::PyDict>>,
    /// Allow the transient-object memo shortcut (one-shot dumps only: a
    /// persistent memo must hold every object, as pickle's does).
    pub transient_memo: bool,
    /// pickle's (deprecated) fast mode: no memo at all, cycles detected.
    pub fast: bool,
    /// Write sets in canonical order from the start (see `canonical`).
    pub canonical: bool,
}

/// The mutable state an engine run borrows: reused across calls on one
/// thread.
pub struct State {
    pub out: Output,
    pub memo: Memo,
    pub types: TypeCache,
    /// Lowest address of this thread's stack, if known.
    stack_limit: Option<usize>,
}

impl State {
    /// Records the current thread's stack bounds (a Pickler may be used
    /// from another thread than the one that created it).
    pub fn refresh_stack_limit(&mut self) {
        self.stack_limit = stacker::remaining_stack().map(|r| stack_pointer() - r);
    }
}

impl Default for State {
    fn default() -> Self {
        State {
            out: Output::default(),
            memo: Memo::default(),
            types: TypeCache::default(),
            stack_limit: stacker::remaining_stack().map(|r| stack_pointer() - r),
        }
    }
}

pub struct Engine<'s, 'py> {
    py: Python<'py>,
    c: &'static Cache,
    out: &'s mut Output,
    memo: &'s mut Memo,
    types: &'s mut TypeCache,
    proto: u8,
    /// Binary protocol (>= 1).
    bin: bool,
    write: Option<Bound<'py, PyAny>>,
    buffer_callback: Option<Bound<'py, PyAny>>,
    reducer_override: Option<Bound<'py, PyAny>>,
    persistent_id: Option<Bound<'py, PyAny>>,
    dispatch: Dispatch<'py>,
    /// The last type the dispatch dicts were found not to have.
    dispatch_miss: dispatch::DispatchMiss,
    globals_ref: Option<Bound<'py, pyo3::types::PyDict>>,
    /// A one-shot dump (no `globals_ref` given, fast paths on, CPython):
    /// the first namespace's base globals are kept in `first_globals`, out
    /// of `globals_ref` (see `base_globals`).
    one_shot_globals: bool,
    /// The address of the first namespace met and its base globals.
    first_globals: Option<(usize, Bound<'py, PyAny>)>,
    /// Whether the dump is still in its pure region, where refcount-1
    /// objects may be parked instead of memoized (see `memo`). Turned off
    /// for good by `leave_pure`.
    transient_memo: bool,
    /// The object passed to `dump`: a root tuple is transient for another
    /// reason than its items (see `dump`), which do not inherit it.
    root: *mut ffi::PyObject,
    /// Whether reductions may be written without building their temporary
    /// tuples (see `memo_skip`): a one-shot dump, whose memo nobody sees.
    private_temporaries: bool,
    /// Whether the engine's fast paths are on (see `fast_paths`), read once
    /// per dump.
    fast_paths: bool,
    /// Lowest stack address the engine may recurse down to.
    stack_floor: usize,
    fast: bool,
    /// Fast mode: container nesting depth, and the containers being saved
    /// once deeper than `FAST_NESTING_LIMIT` (to detect cycles).
    fast_nesting: usize,
    fast_memo: std::collections::HashSet<usize>,
    /// Nesting depth of reductions by value (functions, classes, modules,
    /// code): inside one, sets are written in a canonical order so that
    /// the payload does not depend on hash randomization.
    canonical: u32,
    /// Whether this run writes a canonical pickle from the start: the
    /// digest a class's tracker id is derived from. While it runs, the
    /// reduction of that class carries a placeholder id, so no class
    /// reduction made here may be cached for other dumps (another thread
    /// would ship the placeholder).
    digest_run: bool,
    /// Where pickling failed, filled as an error travels up (see `trail`).
    /// Allocated on the first failure only: the success path carries one
    /// null pointer.
    trail: Option<Box<trail::Trail>>,
}

/// As in `_pickle.c`: fast mode starts tracking containers at this depth.
const FAST_NESTING_LIMIT: usize = 50;

/// Stack kept free below the engine's deepest frame, for CPython calls made
/// from there and for error handling.
const STACK_MARGIN: usize = 256 * 1024;

#[inline(always)]
fn stack_pointer() -> usize {
    let marker = 0u8;
    std::ptr::addr_of!(marker) as usize
}

impl<'s, 'py> Engine<'s, 'py> {
    pub fn new(py: Python<'py>, state: &'s mut State, opts: Options<'py>) -> Self {
        let sp = stack_pointer();
        let stack_floor = match state.stack_limit {
            Some(limit) if limit < sp => limit + STACK_MARGIN.min((sp - limit) / 2),
            // Unknown stack size: allow what the smallest threads have.
            _ => sp.saturating_sub(STACK_MARGIN),
        };
        Engine {
            py,
            c: cache(),
            out: &mut state.out,
            memo: &mut state.memo,
            types: &mut state.types,
            proto: opts.proto,
            bin: opts.proto >= 1,
            write: opts.write,
            buffer_callback: opts.buffer_callback,
            reducer_override: opts.reducer_override,
            transient_memo: opts.transient_memo
                && opts.persistent_id.is_none()
                && fast_paths::enabled(),
            root: std::ptr::null_mut(),
            private_temporaries: opts.transient_memo && fast_paths::enabled(),
            fast_paths: fast_paths::enabled(),
            persistent_id: opts.persistent_id,
            dispatch: Dispatch::new(opts.dispatch_table),
            dispatch_miss: (0, 0),
            one_shot_globals: opts.globals_ref.is_none()
                && opts.transient_memo
                && fast_paths::enabled()
                && crate::py_compat::LAYOUT_READS,
            first_globals: None,
            globals_ref: opts.globals_ref,
            stack_floor,
            fast: opts.fast,
            fast_nesting: 0,
            fast_memo: Default::default(),
            canonical: u32::from(opts.canonical),
            digest_run: opts.canonical,
            trail: None,
        }
    }

    /// Pickles `obj` into the output, from PROTO to STOP.
    pub fn dump(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        self.out.reset();
        if self.proto >= 2 {
            self.out.bytes(&[PROTO, self.proto]);
            if self.proto >= 4 {
                self.out.set_framing(true);
            }
        }
        // A root tuple is memoized after its items and nothing follows it:
        // its memo entry can never be looked up (for a one-shot dump).
        // SAFETY: `obj` is alive (borrowed from the caller) and the GIL is
        // held (we have `self.py`).
        let root_transient =
            self.transient_memo && unsafe { ffi::PyTuple_CheckExact(obj.as_ptr()) } != 0;
        self.root = obj.as_ptr();
        let outer_pure = fast_paths::enter_pure(self.transient_memo);
        // SAFETY: the caller's `obj` keeps the object alive for the whole
        // dump.
        let result = unsafe { self.save(obj.as_ptr(), root_transient) };
        let result = result.map(|()| {
            self.out.byte(STOP);
            self.out.commit_frame();
        });
        self.out.set_framing(false);
        // Parked objects are forgotten, never inserted: the dump is over
        // (or failed), nothing will look them up again.
        self.memo.drop_pending();
        self.transient_memo = false;
        fast_paths::exit_pure(outer_pure);
        if let Err(e) = result {
            return Err(match &mut self.trail {
                Some(trail) => {
                    // SAFETY: `obj` is alive (borrowed from the caller).
                    unsafe { trail.push_object(self.py, obj.as_ptr()) };
                    trail.annotate(self.py, e)
                }
                // The object passed in failed itself: nothing to add.
                None => e,
            });
        }
        if self.write.is_some() {
            self.flush_to_file()?;
        }
        Ok(())
    }

    /// Ends the pure region (see `memo`): parked objects go into the memo
    /// for real, holding references, and no more are parked.
    ///
    /// The pure region is the start of a dump up to the first object that is
    /// not exact `None`/`bool`/`int`/`float`/`str`/`bytes`/`list`/`dict`/
    /// `tuple`: `save_compound` calls this before handling any other type,
    /// so everything that reduces, looks up or calls anything (hooks,
    /// reducers, dispatch tables, globals, instances, sets, buffers) runs
    /// after it. Inside the region, the savers of those nine types call
    /// this before the few operations of theirs that could run Python code
    /// or allocate a garbage-collected object (and so start a collection,
    /// which runs finalizers and callbacks): ints beyond 64 bits, protocol
    /// 0 strings and big ints (text forms), strings that hold lone
    /// surrogates, bytes below protocol 3, and `file.write`. Everything else they do reads memory,
    /// writes the engine's own buffer (Rust allocations, or a `bytes`
    /// object, which the collector does not track) and touches reference
    /// counts of objects their containers still hold. So while the region
    /// lasts no Python code has run and every parked object is alive.
    #[inline(always)]
    fn leave_pure(&mut self) {
        if self.transient_memo {
            self.transient_memo = false;
            fast_paths::left_pure();
            // SAFETY: we are still in the pure region (this is its end), so
            // no Python code and no collection has run since the objects
            // were parked: they are all alive.
            unsafe { self.memo.flush_pending() };
        }
    }

    /// Hands the committed output to `file.write` and empties the buffer.
    fn flush_to_file(&mut self) -> PyResult<()> {
        let Some(write) = self.write.clone() else {
            return Ok(());
        };
        if self.out.is_empty() {
            return Ok(());
        }
        self.leave_pure();
        let data = self.out.take_committed();
        let chunk = pyo3::types::PyBytes::new(self.py, &data);
        // Reuse the allocation for the next frames.
        self.out.buf = data;
        self.out.buf.clear();
        write.call1((chunk,))?;
        Ok(())
    }

    /// The opcode boundary at the start of every `save`: commit a full
    /// frame, and stream it out when pickling to a file.
    #[inline(always)]
    fn boundary(&mut self) -> PyResult<()> {
        if self.out.frame_full() {
            return self.end_frame();
        }
        Ok(())
    }

    /// `boundary` when a frame is full: out of line, so that the callers'
    /// common path stays small.
    #[cold]
    #[inline(never)]
    fn end_frame(&mut self) -> PyResult<()> {
        self.out.commit_frame();
        if self.write.is_some() {
            self.flush_to_file()?;
        }
        Ok(())
    }

    /// Guards recursion into containers and reductions: Python's recursion
    /// limit (as pickle does) and the native stack actually left.
    #[inline(always)]
    fn enter(&mut self) -> PyResult<()> {
        if stack_pointer() < self.stack_floor {
            return Err(PyRecursionError::new_err(
                "maximum recursion depth exceeded while pickling an object",
            ));
        }
        // SAFETY: GIL held; the message is a static C string.
        if unsafe { ffi::Py_EnterRecursiveCall(crate::py::WHILE_PICKLING.as_ptr()) } != 0 {
            return Err(fetch(self.py));
        }
        Ok(())
    }

    #[inline(always)]
    fn leave(&mut self) {
        // SAFETY: paired with a successful `enter`.
        unsafe { ffi::Py_LeaveRecursiveCall() };
    }

    /// Writes a memo index (MEMOIZE, BINPUT or LONG_BINPUT) for an object
    /// that only the engine has, and will never meet again: the index is
    /// taken, as pickle would take it, but no entry is made. Protocol >= 1.
    #[inline(always)]
    fn memo_skip(&mut self) -> PyResult<()> {
        if self.fast {
            return Ok(());
        }
        let idx = self.memo.skip();
        if self.proto >= 4 {
            self.out.byte(MEMOIZE);
        } else if idx < 256 {
            self.out.op_u8(BINPUT, idx as u8);
        } else if idx <= u32::MAX as usize {
            self.out.op_u32(LONG_BINPUT, idx as u32);
        } else {
            return Err(self.pickling_error("memo id too large for LONG_BINPUT"));
        }
        Ok(())
    }

    /// Writes the memo index of `obj` (MEMOIZE, BINPUT, LONG_BINPUT or PUT)
    /// and records it.
    ///
    /// # Safety
    /// `obj` must be alive.
    #[inline(always)]
    unsafe fn memo_put(&mut self, obj: *mut ffi::PyObject, transient: bool) -> PyResult<()> {
        // SAFETY: `obj` is alive (this fn's contract), which is all `Memo::put` needs.
        unsafe {
            if self.fast {
                return Ok(());
            }
            if self.memo.len() >= u32::MAX as usize {
                return Err(self.pickling_error("memo id too large for LONG_BINPUT"));
            }
            let idx = self.memo.put(obj, transient && self.transient_memo);
            if self.proto >= 4 {
                self.out.byte(MEMOIZE);
            } else if self.bin {
                if idx < 256 {
                    self.out.op_u8(BINPUT, idx as u8);
                } else if idx <= u32::MAX as usize {
                    self.out.op_u32(LONG_BINPUT, idx as u32);
                } else {
                    return Err(self.pickling_error("memo id too large for LONG_BINPUT"));
                }
            } else {
                self.out.byte(PUT);
                self.out.bytes(idx.to_string().as_bytes());
                self.out.byte(b'\n');
            }
            Ok(())
        }
    }

    /// Writes a reference to memo entry `idx`.
    fn memo_get(&mut self, idx: usize) -> PyResult<()> {
        if !self.bin {
            self.out.byte(GET);
            self.out.bytes(idx.to_string().as_bytes());
            self.out.byte(b'\n');
        } else if idx < 256 {
            self.out.op_u8(BINGET, idx as u8);
        } else if idx <= u32::MAX as usize {
            self.out.op_u32(LONG_BINGET, idx as u32);
        } else {
            return Err(self.pickling_error("memo id too large for LONG_BINGET"));
        }
        Ok(())
    }

    /// Fast mode: entering a list or dict; a container already being saved
    /// at this depth means a cycle, which fast mode cannot pickle.
    ///
    /// # Safety
    /// `obj` must be alive (its type is named in the error).
    pub(super) unsafe fn fast_enter(&mut self, obj: *mut ffi::PyObject) -> PyResult<()> {
        // SAFETY: `obj` is alive (contract): `borrowed` may take a reference to it
        // for the error message.
        unsafe {
            self.fast_nesting += 1;
            if self.fast_nesting >= FAST_NESTING_LIMIT && !self.fast_memo.insert(obj as usize) {
                let name = crate::errors::type_name(&borrowed(self.py, obj));
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "fast mode: can't pickle cyclic objects including object type {name} at {obj:p}"
            )));
            }
            Ok(())
        }
    }

    pub(super) fn fast_leave(&mut self, obj: *mut ffi::PyObject) {
        if self.fast_nesting >= FAST_NESTING_LIMIT {
            self.fast_memo.remove(&(obj as usize));
        }
        self.fast_nesting = self.fast_nesting.saturating_sub(1);
    }

    pub(crate) fn pickling_error(&mut self, msg: impl Into<String>) -> PyErr {
        crate::errors::pickling_error(self.py, msg.into())
    }

    /// Pickles one object. `transient` tells that `obj` is referenced only
    /// by a list or dict being traversed (see `memo`).
    ///
    /// # Safety
    /// `obj` must stay alive for the whole call: the caller holds a reference
    /// to it (its own, or a container's that no Python code run meanwhile can
    /// drop).
    pub(crate) unsafe fn save(&mut self, obj: *mut ffi::PyObject, transient: bool) -> PyResult<()> {
        // SAFETY: `obj` is alive for the whole call (contract), as `save_pers` and
        // `save_body` require.
        unsafe {
            self.boundary()?;
            if self.persistent_id.is_some() && self.save_pers(obj)? {
                return Ok(());
            }
            self.save_body(obj, transient)
        }
    }

    /// `save` of an object that is not an atom (None, bool, int, float) and
    /// may be in the memo, without the dispatch: when nothing would run
    /// before the memo is consulted (no persistent_id hook, no full frame to
    /// commit at this opcode boundary) and `obj` is in the memo, writes the
    /// reference, as `save` would, and returns true. Otherwise writes
    /// nothing and returns false: the caller saves `obj` with `save`.
    #[inline(always)]
    fn save_memoized_inline(&mut self, obj: *mut ffi::PyObject) -> PyResult<bool> {
        if !self.fast_paths || self.persistent_id.is_some() || self.out.frame_full() {
            return Ok(false);
        }
        match self.memo.get(obj) {
            Some(idx) => self.memo_get(idx).map(|()| true),
            None => Ok(false),
        }
    }

    /// Records, as an error travels up, the child whose save failed (null
    /// when not known) and which part of the object being saved it was
    /// (see `trail`); returns `err`. Only error paths call this: `save`
    /// itself records nothing, so the success path pays nothing.
    ///
    /// # Safety
    /// `child` must be null or alive (the trail takes a reference to it).
    #[cold]
    #[inline(never)]
    pub(super) unsafe fn failed_at(
        &mut self,
        step: trail::Step,
        child: *mut ffi::PyObject,
        err: PyErr,
    ) -> PyErr {
        // SAFETY: `child` is null or alive (contract).
        unsafe {
            let trail = self.trail.get_or_insert_with(Default::default);
            if !child.is_null() {
                trail.push_object(self.py, child);
            }
            trail.push(step);
            err
        }
    }

    /// `save` without the persistent_id hook (for persistent ids themselves).
    ///
    /// # Safety
    /// As for `save`: `obj` alive for the whole call.
    unsafe fn save_body(&mut self, obj: *mut ffi::PyObject, transient: bool) -> PyResult<()> {
        // SAFETY: `obj` is alive for the whole call (contract); every saver below is
        // handed an object of the exact type it handles (checked right before).
        unsafe {
            let tp = ffi::Py_TYPE(obj);
            // Atoms: never memoized.
            if obj == ffi::Py_None() {
                self.out.byte(NONE);
                return Ok(());
            }
            if tp == std::ptr::addr_of_mut!(ffi::PyBool_Type) {
                self.save_bool(obj);
                return Ok(());
            }
            if tp == std::ptr::addr_of_mut!(ffi::PyLong_Type) {
                return self.save_long(obj);
            }
            if tp == std::ptr::addr_of_mut!(ffi::PyFloat_Type) {
                self.save_float(obj);
                return Ok(());
            }
            // A transient object (only its container refers to it) cannot be
            // in the memo, whose entries hold references.
            if !transient {
                if let Some(idx) = self.memo.get(obj) {
                    return self.memo_get(idx);
                }
            }
            if tp == std::ptr::addr_of_mut!(ffi::PyBytes_Type) {
                return self.save_bytes(obj, transient);
            }
            if tp == std::ptr::addr_of_mut!(ffi::PyUnicode_Type) {
                return self.save_str(obj, transient);
            }
            self.enter()?;
            let result = self.save_compound(obj, tp, transient);
            self.leave();
            result
        }
    }

    /// # Safety
    /// `obj` must stay alive for the whole call and `tp` must be its type.
    unsafe fn save_compound(
        &mut self,
        obj: *mut ffi::PyObject,
        tp: *mut ffi::PyTypeObject,
        transient: bool,
    ) -> PyResult<()> {
        // SAFETY: `obj` is alive for the whole call and `tp` is its type (contract):
        // each saver below is handed an object of the exact type it handles.
        unsafe {
            if tp == std::ptr::addr_of_mut!(ffi::PyDict_Type) {
                return self.save_dict(obj, transient);
            }
            if tp == std::ptr::addr_of_mut!(ffi::PyList_Type) {
                return self.save_list(obj, transient);
            }
            if tp == std::ptr::addr_of_mut!(ffi::PyTuple_Type) {
                return self.save_tuple(obj, transient);
            }
            // Every other type leaves the pure region first (see `leave_pure`).
            self.leave_pure();
            if tp == std::ptr::addr_of_mut!(ffi::PySet_Type) {
                return self.save_set(obj, transient);
            }
            if tp == std::ptr::addr_of_mut!(ffi::PyFrozenSet_Type) {
                return self.save_frozenset(obj, transient);
            }
            if tp == std::ptr::addr_of_mut!(ffi::PyByteArray_Type) {
                return self.save_bytearray(obj, transient);
            }
            if tp == self.c.picklebuffer_type {
                return self.save_picklebuffer(obj);
            }
            self.save_other(obj, tp, transient)
        }
    }

    /// Everything that is not builtin data: reducer_override, types and
    /// functions by reference, dispatch tables, the reduce protocol.
    ///
    /// # Safety
    /// `obj` must stay alive for the whole call and `tp` must be its type.
    unsafe fn save_other(
        &mut self,
        obj: *mut ffi::PyObject,
        tp: *mut ffi::PyTypeObject,
        transient: bool,
    ) -> PyResult<()> {
        // SAFETY: `obj` is alive for the whole call (contract). `tp` is its type
        // until Python code runs; after the reducer_override step it is read again
        // and held by `_type`, so it stays a live type even if Python code run
        // later (a dispatch table, a reducer) changes `obj.__class__`.
        unsafe {
            // reducer_override comes first, as in pickle.
            if let Some(reducer_override) = self.reducer_override.clone() {
                let rv = reducer_override.call1((borrowed(self.py, obj),))?;
                if !rv.is(self.py.NotImplemented()) {
                    return self.save_reduce_value(obj, &rv);
                }
            } else if (tp == std::ptr::addr_of_mut!(ffi::PyType_Type)
                && self.save_builtin_type(obj)?)
                || ((tp == std::ptr::addr_of_mut!(ffi::PyCFunction_Type)
                    || tp == std::ptr::addr_of_mut!(ffi::PyFunction_Type))
                    && self.save_own_global(obj, tp)?)
            {
                return Ok(());
            } else if tp == std::ptr::addr_of_mut!(ffi::PyFunction_Type) {
                let object = borrowed(self.py, obj);
                if !crate::by_value::should_pickle_by_reference(&object)? {
                    return self.save_function_by_value(obj);
                }
                return self.save_global(obj, None);
            } else {
                if tp == std::ptr::addr_of_mut!(ffi::PyType_Type)
                    && self.private_temporaries
                    && self.proto >= 2
                    && !self.fast
                    && self.persistent_id.is_none()
                    && self.save_builtin_type_reduction(obj)?
                {
                    return Ok(());
                }
                let object = borrowed(self.py, obj);
                if tp == std::ptr::addr_of_mut!(ffi::PyFunction_Type) {
                    // Not reached (functions are handled above), but a
                    // function's reduction needs the whole `globals_ref`.
                    self.materialize_globals_ref()?;
                }
                let mut globals_ref = self.globals_ref.take();
                let ctx = crate::reduce::ReduceContext {
                    globals_ref: &mut globals_ref,
                    cache_classes: !self.digest_run,
                    mint_tracker_id: tracker_id::get_or_create_tracker_id,
                };
                let rv = crate::reduce::reducer_override(&object, ctx);
                self.globals_ref = globals_ref;
                if let Some(rv) = rv? {
                    return self.save_reduce_value(obj, &rv);
                }
            }
            // The reducer_override step may have run Python code that
            // assigned `obj.__class__` and freed the class read before: the
            // type is read again, and held while it is used.
            let tp = ffi::Py_TYPE(obj);
            let _type = borrowed(self.py, tp.cast());
            if tp == std::ptr::addr_of_mut!(ffi::PyType_Type) {
                return self.save_type(obj);
            }
            if tp == std::ptr::addr_of_mut!(ffi::PyFunction_Type) {
                return self.save_global(obj, None);
            }
            if let Some(reducer) = self.dispatch_lookup(tp)? {
                let object = borrowed(self.py, obj);
                if tp == crate::py_compat::code_type() && crate::reduce::is_code_reduce(&reducer) {
                    let (rv, fragment) = fragment::code_reduction(&reducer, &object)?;
                    if self.save_code_reduction(obj, &rv, fragment)? {
                        return Ok(());
                    }
                    return self.save_reduce_value(obj, &rv);
                }
                if self.private_temporaries
                    && self.proto >= 2
                    && !self.fast
                    && self.persistent_id.is_none()
                    && self.save_own_reduction(obj, tp, &reducer)?
                {
                    return Ok(());
                }
                let rv = crate::reduce::call_reducer(&reducer, &object)?;
                return self.save_reduce_value(obj, &rv);
            }
            // Every subclass of `type` carries the flag (`PyType_Ready` sets it
            // from the base), which `PyType_Check` reads: one load, where
            // `PyType_IsSubtype` walks the MRO.
            let is_type = if crate::py_compat::LAYOUT_READS {
                ffi::PyType_FastSubclass(tp, ffi::Py_TPFLAGS_TYPE_SUBCLASS) != 0
            } else {
                ffi::PyType_IsSubtype(tp, std::ptr::addr_of_mut!(ffi::PyType_Type)) != 0
            };
            if is_type {
                return self.save_global(obj, None);
            }
            if tp == std::ptr::addr_of_mut!(ffi::PyCFunction_Type) {
                // A builtin function of a module (cloudpickle's own native
                // reconstructors among them): its `__reduce__` returns its
                // name, which is its `__qualname__` too, and pickle saves it
                // as a global. Done directly, with the lookup cache.
                if crate::py_compat::cfunction_of_module(obj) {
                    return self.save_global(obj, None);
                }
            }
            if self.proto >= 2
                && fast_paths::enabled()
                && self.save_plain_instance(obj, tp, transient)?
            {
                return Ok(());
            }
            if tp == self.c.partial.cast()
                && crate::py_compat::LAYOUT_READS
                && (*tp).tp_dictoffset > 0
            {
                return self.save_partial(obj, (*tp).tp_dictoffset, transient);
            }
            self.save_by_reduce_ex(obj, tp)
        }
    }

    /// Calls persistent_id(obj); writes the id and returns true if it is
    /// not None.
    ///
    /// # Safety
    /// `obj` must be alive.
    #[inline(never)]
    unsafe fn save_pers(&mut self, obj: *mut ffi::PyObject) -> PyResult<bool> {
        // SAFETY: `obj` is alive (contract); `pid`, saved in its place, is held
        // by a reference.
        unsafe {
            let Some(persistent_id) = self.persistent_id.clone() else {
                return Ok(false);
            };
            // No pure region with a persistent_id hook (see `Engine::new`).
            debug_assert!(!self.transient_memo);
            let pid = persistent_id.call1((borrowed(self.py, obj),))?;
            if pid.is_none() {
                return Ok(false);
            }
            if self.bin {
                self.boundary()?;
                self.save_body(pid.as_ptr(), false)
                    .map_err(|e| self.failed_at(trail::Step::PersistentId, pid.as_ptr(), e))?;
                self.out.byte(BINPERSID);
            } else {
                let text = pid.str()?;
                let text = text.to_str().ok().filter(|s| s.is_ascii()).ok_or_else(|| {
                    self.pickling_error("persistent IDs in protocol 0 must be ASCII strings")
                })?;
                self.out.byte(PERSID);
                self.out.bytes(text.as_bytes());
                self.out.byte(b'\n');
            }
            Ok(true)
        }
    }
}

/// A `Bound` view of a borrowed pointer, for passing to Python calls.
///
/// # Safety
/// `obj` must be alive and the GIL held.
#[inline(always)]
pub(crate) unsafe fn borrowed<'py>(py: Python<'py>, obj: *mut ffi::PyObject) -> Bound<'py, PyAny> {
    // SAFETY: `obj` is alive and the GIL held (contract); the `Bound` takes its
    // own reference.
    unsafe { Bound::from_borrowed_ptr(py, obj) }
}

/// A cached interned name as a `PyString`.
///
/// # Safety
/// `s` must be one of the cache's interned strings.
#[inline(always)]
pub(crate) unsafe fn name<'py>(
    py: Python<'py>,
    s: *mut ffi::PyObject,
) -> Bound<'py, pyo3::types::PyString> {
    // SAFETY: `s` is one of the cache's interned strings (contract): a `str`,
    // alive for the life of the process.
    unsafe { Bound::from_borrowed_ptr(py, s).cast_into_unchecked() }
}
