//! The functions and class the Python package calls.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::errors::wrap_recursion;
use crate::pickler::{DispatchSource, Engine, Options, State};

const HIGHEST_PROTOCOL: i64 = 5;

thread_local! {
    /// A state (buffer, memo, type cache) kept between one-shot dumps on
    /// this thread. Taken out while in use, so a dump started from inside a
    /// reducer simply gets a fresh one.
    static SCRATCH: Cell<Option<Box<State>>> = const { Cell::new(None) };
}

fn take_scratch() -> Box<State> {
    SCRATCH.with(|s| s.take()).unwrap_or_default()
}

fn return_scratch(state: Box<State>) {
    SCRATCH.with(|s| s.set(Some(state)));
}

/// The protocol number pickle would use for `protocol`.
fn resolve_protocol(protocol: Option<&Bound<'_, PyAny>>) -> PyResult<u8> {
    let Some(protocol) = protocol.filter(|p| !p.is_none()) else {
        return Ok(HIGHEST_PROTOCOL as u8);
    };
    // As pickle: PyLong_AsLong (integer-likes, C long range; floats too
    // on the Pythons that still accept them there).
    let py = protocol.py();
    // SAFETY: GIL held; `protocol` is alive.
    let p = unsafe { ffi::PyLong_AsLong(protocol.as_ptr()) } as i64;
    if p == -1 && PyErr::occurred(py) {
        return Err(crate::errors::fetch(py));
    }
    if p < 0 {
        Ok(HIGHEST_PROTOCOL as u8)
    } else if p > HIGHEST_PROTOCOL {
        Err(PyValueError::new_err(format!(
            "pickle protocol must be <= {HIGHEST_PROTOCOL}"
        )))
    } else {
        Ok(p as u8)
    }
}

fn check_callback(proto: u8, buffer_callback: &Option<Bound<'_, PyAny>>) -> PyResult<()> {
    if buffer_callback.is_some() && proto < 5 {
        return Err(PyValueError::new_err("buffer_callback needs protocol >= 5"));
    }
    Ok(())
}

fn none_to_option(obj: Option<Bound<'_, PyAny>>) -> Option<Bound<'_, PyAny>> {
    obj.filter(|o| !o.is_none())
}

/// What `dumps` and `dump` run with: the class-level dispatch table, the
/// engine's own reducer_override, and no persistent memo.
fn one_shot_options<'py>(
    proto: u8,
    buffer_callback: Option<Bound<'py, PyAny>>,
    write: Option<Bound<'py, PyAny>>,
) -> PyResult<Options<'py>> {
    let buffer_callback = none_to_option(buffer_callback);
    check_callback(proto, &buffer_callback)?;
    Ok(Options {
        proto,
        write,
        buffer_callback,
        reducer_override: None,
        persistent_id: None,
        dispatch_table: DispatchSource::PicklerClass,
        globals_ref: None,
        transient_memo: true,
        fast: false,
        canonical: false,
    })
}

/// Runs a one-shot dump with the thread's scratch state.
fn one_shot<'py, T>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    opts: Options<'py>,
    finish: impl FnOnce(&State) -> PyResult<T>,
) -> PyResult<T> {
    let mut state = take_scratch();
    let result = {
        let mut engine = Engine::new(py, &mut state, opts);
        engine.dump(obj)
    };
    let result = result.and_then(|()| finish(&state));
    // SAFETY: the GIL is held; the memo's references are released here,
    // after the engine is gone.
    unsafe { state.memo.clear() };
    state.out.reset();
    return_scratch(state);
    result.map_err(|e| wrap_recursion(py, e))
}

/// A one-shot dump assembled into a bytes object; large bytes objects in
/// the payload are copied once, into the result (see `Output::external`).
fn one_shot_into_bytes<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    opts: Options<'py>,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut state = take_scratch();
    state.out.allow_external = true;
    let result = {
        let mut engine = Engine::new(py, &mut state, opts);
        engine.dump(obj)
    };
    let result = result.and_then(|()| state.out.take_pybytes(py));
    // SAFETY: the GIL is held; the memo's references are released here,
    // after the engine is gone.
    unsafe { state.memo.clear() };
    state.out.reset();
    state.out.allow_external = false;
    return_scratch(state);
    result.map_err(|e| wrap_recursion(py, e))
}

/// Serialize obj as a bytes object (a standard pickle).
///
/// protocol defaults to cloudpickle.DEFAULT_PROTOCOL, the highest protocol
/// of the running Python, which favours speed between processes running the
/// same Python version. buffer_callback (protocol 5) receives each
/// pickle.PickleBuffer; if it returns a false value the buffer is written
/// out of band. The payload loads with pickle.loads.
#[pyfunction]
#[pyo3(signature = (obj, protocol=None, buffer_callback=None))]
pub fn dumps<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    protocol: Option<&Bound<'py, PyAny>>,
    buffer_callback: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let proto = resolve_protocol(protocol)?;
    let opts = one_shot_options(proto, buffer_callback, None)?;
    let payload = one_shot_into_bytes(py, obj, opts)?;
    let size = payload.as_bytes().len();
    if size > LARGE_PAYLOAD_THRESHOLD.load(Ordering::Relaxed) {
        report_large_payload(py, obj, size, proto)?;
    }
    Ok(payload)
}

/// Payload size above which `dumps` calls the large-payload callback;
/// `usize::MAX` (the default) when the warning is off, so the check costs
/// one comparison.
static LARGE_PAYLOAD_THRESHOLD: AtomicUsize = AtomicUsize::new(usize::MAX);
static LARGE_PAYLOAD_CALLBACK: Mutex<Option<Py<PyAny>>> = Mutex::new(None);

/// Calls the large-payload callback with `(obj, size, protocol)`. Its
/// exceptions propagate (a warning turned into an error by a filter).
#[cold]
fn report_large_payload(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    size: usize,
    proto: u8,
) -> PyResult<()> {
    let callback = {
        let guard = LARGE_PAYLOAD_CALLBACK
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(|c| c.clone_ref(py))
    };
    if let Some(callback) = callback {
        callback.bind(py).call1((obj, size, proto))?;
    }
    Ok(())
}

/// `_set_large_payload_threshold(threshold, callback)`: after each `dumps`
/// whose payload is larger than `threshold` bytes, call
/// `callback(obj, size, protocol)`. `None` turns it off.
#[pyfunction]
#[pyo3(name = "_set_large_payload_threshold", signature = (threshold, callback=None))]
pub fn set_large_payload_threshold(
    threshold: Option<usize>,
    callback: Option<Bound<'_, PyAny>>,
) -> PyResult<()> {
    let callback = callback.filter(|c| !c.is_none());
    let (threshold, callback) = match (threshold, callback) {
        (None, _) => (usize::MAX, None),
        (Some(t), Some(c)) if c.is_callable() => (t, Some(c.unbind())),
        (Some(_), _) => {
            return Err(PyTypeError::new_err(
                "a threshold needs a callable callback(obj, size, protocol)",
            ))
        }
    };
    let old = {
        let mut guard = LARGE_PAYLOAD_CALLBACK
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        LARGE_PAYLOAD_THRESHOLD.store(threshold, Ordering::Relaxed);
        std::mem::replace(&mut *guard, callback)
    };
    // Dropped after the lock is released: releasing it may run Python code.
    drop(old);
    Ok(())
}

/// Serialize obj as bytes streamed into file (an object with a write
/// method). Same arguments as dumps.
#[pyfunction]
#[pyo3(signature = (obj, file, protocol=None, buffer_callback=None))]
pub fn dump<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    file: &Bound<'py, PyAny>,
    protocol: Option<&Bound<'py, PyAny>>,
    buffer_callback: Option<Bound<'py, PyAny>>,
) -> PyResult<()> {
    // Arguments are checked in pickle's order: protocol first.
    let proto = resolve_protocol(protocol)?;
    let write = file
        .getattr_opt("write")?
        .ok_or_else(|| PyTypeError::new_err("file must have a 'write' attribute"))?;
    let opts = one_shot_options(proto, buffer_callback, Some(write))?;
    one_shot(py, obj, opts, |_| Ok(()))
}

/// The engine state of one `cloudpickle.Pickler` instance: its memo
/// persists across `dump` calls, as pickle's does.
#[pyclass(module = "cloudpickle._engine")]
pub struct PicklerState {
    state: Box<State>,
}

#[pymethods]
impl PicklerState {
    #[new]
    fn new() -> Self {
        PicklerState {
            state: Box::default(),
        }
    }

    /// Forgets every object pickled so far.
    fn clear_memo(&mut self) {
        // SAFETY: methods of a pyclass run with the GIL held.
        unsafe { self.state.memo.clear() };
    }

    /// Number of memo entries.
    fn memo_len(&self) -> usize {
        self.state.memo.len()
    }

    /// The memo as `[(object, index), ...]`.
    fn memo_items<'py>(&self, py: Python<'py>) -> Vec<(Bound<'py, PyAny>, usize)> {
        self.state
            .memo
            .entries()
            .into_iter()
            // SAFETY: the memo holds a reference to each of its objects.
            .map(|(obj, idx)| (unsafe { Bound::from_borrowed_ptr(py, obj) }, idx))
            .collect()
    }

    /// Replaces the memo with `[(object, index), ...]`.
    fn set_memo(&mut self, items: Vec<(Bound<'_, PyAny>, usize)>) -> PyResult<()> {
        if items.iter().any(|(_, idx)| *idx > u32::MAX as usize) {
            return Err(PyValueError::new_err("memo index out of range"));
        }
        let entries: Vec<_> = items.iter().map(|(o, i)| (o.as_ptr(), *i)).collect();
        // SAFETY: GIL held (a pymethod); the objects are alive in `items`.
        unsafe { self.state.memo.set_entries(&entries) };
        Ok(())
    }
}

/// `Pickler.dump(obj)` for a `cloudpickle.Pickler` instance, configured by
/// the instance's attributes.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (state, obj, write, protocol, buffer_callback, reducer_override, persistent_id, dispatch_table, globals_ref, fast=false))]
pub fn pickler_dump<'py>(
    py: Python<'py>,
    mut state: PyRefMut<'py, PicklerState>,
    obj: &Bound<'py, PyAny>,
    write: Bound<'py, PyAny>,
    protocol: Option<&Bound<'py, PyAny>>,
    buffer_callback: Option<Bound<'py, PyAny>>,
    reducer_override: Option<Bound<'py, PyAny>>,
    persistent_id: Option<Bound<'py, PyAny>>,
    dispatch_table: Option<Bound<'py, PyAny>>,
    globals_ref: Option<Bound<'py, PyDict>>,
    fast: bool,
) -> PyResult<()> {
    let proto = resolve_protocol(protocol)?;
    let buffer_callback = none_to_option(buffer_callback);
    check_callback(proto, &buffer_callback)?;
    let opts = Options {
        proto,
        write: Some(write),
        buffer_callback,
        reducer_override: none_to_option(reducer_override),
        persistent_id: none_to_option(persistent_id),
        dispatch_table: match none_to_option(dispatch_table) {
            Some(t) => DispatchSource::Given(t),
            None => DispatchSource::PicklerClass,
        },
        globals_ref,
        transient_memo: false,
        fast,
        canonical: false,
    };
    state.state.refresh_stack_limit();
    let result = {
        let mut engine = Engine::new(py, &mut state.state, opts);
        engine.dump(obj)
    };
    state.state.out.reset();
    result.map_err(|e| wrap_recursion(py, e))
}

/// `Pickler.reducer_override(obj)` as seen by subclasses calling
/// `super().reducer_override(obj)`: cloudpickle's reduction for `obj`, or
/// NotImplemented.
#[pyfunction]
pub fn reducer_override<'py>(
    py: Python<'py>,
    pickler: &Bound<'py, PyAny>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut globals_ref = match pickler.getattr_opt("globals_ref")? {
        Some(g) => g.cast_into::<PyDict>().ok(),
        None => None,
    };
    let ctx = crate::reduce::ReduceContext {
        globals_ref: &mut globals_ref,
        cache_classes: true,
        mint_tracker_id: crate::pickler::tracker_id::get_or_create_tracker_id,
    };
    match crate::reduce::reducer_override(obj, ctx)? {
        Some(rv) => Ok(rv),
        None => Ok(py.NotImplemented().into_bound(py)),
    }
}

/// Turns the engine's fast paths on or off (see `pickler::fast_paths`);
/// returns the previous setting.
#[pyfunction]
#[pyo3(name = "_set_fast_paths")]
pub fn set_fast_paths(enabled: bool) -> bool {
    crate::pickler::fast_paths::set_enabled(enabled)
}

/// Whether a dump on this thread is inside its memo's pure region (for
/// tests: Python code never runs while it is).
#[pyfunction]
#[pyo3(name = "_in_pure_region")]
pub fn in_pure_region() -> bool {
    crate::pickler::fast_paths::in_pure_region()
}
