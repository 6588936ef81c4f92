//! Functions by value: the reduction `_dynamic_function_reduce` of the
//! Python helpers, built natively (same layout, so the same payloads).
//!
//! `(_make_function, (code, base_globals, None, None, closure),
//!   (attributes, slotstate), None, None, _function_setstate)`
//!
//! Nothing about the function itself is cached: its defaults, closure
//! contents, globals and attributes are read on every call. Only what
//! derives from its (immutable) code object is cached (`code_globals`).

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::bridge::bridge;
use crate::errors::owned;
use crate::py_compat::{function_closure, function_slot, function_slot_value, FuncSlot};
// The copies of names a payload carries are made as for code objects.
pub(crate) use super::code_reduction::copy_str;

/// `_extract_code_globals(code)`: a dict whose keys are the names
/// (`code_globals`, cached there per code object).
fn code_globals<'py>(code: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    Ok(super::code_globals::extract_code_globals(code)?.into_any())
}

/// Whether `value` is a module that can have submodules: a package or a
/// module of one (non-empty `__package__`), read from its dict.
fn is_package_module(value: &Bound<'_, PyAny>) -> bool {
    // SAFETY: GIL held; borrowed results are used while `value` is alive.
    unsafe {
        if ffi::PyModule_Check(value.as_ptr()) == 0 {
            return false;
        }
        let dict = ffi::PyModule_GetDict(value.as_ptr());
        if dict.is_null() {
            ffi::PyErr_Clear();
            return true;
        }
        let package =
            ffi::PyDict_GetItemWithError(dict, pyo3::intern!(value.py(), "__package__").as_ptr());
        if package.is_null() {
            // No __package__ at all: let the Python helper decide.
            ffi::PyErr_Clear();
            return true;
        }
        // Only a non-empty string (or something odd) can name a package.
        let truth = ffi::PyObject_IsTrue(package);
        if truth < 0 {
            ffi::PyErr_Clear();
        }
        truth != 0
    }
}

/// `dict[key] = value` through the C API (no conversions: the key is an
/// interned string, the value an object).
#[inline]
fn set_item(
    dict: &Bound<'_, PyDict>,
    key: &Bound<'_, PyString>,
    value: &Bound<'_, PyAny>,
) -> PyResult<()> {
    // SAFETY: GIL held (Bounds); all three are live objects, `dict` a dict.
    if unsafe { ffi::PyDict_SetItem(dict.as_ptr(), key.as_ptr(), value.as_ptr()) } != 0 {
        return Err(crate::errors::fetch(dict.py()));
    }
    Ok(())
}

/// The names of a function's module namespace that its base globals copy.
fn base_globals_keys(py: Python<'_>) -> [&Bound<'_, PyString>; 4] {
    [
        pyo3::intern!(py, "__package__"),
        pyo3::intern!(py, "__name__"),
        pyo3::intern!(py, "__path__"),
        pyo3::intern!(py, "__file__"),
    ]
}

/// The base globals of a function whose module namespace is `namespace`,
/// from `globals_ref` (`id(namespace)` to the dict shared by the functions
/// of one pickler with that namespace), entered there when new: a dict of
/// the namespace's `__package__`, `__name__`, `__path__` and `__file__`, as
/// far as it has them.
pub fn base_globals_in<'py>(
    globals_ref: &Bound<'py, PyDict>,
    namespace: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = namespace.py();
    let key = crate::py_compat::object_id(namespace.as_any())?;
    let base_globals = match globals_ref.get_item(&key)? {
        Some(g) => g,
        None => {
            let g = PyDict::new(py).into_any();
            globals_ref.set_item(&key, &g)?;
            g
        }
    };
    if base_globals.len()? == 0 {
        for k in base_globals_keys(py) {
            if let Some(v) = namespace.get_item(k)? {
                base_globals.set_item(k, v)?;
            }
        }
    }
    Ok(base_globals)
}

/// A new base globals dict for `namespace` (see `base_globals_in`), or the
/// dict `kept` holds when it has exactly the entries a new one would have:
/// the same keys, in the same order, with the very same values. `kept` is
/// a dict that only its holder refers to (its reference count says so
/// when it is looked at, after the lookups in `namespace`, which may run
/// Python code), so what it pickles to is what a new dict would pickle to.
/// `kept` then holds the dict returned.
///
/// For one-shot dumps, whose base globals no one else sees: the dict of
/// the previous dump is reused instead of building the same one again.
/// Up to 3.11, when neither the namespace nor the kept dict changed since
/// the last time (their version tags, see `KeptBaseGlobals`), it is reused
/// without looking the names up again.
///
/// # Safety
/// GIL held.
pub unsafe fn reuse_base_globals<'py>(
    namespace: &Bound<'py, PyDict>,
    kept: &mut KeptBaseGlobals,
) -> PyResult<Bound<'py, PyAny>> {
    let py = namespace.py();
    // Up to 3.11: neither dict changed since the kept one was made or found
    // the same (see `KeptBaseGlobals::stamp`): no need to look again.
    #[cfg(not(any(Py_3_12, PyPy)))]
    let namespace_stamp = {
        // SAFETY: both are live exact dicts, whose structs may be read; the
        // kept one is held by `kept`.
        let tag =
            |d: *mut ffi::PyObject| unsafe { (*d.cast::<ffi::PyDictObject>()).ma_version_tag };
        let now = (namespace.as_ptr() as usize, tag(namespace.as_ptr()));
        if let Some(dict) = kept.dict.as_ref() {
            // SAFETY: `dict` is alive (held by `kept`): its count may be read.
            let alone = unsafe { ffi::Py_REFCNT(dict.as_ptr()) } == 1;
            if alone && kept.stamp == Some((now.0, now.1, tag(dict.as_ptr()))) {
                return Ok(dict.bind(py).clone().into_any());
            }
        }
        now
    };
    let kept_dict = &mut kept.dict;
    let keys = base_globals_keys(py);
    let mut values: [Option<Bound<'py, PyAny>>; 4] = [None, None, None, None];
    for (value, k) in values.iter_mut().zip(keys) {
        *value = namespace.get_item(k)?;
    }
    let found = 'found: {
        let Some(dict) = kept_dict.as_ref() else {
            break 'found None;
        };
        let d = dict.as_ptr();
        // SAFETY: GIL held; `d` is an exact dict held by `kept` (only dicts
        // made here are kept). Reading its entries with `PyDict_Next` runs no
        // Python code; the pointers read are only compared.
        let same = unsafe {
            ffi::Py_REFCNT(d) == 1 && ffi::PyDict_CheckExact(d) != 0 && {
                let expected = keys
                    .iter()
                    .zip(values.iter())
                    .filter_map(|(k, v)| v.as_ref().map(|v| (k.as_ptr(), v.as_ptr())));
                let mut pos: ffi::Py_ssize_t = 0;
                let mut key = std::ptr::null_mut();
                let mut value = std::ptr::null_mut();
                let mut all = true;
                let mut n = 0;
                for (k, v) in expected {
                    n += 1;
                    if ffi::PyDict_Next(d, &mut pos, &mut key, &mut value) == 0
                        || key != k
                        || value != v
                    {
                        all = false;
                        break;
                    }
                }
                all && ffi::PyDict_Size(d) == n
            }
        };
        same.then(|| dict.bind(py).clone())
    };
    let g = match found {
        Some(g) => g,
        None => {
            let g = PyDict::new(py);
            for (k, v) in keys.iter().zip(values.iter()) {
                if let Some(v) = v {
                    set_item(&g, k, v)?;
                }
            }
            *kept_dict = Some(g.clone().unbind());
            g
        }
    };
    #[cfg(not(any(Py_3_12, PyPy)))]
    {
        // SAFETY: `g` is a live exact dict.
        let tag = unsafe { (*g.as_ptr().cast::<ffi::PyDictObject>()).ma_version_tag };
        kept.stamp = Some((namespace_stamp.0, namespace_stamp.1, tag));
    }
    Ok(g.into_any())
}

/// The base globals dict a one-shot dump made, kept for the next one on
/// the thread (see `reuse_base_globals`).
#[derive(Default)]
pub struct KeptBaseGlobals {
    dict: Option<Py<PyDict>>,
    /// Up to 3.11: the address and version tag (PEP 509) of the namespace
    /// the dict was last made or found right for, and the dict's own
    /// version tag then. Every change to a dict gives it a new tag, above
    /// all earlier ones, and a dict made later at the same address has a
    /// tag above them too: equal tags mean the same, unchanged dicts, so
    /// the dict is still right (when it is still only held here).
    #[cfg_attr(any(Py_3_12, PyPy), allow(dead_code))]
    stamp: Option<(usize, u64, u64)>,
}

/// What the by-value reduction of a function is made of, read from the
/// function (see `dynamic_function_reduce` for the layout). The engine
/// either builds the reduction from these parts or writes it directly.
pub struct FunctionParts<'py> {
    pub code: Bound<'py, PyAny>,
    /// The globals dict shared by the functions of one dump that share
    /// their module's namespace (`globals_ref`).
    pub base_globals: Bound<'py, PyAny>,
    /// The function's closure tuple (None when it has no free variables).
    pub closure: Bound<'py, PyAny>,
    /// Number of cells in the closure (0 without a closure).
    pub n_cells: usize,
    /// `__name__` and `__qualname__`, as read (not yet copied).
    pub name: Bound<'py, PyAny>,
    pub qualname: Bound<'py, PyAny>,
    pub annotations: Bound<'py, PyAny>,
    pub kwdefaults: Bound<'py, PyAny>,
    pub defaults: Bound<'py, PyAny>,
    pub module: Bound<'py, PyAny>,
    pub doc: Bound<'py, PyAny>,
    /// The globals the code uses that the namespace defines, in the order
    /// of `_extract_code_globals`.
    pub used: Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>,
    /// Whether a used global or closure value is a package (or a module
    /// of one), whose submodules the function may reach.
    pub has_module: bool,
    pub closure_values: Vec<Bound<'py, PyAny>>,
    /// The function's `__dict__` (None when it has none yet: empty).
    pub func_dict: Option<Bound<'py, PyDict>>,
}

/// Reads the parts of the by-value reduction of `func`.
///
/// # Safety
/// `func` must be an exact function object; the GIL must be held.
pub unsafe fn function_parts<'py>(
    func: &Bound<'py, PyAny>,
    base_globals_of: impl FnOnce(&Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<FunctionParts<'py>> {
    // SAFETY: `func` is an exact function (contract), whose struct may be read;
    // every object taken from it becomes a reference at once.
    unsafe {
        let py = func.py();
        let f = func.as_ptr();
        let code = Bound::from_borrowed_ptr(py, ffi::PyFunction_GetCode(f));
        if ffi::Py_TYPE(code.as_ptr()) != crate::py_compat::code_type() {
            // PyPy's builtin functions are functions whose code is not Python
            // bytecode (and whose globals are None): nothing to rebuild them from.
            return Err(crate::errors::pickling_error(
                py,
                format!(
                "Can't pickle {}: it is a builtin function, with no Python code to pickle by value",
                crate::errors::repr(func)
            ),
            ));
        }
        let namespace =
            Bound::from_borrowed_ptr(py, ffi::PyFunction_GetGlobals(f)).cast_into::<PyDict>()?;
        let none = py.None().into_bound(py);
        let closure = function_closure(func)?.unwrap_or_else(|| none.clone());

        let base_globals = base_globals_of(&namespace)?;

        // The slots are read from the function object itself, as its attribute
        // getters do (None for a null field).
        let field = |slot| function_slot_value(func, slot);
        let annotations = match function_slot(f, FuncSlot::Annotations) {
            Some(a) if !a.is_null() && ffi::PyDict_CheckExact(a) != 0 => {
                Bound::from_borrowed_ptr(py, a)
            }
            _ => {
                // Null, or the compiler's tuple of (name, value) pairs: the getter
                // makes (and stores) the dict.
                func.getattr(pyo3::intern!(py, "__annotations__"))?
            }
        };

        let mut used = Vec::new();
        let mut has_module = false;
        for name in code_globals(&code)?.try_iter()? {
            let name = name?;
            if let Some(value) = namespace.get_item(&name)? {
                has_module |= is_package_module(&value);
                used.push((name, value));
            }
        }
        let mut closure_values = Vec::new();
        let mut n_cells = 0;
        if !closure.is_none() {
            let cells = closure.cast::<PyTuple>()?;
            n_cells = cells.len();
            for cell in cells.iter() {
                let value = crate::py_compat::cell_get(cell.as_ptr());
                if value.is_null() {
                    // PyCell_Get raises nothing for an empty cell on CPython.
                    ffi::PyErr_Clear();
                    continue;
                }
                let value = Bound::from_owned_ptr(py, value);
                has_module |= is_package_module(&value);
                closure_values.push(value);
            }
        }
        let func_dict = crate::py_compat::function_dict(func)?;
        Ok(FunctionParts {
            code,
            base_globals,
            closure,
            n_cells,
            name: field(FuncSlot::Name)?,
            qualname: field(FuncSlot::Qualname)?,
            annotations,
            kwdefaults: field(FuncSlot::KwDefaults)?,
            defaults: field(FuncSlot::Defaults)?,
            module: field(FuncSlot::Module)?,
            doc: field(FuncSlot::Doc)?,
            used,
            has_module,
            closure_values,
            func_dict,
        })
    }
}

/// `_find_imported_submodules(code, deps)` for a function whose globals or
/// closure hold a package; an empty list otherwise.
pub fn submodules<'py>(parts: &FunctionParts<'py>) -> PyResult<Bound<'py, PyAny>> {
    let py = parts.code.py();
    if !parts.has_module {
        return Ok(PyList::empty(py).into_any());
    }
    let deps = PyList::new(
        py,
        parts
            .used
            .iter()
            .map(|(_, v)| v)
            .chain(parts.closure_values.iter()),
    )?;
    super::submodules::find_imported_submodules(&parts.code, deps.as_any()).map(Bound::into_any)
}

/// The by-value reduction of the function `func`.
///
/// # Safety
/// `func` must be an exact function object; the GIL must be held.
pub unsafe fn dynamic_function_reduce<'py>(
    func: &Bound<'py, PyAny>,
    globals_ref: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    if let Some(rv) = builtin_function_reduce(func)? {
        return Ok(rv);
    }
    // SAFETY: `func` is an exact function (contract), as `function_parts`
    // requires.
    unsafe {
        let parts = function_parts(func, |ns| base_globals_in(globals_ref, ns))?;
        build_function_reduce(&parts)
    }
}

/// PyPy's builtin functions (`float.fromhex`...) are function objects whose
/// code is not bytecode but a builtin-code object, which PyPy pickles by
/// reference to the interpreter. Such a function that goes by value (its
/// `__module__` is None, so no module has it) is rebuilt from that code,
/// as the reference does on PyPy: `(FunctionType, (code, {}, name,
/// defaults, closure), func.__dict__)`. None for any other function (always
/// on CPython, where builtins are not functions).
pub fn builtin_function_reduce<'py>(
    func: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    #[cfg(PyPy)]
    {
        let py = func.py();
        let code = func.getattr(pyo3::intern!(py, "__code__"))?;
        if code.get_type().as_ptr() == crate::py_compat::code_type().cast() {
            return Ok(None);
        }
        let args = (
            code,
            PyDict::new(py),
            func.getattr(pyo3::intern!(py, "__name__"))?,
            func.getattr(pyo3::intern!(py, "__defaults__"))?,
            func.getattr(pyo3::intern!(py, "__closure__"))?,
        );
        let rv = (
            func.get_type(),
            args,
            func.getattr(pyo3::intern!(py, "__dict__"))?,
        );
        Ok(Some(rv.into_pyobject(py)?.into_any()))
    }
    #[cfg(not(PyPy))]
    {
        let _ = func;
        Ok(None)
    }
}

/// The reduction of a function from its parts:
/// `(_make_function, (code, base_globals, None, None, closure of empty
/// cells), (attributes, slotstate), None, None, _function_setstate)`.
pub fn build_function_reduce<'py>(parts: &FunctionParts<'py>) -> PyResult<Bound<'py, PyAny>> {
    let py = parts.code.py();
    let none = py.None().into_bound(py);
    let closure_arg = if parts.closure.is_none() {
        none.clone()
    } else {
        let mut empty = Vec::with_capacity(parts.n_cells);
        for _ in 0..parts.n_cells {
            // SAFETY: GIL held (`py`); `PyCell_New` returns a new reference
            // (or null with an exception set), which `owned` takes over.
            empty.push(unsafe { owned(py, crate::py_compat::cell_new(std::ptr::null_mut())) }?);
        }
        PyTuple::new(py, empty)?.into_any()
    };
    let newargs = PyTuple::new(
        py,
        [
            parts.code.clone(),
            parts.base_globals.clone(),
            none.clone(),
            none.clone(),
            closure_arg,
        ],
    )?;

    let slotstate = PyDict::new(py);
    let slots: [(&Bound<'py, PyString>, Bound<'py, PyAny>); 8] = [
        (pyo3::intern!(py, "__name__"), copy_str(&parts.name)?),
        (
            pyo3::intern!(py, "__qualname__"),
            copy_str(&parts.qualname)?,
        ),
        (
            pyo3::intern!(py, "__annotations__"),
            parts.annotations.clone(),
        ),
        (
            pyo3::intern!(py, "__kwdefaults__"),
            parts.kwdefaults.clone(),
        ),
        (pyo3::intern!(py, "__defaults__"), parts.defaults.clone()),
        (pyo3::intern!(py, "__module__"), parts.module.clone()),
        (pyo3::intern!(py, "__doc__"), parts.doc.clone()),
        (pyo3::intern!(py, "__closure__"), parts.closure.clone()),
    ];
    for (key, value) in slots.iter() {
        set_item(&slotstate, key, value)?;
    }
    let used = PyDict::new(py);
    for (name, value) in &parts.used {
        // SAFETY: GIL held (`py`); `used` is an exact dict and the name and
        // value are held by `parts`.
        if unsafe { ffi::PyDict_SetItem(used.as_ptr(), name.as_ptr(), value.as_ptr()) } != 0 {
            return Err(crate::errors::fetch(py));
        }
    }
    set_item(
        &slotstate,
        pyo3::intern!(py, "_cloudpickle_submodules"),
        &submodules(parts)?,
    )?;
    set_item(&slotstate, pyo3::intern!(py, "__globals__"), used.as_any())?;

    let attributes = PyDict::new(py);
    for (k, v) in parts.func_dict.iter().flat_map(|d| d.iter()) {
        let k = match k.cast::<PyString>() {
            Ok(_) => copy_str(&k)?,
            Err(_) => k,
        };
        attributes.set_item(k, v)?;
    }
    // Engine-made temporaries: out of the garbage collector's way (see
    // `py::untrack`), once filled.
    for container in [newargs.as_any(), attributes.as_any(), slotstate.as_any()] {
        crate::py::untrack(container);
    }
    if let Ok(cells) = newargs.get_item(4) {
        crate::py::untrack(&cells);
    }
    let state = PyTuple::new(py, [attributes.into_any(), slotstate.into_any()])?;
    crate::py::untrack(state.as_any());
    let h = bridge(py)?;
    let rv = PyTuple::new(
        py,
        [
            h.make_function.bind(py).clone(),
            newargs.into_any(),
            state.into_any(),
            none.clone(),
            none,
            h.function_setstate.bind(py).clone(),
        ],
    )?;
    crate::py::untrack(rv.as_any());
    Ok(rv.into_any())
}

/// `_cell_reduce(cell)`: `(_make_empty_cell, ())` or `(_make_cell, (value,))`.
///
/// # Safety
/// `cell` must be a cell object; the GIL must be held.
pub unsafe fn cell_reduce<'py>(cell: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: `cell` is a cell (contract); `PyCell_Get` returns a new reference
    // or null (an empty cell).
    unsafe {
        let py = cell.py();
        let h = bridge(py)?;
        let value = crate::py_compat::cell_get(cell.as_ptr());
        if value.is_null() {
            ffi::PyErr_Clear();
            super::reduction(h.make_empty_cell.bind(py), ())
        } else {
            let value = Bound::from_owned_ptr(py, value);
            super::reduction(h.make_cell.bind(py), (value,))
        }
    }
}
