//! Functions by value, written directly.
//!
//! The reduction of a function (`reduce::function_reduction::build_function_reduce`)
//! is made of a dozen containers that exist only to be walked once: the
//! arguments tuple, the state tuple, the slot-state dict, the dict of used
//! globals, copies of the name strings. Here the opcodes pickle would write
//! for that reduction are written from the function's parts instead: same
//! bytes, same memo indices (`memo_skip` takes an index for each of those
//! containers), but no containers are built and no memo entries are made
//! for them, which no one else can refer to.
//!
//! Functions with attributes in their `__dict__`, or whose globals or
//! closure hold packages (submodules to find), take the general path.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::opcodes::*;
use super::trail::Step;
use super::{borrowed, Engine};
use crate::reduce::function_reduction::{
    base_globals_in, build_function_reduce, builtin_function_reduce, copy_str, function_parts,
    reuse_base_globals, FunctionParts,
};

/// Which part of the reduction a failing object was, for the failure path.
enum Part<'a, 'py> {
    Callable,
    /// Item of the arguments tuple.
    Arg(isize),
    /// Value of the slot-state dict.
    Slot(&'a Bound<'py, PyString>),
    /// Value of the used-globals dict.
    Global(&'a Bound<'py, PyAny>),
}

impl<'s, 'py> Engine<'s, 'py> {
    /// Saves the function `obj` by value (its by-reference check is done).
    ///
    /// # Safety
    /// GIL held; `obj` is an exact function object, alive.
    pub(super) unsafe fn save_function_by_value(
        &mut self,
        obj: *mut ffi::PyObject,
    ) -> PyResult<()> {
        // SAFETY: `obj` is an alive exact function (contract), as `function_parts`
        // requires.
        unsafe {
            let py = self.py;
            let func = borrowed(py, obj);
            if let Some(rv) = builtin_function_reduce(&func)? {
                return self.save_reduce_value(obj, &rv);
            }
            let parts = function_parts(&func, |ns| self.base_globals(ns))?;
            let direct = self.proto >= 2
                && self.private_temporaries
                && self.persistent_id.is_none()
                && !self.fast
                && !parts.has_module
                && parts.func_dict.as_ref().is_none_or(|d| d.is_empty())
                && (parts.closure.is_none() || self.cells_reduced_by_default()?);
            if !direct {
                let rv = build_function_reduce(&parts)?;
                return self.save_reduce_value(obj, &rv);
            }
            self.enter()?;
            let result = self.canonical_scope(true, |e| e.write_function(obj, &parts));
            self.leave();
            result
        }
    }

    /// Saves the cell `obj` as `save_reduce` saves its reduction by
    /// cloudpickle's own `_cell_reduce` (the dispatch tables gave that
    /// reducer; the caller checked it): `(_make_cell, (value,))` or
    /// `(_make_empty_cell, ())`, written without building the two tuples.
    /// The arguments tuple takes its memo index with no entry (see
    /// `memo_skip`): only for dumps whose memo no one sees
    /// (`private_temporaries`), protocol 2 and above.
    ///
    /// # Safety
    /// `obj` must be an alive exact cell.
    pub(super) unsafe fn save_cell_direct(&mut self, obj: *mut ffi::PyObject) -> PyResult<()> {
        // SAFETY: `obj` is an alive exact cell (contract); its value is held by
        // `value` (a new reference) while it is saved, and the reconstructors
        // by the bridge.
        unsafe {
            let py = self.py;
            let hot = crate::bridge::bridge(py)?;
            let value = crate::py_compat::cell_get(obj);
            let value = if value.is_null() {
                // An empty cell (PyCell_Get sets no error on CPython).
                ffi::PyErr_Clear();
                None
            } else {
                Some(Bound::from_owned_ptr(py, value))
            };
            if let Some(v) = &value {
                return self.write_reduce1(obj, hot.make_cell.as_ptr(), v);
            }
            let callable = hot.make_empty_cell.as_ptr();
            let by_value = self.by_value_callable(callable);
            self.canonical_scope(by_value, |e| {
                e.save(callable, false)
                    .map_err(|err| e.failed_at(Step::Callable, callable, err))?;
                // What `save(())` writes.
                e.boundary()?;
                e.out.byte(EMPTY_TUPLE);
                e.out.byte(REDUCE);
                e.memoize_reduced(obj).map(|_| ())
            })
        }
    }

    /// Saves `obj` as `save_reduce` saves its reduction `(callable,
    /// (item,))`, without building the two tuples (see `write_args1`):
    /// for dumps whose memo no one sees (`private_temporaries`), protocol 2
    /// and above (the caller checked them).
    ///
    /// # Safety
    /// `obj` and `callable` must be alive; `item` is held by the caller.
    pub(super) unsafe fn write_reduce1(
        &mut self,
        obj: *mut ffi::PyObject,
        callable: *mut ffi::PyObject,
        item: &Bound<'py, PyAny>,
    ) -> PyResult<()> {
        let by_value = self.by_value_callable(callable);
        self.canonical_scope(by_value, |e| {
            // SAFETY: `callable` is alive (contract).
            unsafe { e.save(callable, false) }
                .map_err(|err| e.failed_at_callable(callable, err))?;
            e.write_args1(item)?;
            e.out.byte(REDUCE);
            // SAFETY: `obj` is alive (contract).
            unsafe { e.memoize_reduced(obj) }.map(|_| ())
        })
    }

    /// `failed_at(Step::Callable, callable, err)`.
    #[cold]
    fn failed_at_callable(&mut self, callable: *mut ffi::PyObject, err: PyErr) -> PyErr {
        // SAFETY: the callable of a reduction being written is alive.
        unsafe { self.failed_at(Step::Callable, callable, err) }
    }

    /// Saves `obj` directly when `reducer`, the dispatch tables' reducer for
    /// its type `tp`, is cloudpickle's own `_cell_reduce` (for a cell) or
    /// `_module_reduce` (for an imported module, `subimport(name)`); false
    /// (nothing written) otherwise. For dumps whose memo no one sees
    /// (`private_temporaries`), protocol 2 and above, no persistent_id
    /// (the caller checked them).
    ///
    /// # Safety
    /// `obj` must be alive, of type `tp`.
    #[inline(never)]
    pub(super) unsafe fn save_own_reduction(
        &mut self,
        obj: *mut ffi::PyObject,
        tp: *mut ffi::PyTypeObject,
        reducer: &Bound<'py, PyAny>,
    ) -> PyResult<bool> {
        // SAFETY: `obj` is alive, of type `tp` (contract); the name found is
        // held while it is saved, the reconstructors by the bridge.
        unsafe {
            let py = self.py;
            let hot = crate::bridge::bridge(py)?;
            if tp == std::ptr::addr_of_mut!(ffi::PyCell_Type)
                && reducer.is(hot.cell_reduce.bind(py))
            {
                self.save_cell_direct(obj)?;
                return Ok(true);
            }
            if reducer.is(hot.module_reduce.bind(py)) {
                let module = borrowed(py, obj);
                if let Some(name) = crate::reduce::importable_module_name(&module)? {
                    self.write_reduce1(obj, hot.subimport.as_ptr(), name.as_any())?;
                    return Ok(true);
                }
            }
            Ok(false)
        }
    }

    /// Saves a type that cloudpickle's own reducer override reduces to
    /// `(_builtin_type, (name,))` (a type of the `types` module that
    /// `builtins` does not name, such as `types.CodeType`) as `save_reduce`
    /// saves that reduction, without building its two tuples; false
    /// (nothing written) for any other object. For dumps whose memo no one
    /// sees (`private_temporaries`), protocol 2 and above, with no
    /// `reducer_override` of a subclass (the caller checked them all).
    ///
    /// # Safety
    /// `obj` must be alive, its type `type` itself.
    #[inline(never)]
    pub(super) unsafe fn save_builtin_type_reduction(
        &mut self,
        obj: *mut ffi::PyObject,
    ) -> PyResult<bool> {
        // SAFETY: `obj` is alive (contract); the name found is held by `name`
        // while it is saved, the reconstructor by the bridge. The dict is
        // keyed by types, which hash by address and compare by identity: the
        // lookup runs no Python code.
        unsafe {
            let py = self.py;
            // The singletons' types are left to pickle's own rule, as
            // `reduce::reducer_override` leaves them.
            if obj == ffi::Py_TYPE(ffi::Py_None()).cast()
                || obj == ffi::Py_TYPE(ffi::Py_Ellipsis()).cast()
                || obj == ffi::Py_TYPE(ffi::Py_NotImplemented()).cast()
            {
                return Ok(false);
            }
            let hot = crate::bridge::bridge(py)?;
            let name = ffi::PyDict_GetItemWithError(hot.builtin_type_names.as_ptr(), obj);
            if name.is_null() {
                if !ffi::PyErr_Occurred().is_null() {
                    return Err(crate::errors::fetch(py));
                }
                return Ok(false);
            }
            let name = borrowed(py, name);
            self.write_reduce1(obj, hot.builtin_type.as_ptr(), &name)?;
            Ok(true)
        }
    }

    /// What `save` writes for a new 1-tuple `(item,)` that only the engine
    /// has (the arguments of a reduction, never memoized before): an opcode
    /// boundary, the item, `TUPLE1` and a memo index with no entry (see
    /// `memo_skip`). Protocol 2 and above.
    fn write_args1(&mut self, item: &Bound<'py, PyAny>) -> PyResult<()> {
        self.boundary()?;
        self.enter()?;
        // SAFETY: `item` is held by the caller.
        let saved = unsafe { self.save(item.as_ptr(), false) };
        self.leave();
        saved.map_err(|err| self.args1_failed(item, err))?;
        self.out.byte(TUPLE1);
        self.memo_skip()
    }

    /// The failure path through the item of a 1-tuple written by
    /// `write_args1`: the steps through the arguments tuple it stands for,
    /// made now to be shown.
    #[cold]
    #[inline(never)]
    fn args1_failed(&mut self, value: &Bound<'py, PyAny>, err: PyErr) -> PyErr {
        // SAFETY: `value` and the tuple made here are held while recorded.
        unsafe {
            let args = PyTuple::new(self.py, [value]).ok();
            let err = self.failed_at(Step::Item(0), value.as_ptr(), err);
            let args = args.as_ref().map_or(std::ptr::null_mut(), |a| a.as_ptr());
            self.failed_at(Step::Args(0), args, err)
        }
    }

    /// Whether the dispatch tables give cells cloudpickle's own
    /// `_cell_reduce`, which the direct writer stands for when it writes
    /// the new empty cells of a closure (`write_empty_cells`); the
    /// reduction's own cells are saved through the tables.
    fn cells_reduced_by_default(&mut self) -> PyResult<bool> {
        let py = self.py;
        // SAFETY: `PyCell_Type` is a static type, alive for the life of the
        // process.
        let reducer = unsafe { self.dispatch_lookup(std::ptr::addr_of_mut!(ffi::PyCell_Type))? };
        let hot = crate::bridge::bridge(py)?;
        Ok(reducer.is_some_and(|r| r.is(hot.cell_reduce.bind(py))))
    }

    /// The base globals of a function whose namespace is `namespace`: those
    /// the functions of this dump with that namespace share (see
    /// `base_globals_in`). A one-shot dump keeps the first namespace's out
    /// of `globals_ref`, which no one else sees, and makes that dict only
    /// for a second namespace; the first namespace's dict may be the one
    /// the previous dump on this thread made, when it would be made the
    /// same (see `reuse_base_globals`).
    fn base_globals(&mut self, namespace: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        if self.globals_ref.is_none() && self.one_shot_globals {
            let addr = namespace.as_ptr() as usize;
            match &self.first_globals {
                None => {
                    // SAFETY: GIL held (we have `py`).
                    let g = unsafe { reuse_base_globals(namespace, &mut self.types.base_globals)? };
                    self.first_globals = Some((addr, g.clone()));
                    return Ok(g);
                }
                // Keyed by address, as `globals_ref` is by `id()`.
                Some((first, g)) if *first == addr => return Ok(g.clone()),
                Some(_) => {}
            }
            self.materialize_globals_ref()?;
        }
        let globals_ref = self
            .globals_ref
            .get_or_insert_with(|| PyDict::new(py))
            .clone();
        base_globals_in(&globals_ref, namespace)
    }

    /// Makes `globals_ref` a dict, with the first namespace's entry that
    /// `base_globals` kept out of it.
    pub(super) fn materialize_globals_ref(&mut self) -> PyResult<()> {
        if self.globals_ref.is_some() {
            return Ok(());
        }
        let py = self.py;
        let globals_ref = PyDict::new(py);
        if let Some((addr, g)) = self.first_globals.take() {
            // `id()` of an object is its address (on CPython, where
            // `one_shot_globals` is set).
            globals_ref.set_item(addr, g)?;
        }
        self.globals_ref = Some(globals_ref);
        Ok(())
    }

    /// # Safety
    /// `obj` must be the alive function whose parts are `parts`.
    unsafe fn write_function(
        &mut self,
        obj: *mut ffi::PyObject,
        parts: &FunctionParts<'py>,
    ) -> PyResult<()> {
        // SAFETY: `obj` is alive (contract); everything else saved is held by
        // `parts`, the bridge or the interned strings.
        unsafe {
            let py = self.py;
            let hot = crate::bridge::bridge(py)?;
            let none = ffi::Py_None();

            let make_function = hot.make_function.as_ptr();
            self.save(make_function, false)
                .map_err(|e| self.function_failed(parts, Part::Callable, make_function, e))?;

            // (code, base_globals, None, None, closure of empty cells)
            self.boundary()?;
            self.out.byte(MARK);
            let code = parts.code.as_ptr();
            self.save(code, false)
                .map_err(|e| self.function_failed(parts, Part::Arg(0), code, e))?;
            let base_globals = parts.base_globals.as_ptr();
            self.save(base_globals, false)
                .map_err(|e| self.function_failed(parts, Part::Arg(1), base_globals, e))?;
            self.save(none, false)?;
            self.save(none, false)?;
            if parts.closure.is_none() {
                self.save(none, false)?;
            } else {
                self.write_empty_cells(parts.n_cells).map_err(|e| {
                    self.function_failed(parts, Part::Arg(4), std::ptr::null_mut(), e)
                })?;
            }
            self.out.byte(TUPLE);
            self.memo_skip()?;
            self.out.byte(REDUCE);
            if let Some(idx) = self.memo.get(obj) {
                // Recursive: saving the arguments memoized the function.
                self.out.byte(POP);
                return self.memo_get(idx);
            }
            self.memo_put(obj, false)?;

            // _function_setstate(func, ({}, slotstate))
            self.save(hot.function_setstate.as_ptr(), false)?;
            self.save(obj, false)?;
            self.boundary()?;
            self.boundary()?;
            self.out.byte(EMPTY_DICT);
            self.memo_skip()?;
            self.boundary()?;
            self.out.byte(EMPTY_DICT);
            self.memo_skip()?;
            self.out.byte(MARK);
            self.write_slot_name(pyo3::intern!(py, "__name__"), &parts.name)?;
            self.write_slot_name(pyo3::intern!(py, "__qualname__"), &parts.qualname)?;
            let slots = [
                (pyo3::intern!(py, "__annotations__"), &parts.annotations),
                (pyo3::intern!(py, "__kwdefaults__"), &parts.kwdefaults),
                (pyo3::intern!(py, "__defaults__"), &parts.defaults),
                (pyo3::intern!(py, "__module__"), &parts.module),
                (pyo3::intern!(py, "__doc__"), &parts.doc),
                (pyo3::intern!(py, "__closure__"), &parts.closure),
            ];
            for (key, value) in slots {
                self.save(key.as_ptr(), false)?;
                self.save(value.as_ptr(), false)
                    .map_err(|e| self.function_failed(parts, Part::Slot(key), value.as_ptr(), e))?;
            }
            // No package among the dependencies: no submodules, an empty list.
            self.save(pyo3::intern!(py, "_cloudpickle_submodules").as_ptr(), false)?;
            self.boundary()?;
            self.out.byte(EMPTY_LIST);
            self.memo_skip()?;
            self.save(pyo3::intern!(py, "__globals__").as_ptr(), false)?;
            self.write_used_globals(parts)?;
            self.out.byte(SETITEMS);
            self.out.byte(TUPLE2);
            self.memo_skip()?;
            self.out.bytes(&[TUPLE2, REDUCE, POP]);
            Ok(())
        }
    }

    /// A slot-state name entry: the value is a copy of the name (see
    /// `copy_str`), which only the payload refers to. Names of one
    /// character (or none) are shared singletons, as with `"".join`, and
    /// are saved as objects.
    fn write_slot_name(
        &mut self,
        key: &Bound<'py, PyString>,
        name: &Bound<'py, PyAny>,
    ) -> PyResult<()> {
        // SAFETY: `key`, `name` and the copy are held by references; `write_str`
        // is only given `name` once it is checked to be an exact str.
        unsafe {
            self.save(key.as_ptr(), false)?;
            let n = name.as_ptr();
            if ffi::PyUnicode_CheckExact(n) != 0 && ffi::PyUnicode_GetLength(n) > 1 {
                self.boundary()?;
                self.write_str(n)?;
                return self.memo_skip();
            }
            let copy = copy_str(name)?;
            self.save(copy.as_ptr(), false)
        }
    }

    /// The closure argument: a tuple of `n` new empty cells, each
    /// `_make_empty_cell()`.
    fn write_empty_cells(&mut self, n: usize) -> PyResult<()> {
        // SAFETY: the bridge holds `_make_empty_cell` for the life of the process.
        unsafe {
            let hot = crate::bridge::bridge(self.py)?;
            self.boundary()?;
            let small = n <= 3;
            if !small {
                self.out.byte(MARK);
            }
            for _ in 0..n {
                self.boundary()?;
                self.save(hot.make_empty_cell.as_ptr(), false)?;
                self.boundary()?;
                self.out.byte(EMPTY_TUPLE);
                self.out.byte(REDUCE);
                self.memo_skip()?;
            }
            if small {
                self.out.byte([EMPTY_TUPLE, TUPLE1, TUPLE2, TUPLE3][n]);
            } else {
                self.out.byte(TUPLE);
            }
            self.memo_skip()
        }
    }

    /// The dict of used globals, batched as `save_dict` batches a dict.
    fn write_used_globals(&mut self, parts: &FunctionParts<'py>) -> PyResult<()> {
        self.boundary()?;
        self.out.byte(EMPTY_DICT);
        self.memo_skip()?;
        let used = &parts.used;
        if used.is_empty() {
            return Ok(());
        }
        if used.len() == 1 {
            self.write_global_entry(parts, 0)?;
            self.out.byte(SETITEM);
            return Ok(());
        }
        // As in `save_dict`: a full batch is always followed by another.
        let mut start = 0;
        loop {
            self.out.byte(MARK);
            let end = (start + BATCHSIZE).min(used.len());
            for i in start..end {
                self.write_global_entry(parts, i)?;
            }
            self.out.byte(SETITEMS);
            if end - start != BATCHSIZE {
                return Ok(());
            }
            start = end;
        }
    }

    fn write_global_entry(&mut self, parts: &FunctionParts<'py>, i: usize) -> PyResult<()> {
        // SAFETY: `parts` holds the name and the value.
        unsafe {
            let (name, value) = &parts.used[i];
            self.save(name.as_ptr(), false)?;
            self.save(value.as_ptr(), false)
                .map_err(|e| self.function_failed(parts, Part::Global(name), value.as_ptr(), e))
        }
    }

    /// The failure path through a function written directly: the same
    /// steps as through the reduction it stands for, with that reduction
    /// built now to show its containers.
    ///
    /// # Safety
    /// `child` must be null or alive.
    #[cold]
    #[inline(never)]
    unsafe fn function_failed(
        &mut self,
        parts: &FunctionParts<'py>,
        part: Part<'_, 'py>,
        child: *mut ffi::PyObject,
        err: PyErr,
    ) -> PyErr {
        // SAFETY: `child` is null or alive (contract); the other objects named are
        // held by `rv` and its items.
        unsafe {
            let py = self.py;
            let rv = build_function_reduce(parts).ok();
            let item = |t: &Option<Bound<'py, PyAny>>, i: usize| -> Option<Bound<'py, PyAny>> {
                t.as_ref()
                    .and_then(|t| t.cast::<PyTuple>().ok())
                    .and_then(|t| t.get_item(i).ok())
            };
            let ptr = |o: &Option<Bound<'py, PyAny>>| {
                o.as_ref().map_or(std::ptr::null_mut(), |o| o.as_ptr())
            };
            let newargs = item(&rv, 1);
            let state = item(&rv, 2);
            let slotstate = item(&state, 1);
            match part {
                Part::Callable => self.failed_at(Step::Callable, child, err),
                Part::Arg(i) => {
                    let err = self.failed_at(Step::Item(i), child, err);
                    self.failed_at(Step::Args(0), ptr(&newargs), err)
                }
                Part::Slot(key) => {
                    let err =
                        self.failed_at(Step::Value(key.clone().into_any().unbind()), child, err);
                    let err = self.failed_at(Step::Item(1), ptr(&slotstate), err);
                    self.failed_at(Step::State, ptr(&state), err)
                }
                Part::Global(name) => {
                    let used = slotstate
                        .as_ref()
                        .and_then(|d| d.get_item(pyo3::intern!(py, "__globals__")).ok());
                    let err = self.failed_at(Step::Value(name.clone().unbind()), child, err);
                    let key = pyo3::intern!(py, "__globals__").clone().into_any().unbind();
                    let err = self.failed_at(Step::Value(key), ptr(&used), err);
                    let err = self.failed_at(Step::Item(1), ptr(&slotstate), err);
                    self.failed_at(Step::State, ptr(&state), err)
                }
            }
        }
    }
}
