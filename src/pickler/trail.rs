//! Where pickling failed: the path from the object passed to `dumps` to
//! the object that could not be pickled.
//!
//! Nothing is recorded while pickling succeeds. When a save fails, the
//! error travels back up through the engine's frames, and each frame adds
//! what it knows on the way: `save` adds the object it was saving,
//! containers and reductions add which of their parts failed (item 3, the
//! value of key 'x', the state...). At the top, the steps go to
//! `cloudpickle._failure_trail._annotate` (held by the bridge), which words them and attaches
//! them to the exception (a note, or the message on Pythons without notes).

use std::collections::VecDeque;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

/// One step of the path, innermost first.
pub(crate) enum Step {
    /// An object whose save failed.
    Object(Py<PyAny>),
    /// Item `i` of a list or tuple.
    Item(isize),
    /// The value of a dict entry, by key.
    Value(Py<PyAny>),
    /// A dict key.
    Key(Py<PyAny>),
    /// An item of a set or frozenset.
    SetItem,
    /// The callable of a reduction.
    Callable,
    /// The arguments tuple of a reduction; its items are numbered from
    /// the offset (1 for NEWOBJ, whose class is item 0).
    Args(isize),
    /// The state of a reduction (BUILD or state setter).
    State,
    /// The listitems iterator of a reduction.
    ListItems,
    /// The dictitems iterator of a reduction.
    DictItems,
    /// What persistent_id returned.
    PersistentId,
}

/// Steps kept from the innermost end; beyond that only the outermost
/// `OUTER_MAX` are kept (a failure deep in a million-level structure).
const INNER_MAX: usize = 120;
const OUTER_MAX: usize = 40;

#[derive(Default)]
pub(crate) struct Trail {
    inner: Vec<Step>,
    outer: VecDeque<Step>,
    omitted: usize,
}

impl Trail {
    #[cold]
    pub(crate) fn push(&mut self, step: Step) {
        if self.inner.len() < INNER_MAX {
            self.inner.push(step);
            return;
        }
        self.outer.push_back(step);
        if self.outer.len() > OUTER_MAX {
            self.outer.pop_front();
            self.omitted += 1;
        }
    }

    /// # Safety
    /// GIL held; `obj` alive.
    #[cold]
    pub(crate) unsafe fn push_object(&mut self, py: Python<'_>, obj: *mut ffi::PyObject) {
        // SAFETY: GIL held and `obj` alive (contract); the step takes its own
        // reference.
        unsafe {
            self.push(Step::Object(Bound::from_borrowed_ptr(py, obj).unbind()));
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// The steps as Python tuples `(kind, value)`, innermost first, with
    /// `("omitted", n)` where steps were dropped.
    fn to_python<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        let add = |step: &Step| -> PyResult<()> {
            let none = py.None();
            let (kind, value): (&str, Py<PyAny>) = match step {
                Step::Object(o) => ("object", o.clone_ref(py)),
                Step::Item(i) => ("item", i.into_pyobject(py)?.into_any().unbind()),
                Step::Value(k) => ("value", k.clone_ref(py)),
                Step::Key(k) => ("key", k.clone_ref(py)),
                Step::SetItem => ("set item", none),
                Step::Callable => ("callable", none),
                Step::Args(offset) => ("args", offset.into_pyobject(py)?.into_any().unbind()),
                Step::State => ("state", none),
                Step::ListItems => ("listitems", none),
                Step::DictItems => ("dictitems", none),
                Step::PersistentId => ("persistent id", none),
            };
            list.append(PyTuple::new(
                py,
                [kind.into_pyobject(py)?.into_any().unbind(), value],
            )?)
        };
        for step in &self.inner {
            add(step)?;
        }
        if self.omitted > 0 {
            list.append(("omitted", self.omitted))?;
        }
        for step in &self.outer {
            add(step)?;
        }
        Ok(list)
    }

    /// Attaches the path to `err` (see the module comment). Any failure
    /// while doing so leaves `err` as it was.
    pub(crate) fn annotate(&self, py: Python<'_>, err: PyErr) -> PyErr {
        if self.is_empty() || err.is_instance_of::<pyo3::exceptions::PyRecursionError>(py) {
            // Too deep to pickle: the message says so, and the path would
            // be as long as the structure.
            return err;
        }
        let attach = || -> PyResult<()> {
            let steps = self.to_python(py)?;
            let annotate = crate::bridge::bridge(py)?.annotate_failure.bind(py);
            annotate.call1((err.value(py), steps))?;
            Ok(())
        };
        // The annotation must never replace the real error.
        let _ = attach();
        err
    }
}
