//! The dispatch tables: a pickler's `dispatch_table` (by default
//! `Pickler.dispatch_table`, a ChainMap of cloudpickle's reducers and
//! `copyreg.dispatch_table`).

use pyo3::exceptions::PyKeyError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

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
    Dicts(Vec<Bound<'py, PyAny>>),
    /// Any other mapping, consulted with `table[type]`.
    Mapping(Bound<'py, PyAny>),
}

impl<'py> Dispatch<'py> {
    pub(super) fn new(source: DispatchSource<'py>) -> Self {
        Dispatch::Unresolved(source)
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
fn chainmap_dicts<'py>(table: &Bound<'py, PyAny>) -> PyResult<Option<Vec<Bound<'py, PyAny>>>> {
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
    match maps.cast::<PyList>() {
        Ok(list) if list.iter().all(|m| m.is_exact_instance_of::<PyDict>()) => {
            Ok(Some(list.iter().collect()))
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
        let resolved = match table {
            None => Dispatch::Dicts(vec![unsafe {
                // SAFETY: the cached pointer is a strong, immortal reference.
                Bound::from_borrowed_ptr(py, self.c.copyreg_dispatch_table)
            }]),
            Some(table) => {
                let is_default = registered.is_some_and(|r| r.default_table.bind(py).is(&table));
                if table.is_exact_instance_of::<PyDict>() {
                    Dispatch::Dicts(vec![table])
                } else if is_default {
                    // The default ChainMap: consult its maps directly when
                    // they are all plain dicts (the usual case).
                    match chainmap_dicts(&table)? {
                        Some(dicts) => Dispatch::Dicts(dicts),
                        None => Dispatch::Mapping(table),
                    }
                } else {
                    Dispatch::Mapping(table)
                }
            }
        };
        self.dispatch = resolved;
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
                Dispatch::Dicts(dicts) => {
                    for d in dicts {
                        // Types hash by address and compare by identity, so this
                        // lookup runs no Python code.
                        let found = ffi::PyDict_GetItemWithError(d.as_ptr(), tp.cast());
                        if !found.is_null() {
                            return Ok(Some(Bound::from_borrowed_ptr(self.py, found)));
                        }
                        if !ffi::PyErr_Occurred().is_null() {
                            return Err(fetch(self.py));
                        }
                    }
                    Ok(None)
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
