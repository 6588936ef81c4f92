//! "Which module holds this object": the one place where an object without
//! a usable `__module__` is searched for in `sys.modules`, where a dotted
//! name is followed from a module, and where an object found in one of
//! this package's private modules is named after its public module.
//!
//! Two callers want two slightly different searches, both kept here:
//! pickle's own (`save_global`: the main module is the default, a lookup
//! error other than AttributeError propagates) and cloudpickle's
//! (`_whichmodule`: no default, every probing error ignored).

use std::sync::OnceLock;

use pyo3::exceptions::PyAttributeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::cache::ObjectCache;
use crate::lookup::{deep_getattr, dotted_path, imported_module};

/// Which of the two searches of `sys.modules` to run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Search {
    /// As `_pickle.c`'s `whichmodule`: skips `__main__` and None entries,
    /// and propagates lookup errors other than AttributeError (its caller
    /// answers `__main__` when nothing holds the object).
    Pickle,
    /// As cloudpickle's `_whichmodule`: skips `__main__`, `__mp_main__`
    /// and whatever is not a module, ignores every probing error, and
    /// answers None when nothing holds the object.
    Cloudpickle,
}

/// Modules found for objects without `__module__`, by object: scanning
/// every imported module is slow, so the answer is remembered and only
/// re-checked (one lookup) on later calls.
static WHICHMODULE: ObjectCache<Py<PyString>> = ObjectCache::new(1024);

/// The public module of this package, whose name objects of its private
/// modules (`cloudpickle._engine`, `cloudpickle._reconstructors`...) are
/// given when it holds them too.
const PUBLIC_MODULE: &str = "cloudpickle.cloudpickle";
const PRIVATE_PREFIX: &str = "cloudpickle._";

/// The name given to objects found in a private module and exposed by the
/// public one: one string object for the process (not the one the
/// reconstructors carry as `__module__`: the memo works by identity, and
/// payloads must stay as they were).
fn public_module_string(py: Python<'_>) -> Bound<'_, PyString> {
    static NAME: OnceLock<Py<PyString>> = OnceLock::new();
    NAME.get_or_init(|| PyString::new(py, PUBLIC_MODULE).unbind())
        .bind(py)
        .clone()
}

/// `owner.a.b.c` for `dotted == "a.b.c"`, as pickle resolves a qualified
/// name: AttributeError when a step is missing or is the `<locals>` of a
/// function (such objects cannot be found by name).
///
/// # Safety
/// The GIL must be held.
pub unsafe fn getattribute<'py>(
    owner: &Bound<'py, PyAny>,
    dotted: &Bound<'py, PyString>,
) -> PyResult<Bound<'py, PyAny>> {
    let path = dotted_path(dotted)?;
    for part in path.iter() {
        if part.cast::<PyString>()?.to_cow()? == "<locals>" {
            return Err(PyAttributeError::new_err(format!(
                "cannot reach a local object through {}",
                dotted.repr()?
            )));
        }
    }
    Ok(deep_getattr(owner, &path)?.0)
}

/// `module_name`, or the public module's name when `module_name` is one of
/// this package's private modules and the public module holds `obj` under
/// `dotted` too.
///
/// # Safety
/// The GIL must be held.
pub unsafe fn public_module_name<'py>(
    obj: &Bound<'py, PyAny>,
    dotted: &Bound<'py, PyString>,
    module_name: Bound<'py, PyString>,
) -> PyResult<Bound<'py, PyString>> {
    let py = obj.py();
    if !module_name.to_cow()?.starts_with(PRIVATE_PREFIX) {
        return Ok(module_name);
    }
    let public_name = public_module_string(py);
    let Some(public) = imported_module(py, &public_name) else {
        return Ok(module_name);
    };
    // SAFETY: GIL held (caller's contract).
    match unsafe { getattribute(&public, dotted) } {
        Ok(found) if found.is(obj) => Ok(public_name),
        Ok(_) => Ok(module_name),
        // Probing must never fail pickling.
        Err(_) => Ok(module_name),
    }
}

/// The module remembered for `obj` (found by scanning `sys.modules`
/// earlier), if it still holds `obj` under `name`.
///
/// # Safety
/// The GIL must be held.
pub unsafe fn remembered_module<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyString>>> {
    let py = obj.py();
    let cached = WHICHMODULE.get(obj.as_ptr(), |module_name| module_name.bind(py).clone());
    let Some(module_name) = cached else {
        return Ok(None);
    };
    let Some(module) = imported_module(py, &module_name) else {
        return Ok(None);
    };
    let path = dotted_path(name)?;
    match deep_getattr(&module, &path) {
        Ok((found, _)) if found.is(obj) => Ok(Some(module_name)),
        // A lookup error only means "no longer there": dropped.
        _ => Ok(None),
    }
}

/// Remembers that `module_name` holds `obj` (see `remembered_module`).
pub fn remember_module(obj: &Bound<'_, PyAny>, module_name: &Bound<'_, PyString>) {
    WHICHMODULE.insert(obj, module_name.clone().unbind());
}

/// The first imported module holding `obj` under the dotted `name` (split
/// as `path`), searched as `search` says; `Ok(None)` when none does
/// (pickle's caller then answers `__main__`).
///
/// # Safety
/// The GIL must be held.
pub unsafe fn search_modules<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
    path: &Bound<'py, PyList>,
    search: Search,
) -> PyResult<Option<Bound<'py, PyString>>> {
    let py = obj.py();
    // SAFETY: GIL held (caller's contract).
    if let Some(found) = unsafe { remembered_module(obj, name) }? {
        return Ok(Some(found));
    }
    if search == Search::Cloudpickle {
        for part in path.iter() {
            if part.cast::<PyString>()?.to_cow()? == "<locals>" {
                return Ok(None);
            }
        }
    }
    // SAFETY: GIL held; the module dict is borrowed from the interpreter,
    // which keeps it alive.
    let modules = unsafe { Bound::from_borrowed_ptr(py, ffi::PyImport_GetModuleDict()) };
    // A snapshot: probing attributes may import modules, and other threads
    // may import concurrently.
    let snapshot = modules.cast_into::<PyDict>()?.copy()?;
    for (module_name, module) in snapshot.iter() {
        let Ok(module_name) = module_name.cast_into::<PyString>() else {
            continue;
        };
        let key = module_name.to_cow()?;
        if key == "__main__" || module.is_none() {
            continue;
        }
        if search == Search::Cloudpickle {
            if key == "__mp_main__" {
                continue;
            }
            // SAFETY: GIL held; `module` is alive.
            if unsafe { ffi::PyModule_Check(module.as_ptr()) } == 0 {
                continue;
            }
        }
        match deep_getattr(&module, path) {
            Ok((candidate, _)) if candidate.is(obj) => {
                // SAFETY: GIL held (caller's contract).
                let found = unsafe { public_module_name(obj, name, module_name) }?;
                remember_module(obj, &found);
                return Ok(Some(found));
            }
            Ok(_) => {}
            Err(e) if search == Search::Pickle && !e.is_instance_of::<PyAttributeError>(py) => {
                return Err(e)
            }
            Err(_) => {}
        }
    }
    Ok(None)
}

/// cloudpickle's `_whichmodule(obj, name)`: `obj.__module__` when it is
/// not None (whatever it is), otherwise the first imported module holding
/// `obj` under `name` (see `Search::Cloudpickle`), or None.
///
/// # Safety
/// The GIL must be held.
pub unsafe fn whichmodule<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = obj.py();
    if let Some(module_name) = obj.getattr_opt(pyo3::intern!(py, "__module__"))? {
        if !module_name.is_none() {
            return Ok(Some(module_name));
        }
    }
    // A name that is not a string designates nothing.
    let Ok(name) = name.cast::<PyString>() else {
        return Ok(None);
    };
    let path = dotted_path(name)?;
    // SAFETY: GIL held (caller's contract).
    Ok(unsafe { search_modules(obj, name, &path, Search::Cloudpickle) }?.map(Bound::into_any))
}
