//! Canonical order for sets inside reductions by value.
//!
//! A set iterates in hash order, and string hashes change with
//! `PYTHONHASHSEED`: the same function (a `frozenset` constant in its code,
//! a set in its closure) or class (a set-valued attribute, `__slots__`,
//! `__protocol_attrs__`...) would otherwise pickle to different bytes in
//! every process. Inside a reduction by value (see `by_value_callable`) the
//! engine writes set items sorted instead. Plain data keeps its natural
//! order: it must stay byte-identical with `pickle.dumps`, and sorting costs.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::{Engine, Options, State};
use crate::errors::owned;

/// How the items of one set compare.
#[derive(PartialEq, Clone, Copy)]
enum Kind {
    Str,
    Bytes,
    Int,
    Other,
}

/// # Safety
/// GIL held; `item` alive.
unsafe fn kind_of(item: *mut ffi::PyObject) -> Kind {
    // SAFETY: GIL held and `item` alive (contract).
    unsafe {
        if ffi::PyUnicode_CheckExact(item) != 0 {
            Kind::Str
        } else if ffi::PyBytes_CheckExact(item) != 0 {
            Kind::Bytes
        } else if ffi::PyLong_CheckExact(item) != 0 || ffi::PyBool_Check(item) != 0 {
            Kind::Int
        } else {
            Kind::Other
        }
    }
}

impl<'s, 'py> Engine<'s, 'py> {
    /// Whether `callable` rebuilds something pickled by value: what is saved
    /// under such a reduction is written in canonical order.
    pub(super) fn by_value_callable(&self, callable: *mut ffi::PyObject) -> bool {
        match crate::bridge::bridge(self.py) {
            Ok(hot) => hot.is_by_value_reconstructor(callable),
            Err(_) => false,
        }
    }

    /// Whether sets are being written in canonical order.
    #[inline(always)]
    pub(super) fn canonical(&self) -> bool {
        self.canonical > 0
    }

    /// Runs `f` with canonical order switched on when `on`.
    pub(super) fn canonical_scope<T>(
        &mut self,
        on: bool,
        f: impl FnOnce(&mut Self) -> PyResult<T>,
    ) -> PyResult<T> {
        if on {
            self.canonical += 1;
        }
        let result = f(self);
        if on {
            self.canonical -= 1;
        }
        result
    }

    /// The items of the set `obj` in canonical order: strings, bytes and
    /// integers (when all items are of one of these kinds) by value; any
    /// other mix by the canonical pickle of each item, which depends only
    /// on the item's own content.
    ///
    /// # Safety
    /// `obj` must be an alive set or frozenset.
    pub(super) unsafe fn canonical_items(
        &mut self,
        obj: *mut ffi::PyObject,
    ) -> PyResult<Bound<'py, PyList>> {
        // SAFETY: `obj` is an alive set or frozenset (contract).
        unsafe {
            let py = self.py;
            let list = owned(py, ffi::PySequence_List(obj))?.cast_into::<PyList>()?;
            let n = list.len();
            if n < 2 {
                return Ok(list);
            }
            let first = kind_of(ffi::PyList_GET_ITEM(list.as_ptr(), 0));
            let uniform = first != Kind::Other
                && (1..n).all(|i| kind_of(ffi::PyList_GET_ITEM(list.as_ptr(), i as _)) == first);
            if uniform {
                // Comparisons of str, bytes or int run no Python code and are a
                // total order.
                if ffi::PyList_Sort(list.as_ptr()) != 0 {
                    return Err(crate::errors::fetch(py));
                }
                return Ok(list);
            }
            let mut keyed = Vec::with_capacity(n);
            for item in list.iter() {
                match canonical_dumps(py, &item, self.proto) {
                    Ok(key) => keyed.push((key, item)),
                    // Left in place: saving the item raises the same error
                    // where it belongs.
                    Err(_) => return Ok(list),
                }
            }
            // Stable: items with equal pickles keep their relative order.
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            PyList::new(py, keyed.into_iter().map(|(_, item)| item))
        }
    }
}

/// The canonical pickle of `obj` (sets sorted throughout), with cloudpickle's
/// default configuration and a fresh memo.
pub fn canonical_dumps(py: Python<'_>, obj: &Bound<'_, PyAny>, proto: u8) -> PyResult<Vec<u8>> {
    let mut state = State::default();
    let opts = Options {
        proto,
        write: None,
        buffer_callback: None,
        reducer_override: None,
        persistent_id: None,
        dispatch_table: super::DispatchSource::PicklerClass,
        globals_ref: None,
        transient_memo: true,
        fast: false,
        canonical: true,
    };
    let result = {
        let mut engine = Engine::new(py, &mut state, opts);
        engine.dump(obj)
    };
    let out = std::mem::take(&mut state.out.buf);
    // SAFETY: GIL held; the engine is gone.
    unsafe { state.memo.clear() };
    result.map(|()| out)
}

/// `_engine._canonical_dumps(obj, protocol)`: bytes for `obj` with every set
/// in canonical order, whatever the context.
#[pyfunction]
#[pyo3(name = "_canonical_dumps", signature = (obj, protocol=5))]
pub fn canonical_dumps_py<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    protocol: u8,
) -> PyResult<Bound<'py, PyBytes>> {
    if protocol > 5 {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "pickle protocol must be <= 5",
        ));
    }
    let out =
        canonical_dumps(py, obj, protocol).map_err(|e| crate::errors::wrap_recursion(py, e))?;
    Ok(PyBytes::new(py, &out))
}
