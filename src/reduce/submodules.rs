//! Which imported submodules a function pickled by value may reach through
//! its globals (cloudpickle's `_find_imported_submodules`).
//!
//! `import xml.etree.ElementTree` makes the global `xml` visible to the
//! code, which then uses `xml.etree.ElementTree.parse`: only `xml` is a
//! global, yet loading the function must import the submodules too. A
//! submodule `pkg.a.b` qualifies when every part after the package name
//! (`a` and `b`) is among the names the code uses.

use std::sync::Mutex;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PySet, PyString};

use crate::errors::owned;

/// For every package with imported submodules, the names of those
/// submodules (at any depth) in `sys.modules` order, with the list of
/// `sys.modules` keys it was built from: scanning `sys.modules` for each
/// function pickled is slow, so the index is reused as long as the keys are
/// the same (comparing two lists of the same string objects is cheap).
static INDEX: Mutex<Option<(Py<PyList>, Py<PyDict>)>> = Mutex::new(None);

fn sys_modules(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    // SAFETY: GIL held; the module dict is borrowed from the interpreter,
    // which keeps it alive.
    let modules = unsafe { Bound::from_borrowed_ptr(py, ffi::PyImport_GetModuleDict()) };
    Ok(modules.cast_into::<PyDict>()?)
}

/// The index of imported submodules by package (see `INDEX`).
fn imported_submodules_by_package(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let keys = sys_modules(py)?.keys();
    // The lock is never held while Python code runs (comparing the keys
    // may run some): the entry is copied out first.
    let known = INDEX
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .as_ref()
        .map(|(keys, index)| (keys.clone_ref(py), index.clone_ref(py)));
    if let Some((known_keys, index)) = known {
        if known_keys.bind(py).eq(&keys)? {
            return Ok(index.into_bound(py));
        }
    }
    let index = PyDict::new(py);
    for name in keys.iter() {
        // Some tools put non-string keys (None) in sys.modules.
        let Ok(name) = name.cast_into::<PyString>() else {
            continue;
        };
        for prefix in package_prefixes(&name)? {
            match index.get_item(&prefix)? {
                Some(names) => names.cast_into::<PyList>()?.append(&name)?,
                None => index.set_item(&prefix, PyList::new(py, [&name])?)?,
            }
        }
    }
    let entry = (keys.unbind(), index.clone().unbind());
    // Replaced in one assignment, so concurrent readers see a consistent
    // pair; the old pair is released after the lock.
    let old = INDEX
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .replace(entry);
    drop(old);
    Ok(index)
}

/// `name[:i]` for every `.` at index `i` of the module name `name`
/// (`"a.b.c"` gives `"a"`, `"a.b"`), in code points as Python slices.
fn package_prefixes<'py>(name: &Bound<'py, PyString>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let py = name.py();
    let s = name.as_ptr();
    let mut prefixes = Vec::new();
    // SAFETY: GIL held; `s` is a live str for the whole loop.
    unsafe {
        let length = ffi::PyUnicode_GetLength(s);
        if length < 0 {
            return Err(crate::errors::fetch(py));
        }
        let mut start = 0;
        loop {
            let dot = ffi::PyUnicode_FindChar(s, '.' as ffi::Py_UCS4, start, length, 1);
            if dot == -2 {
                return Err(crate::errors::fetch(py));
            }
            if dot < 0 {
                return Ok(prefixes);
            }
            prefixes.push(owned(py, ffi::PyUnicode_Substring(s, 0, dot))?);
            start = dot + 1;
        }
    }
}

/// The already-imported submodules that `code` may reach as attributes of
/// the packages among `dependencies` (the values of the globals it uses,
/// then its closure values), in the order of the dependencies, then that
/// of `sys.modules`.
pub fn find_imported_submodules<'py>(
    code: &Bound<'py, PyAny>,
    dependencies: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let py = code.py();
    let found = PyList::empty(py);
    let mut lookup: Option<(Bound<'py, PyDict>, Bound<'py, PySet>)> = None;
    for dependency in dependencies.try_iter()? {
        let dependency = dependency?;
        // SAFETY: GIL held; only reads the object's type.
        if unsafe { ffi::PyModule_Check(dependency.as_ptr()) } == 0 {
            continue;
        }
        // Only packages (and their submodules) have a non-empty
        // __package__.
        match dependency.getattr_opt(pyo3::intern!(py, "__package__"))? {
            Some(package) if package.is_truthy()? => {}
            _ => continue,
        }
        if lookup.is_none() {
            let co_names = code.getattr(pyo3::intern!(py, "co_names"))?;
            lookup = Some((
                imported_submodules_by_package(py)?,
                PySet::new(py, co_names.try_iter()?.collect::<PyResult<Vec<_>>>()?)?,
            ));
        }
        let Some((index, used_names)) = &lookup else {
            continue;
        };
        let package = dependency.getattr(pyo3::intern!(py, "__name__"))?;
        let start = package.len()? + 1;
        let Some(names) = index.get_item(&package)? else {
            continue;
        };
        for name in names.cast_into::<PyList>()?.iter() {
            let tail =
                name.get_item(pyo3::types::PySlice::new(py, start as isize, isize::MAX, 1))?;
            let parts = tail.call_method1(pyo3::intern!(py, "split"), (".",))?;
            let mut all_used = true;
            for part in parts.try_iter()? {
                if !used_names.contains(part?)? {
                    all_used = false;
                    break;
                }
            }
            if !all_used {
                continue;
            }
            // Removed meanwhile by another thread: skipped.
            if let Some(module) = sys_modules(py)?.get_item(&name)? {
                found.append(module)?;
            }
        }
    }
    Ok(found)
}

/// `_find_imported_submodules(code, top_level_dependencies)`: see
/// `find_imported_submodules`.
#[pyfunction]
#[pyo3(name = "_find_imported_submodules")]
pub fn find_imported_submodules_py<'py>(
    code: &Bound<'py, PyAny>,
    top_level_dependencies: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    find_imported_submodules(code, top_level_dependencies)
}
