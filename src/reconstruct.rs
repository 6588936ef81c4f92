//! Load-side reconstructors implemented natively: payloads call them by
//! name (`cloudpickle.cloudpickle._make_function`, ...), with the same
//! arguments and behaviour as the Python versions in `_reconstructors.py`
//! (and as the reference cloudpickle's), so the wire format is unchanged.
//! They run once per function (and per cell) in every payload loaded, so
//! they use the C API directly rather than attribute lookups.

use crate::py_compat::{function_slot, FuncSlot};
use std::sync::OnceLock;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::errors::{fetch, owned};

/// `builtins.__dict__`, looked up once.
static BUILTINS: OnceLock<Py<PyAny>> = OnceLock::new();

fn builtins_dict(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    if let Some(b) = BUILTINS.get() {
        return Ok(b.bind(py));
    }
    let dict = py
        .import(pyo3::intern!(py, "builtins"))?
        .getattr(pyo3::intern!(py, "__dict__"))?;
    let _ = BUILTINS.set(dict.unbind());
    Ok(BUILTINS.get().expect("just set").bind(py))
}

/// Create the skeleton of a function sent by value:
/// `types.FunctionType(code, globals, name, argdefs, closure)`, with the
/// builtins made explicit in `globals`.
#[pyfunction]
#[pyo3(name = "_make_function")]
pub fn make_function<'py>(
    py: Python<'py>,
    code: &Bound<'py, PyAny>,
    globals: &Bound<'py, PyAny>,
    name: &Bound<'py, PyAny>,
    argdefs: &Bound<'py, PyAny>,
    closure: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    globals.set_item(pyo3::intern!(py, "__builtins__"), builtins_dict(py)?)?;
    // SAFETY: the function type, a static type object; GIL held.
    let function_type =
        unsafe { crate::py::type_object(py, std::ptr::addr_of_mut!(ffi::PyFunction_Type)) };
    // The type's own constructor: the same argument checks as Python's.
    function_type.call1((code, globals, name, argdefs, closure))
}

/// Give a function built by `_make_function` its state
/// `(attributes, slotstate)`: attributes into its `__dict__`, the globals it
/// uses into its namespace, the closure values into its cells, and the
/// other slot entries (`__qualname__`, `__defaults__`, ...) as attributes.
#[pyfunction]
#[pyo3(name = "_function_setstate")]
pub fn function_setstate<'py>(obj: &Bound<'py, PyAny>, state: &Bound<'py, PyAny>) -> PyResult<()> {
    let py = obj.py();
    let state = state.cast::<PyTuple>()?;
    if state.len() != 2 {
        return Err(PyTypeError::new_err(
            "function state must be (attributes, slotstate)",
        ));
    }
    // SAFETY: (the whole function) GIL held; every pointer read below is
    // borrowed from an object that `obj` or `state` keeps alive, and the
    // C functions are called on objects of the type they require (checked).
    unsafe {
        if ffi::PyFunction_Check(obj.as_ptr()) == 0 {
            return Err(PyTypeError::new_err(
                "_function_setstate expects a function",
            ));
        }
        let attributes = state.get_item(0)?;
        let slotstate = state.get_item(1)?.cast_into::<PyDict>()?;
        let empty_attributes = attributes
            .cast::<PyDict>()
            .map(|d| d.is_empty())
            .unwrap_or(false);
        if !empty_attributes {
            obj.getattr(pyo3::intern!(py, "__dict__"))?
                .call_method1(pyo3::intern!(py, "update"), (attributes,))?;
        }

        let namespace = ffi::PyFunction_GetGlobals(obj.as_ptr());
        if let Some(used) = slotstate.get_item(pyo3::intern!(py, "__globals__"))? {
            if ffi::PyDict_Update(namespace, used.as_ptr()) != 0 {
                return Err(fetch(py));
            }
        }
        let key = pyo3::intern!(py, "__builtins__");
        if ffi::PyDict_SetItem(namespace, key.as_ptr(), builtins_dict(py)?.as_ptr()) != 0 {
            return Err(fetch(py));
        }

        if let Some(shipped) = slotstate.get_item(pyo3::intern!(py, "__closure__"))? {
            if !shipped.is_none() {
                let own = crate::py_compat::function_closure(obj)?;
                set_closure(
                    py,
                    own.as_ref().map_or(std::ptr::null_mut(), |o| o.as_ptr()),
                    &shipped,
                )?;
            }
        }

        let skip = [
            pyo3::intern!(py, "__globals__"),
            pyo3::intern!(py, "__closure__"),
            pyo3::intern!(py, "_cloudpickle_submodules"),
        ];
        for (attr, value) in slotstate.iter() {
            let attr = attr.cast_into::<PyString>()?;
            // Keys are usually the interned names themselves.
            if skip.iter().any(|s| s.is(&attr))
                || matches!(
                    attr.to_str(),
                    Ok("__globals__" | "__closure__" | "_cloudpickle_submodules")
                )
            {
                continue;
            }
            if already_set(obj.as_ptr(), &attr, &value) {
                continue;
            }
            if ffi::PyObject_SetAttr(obj.as_ptr(), attr.as_ptr(), value.as_ptr()) != 0 {
                return Err(fetch(py));
            }
        }
    }
    Ok(())
}

/// Whether the function `func` (just made by `_make_function`) already
/// holds `value` as its attribute `attr`, so that assigning it would change
/// nothing: the name and qualified name taken from the code object, the
/// module taken from the globals, no docstring, no defaults, no
/// annotations. Read from the function object itself; any doubt answers
/// false (the attribute is then assigned as usual).
///
/// # Safety
/// GIL held; `func` is an exact function object.
unsafe fn already_set(
    func: *mut ffi::PyObject,
    attr: &Bound<'_, PyString>,
    value: &Bound<'_, PyAny>,
) -> bool {
    // SAFETY: `func` is an exact function (contract), whose struct may be read;
    // only pointers it holds are compared.
    unsafe {
        let field = |slot| function_slot(func, slot);
        let v = value.as_ptr();
        let same_str = |current: Option<*mut ffi::PyObject>| {
            let Some(current) = current else {
                return false;
            };
            !current.is_null()
                && (current == v
                    || (ffi::PyUnicode_CheckExact(current) != 0
                        && ffi::PyUnicode_CheckExact(v) != 0
                        && ffi::PyUnicode_Compare(current, v) == 0))
        };
        let empty_dict = || ffi::PyDict_CheckExact(v) != 0 && ffi::PyDict_Size(v) == 0;
        match attr.to_str() {
            Ok("__name__") => same_str(field(FuncSlot::Name)),
            Ok("__qualname__") => same_str(field(FuncSlot::Qualname)),
            Ok("__module__") => same_str(field(FuncSlot::Module)),
            Ok("__doc__") => field(FuncSlot::Doc) == Some(v),
            Ok("__defaults__") => {
                v == ffi::Py_None() && field(FuncSlot::Defaults) == Some(std::ptr::null_mut())
            }
            Ok("__kwdefaults__") => {
                v == ffi::Py_None() && field(FuncSlot::KwDefaults) == Some(std::ptr::null_mut())
            }
            Ok("__annotations__") => {
                field(FuncSlot::Annotations) == Some(std::ptr::null_mut()) && empty_dict()
            }
            _ => false,
        }
    }
}

/// Copies the values of the shipped cells into the function's own cells
/// (an empty shipped cell leaves its counterpart empty).
///
/// # Safety
/// GIL held; `own` is the function's closure (a tuple) or null.
unsafe fn set_closure(
    py: Python<'_>,
    own: *mut ffi::PyObject,
    shipped: &Bound<'_, PyAny>,
) -> PyResult<()> {
    // SAFETY: `own` is null or the function's closure tuple (contract); each
    // cell in it is alive as long as the tuple is.
    unsafe {
        let Ok(shipped) = shipped.cast::<PyTuple>() else {
            return Err(PyTypeError::new_err("__closure__ must be a tuple of cells"));
        };
        let own_len = if own.is_null() {
            0
        } else {
            crate::py_compat::tuple_size(own) as usize
        };
        for (i, shipped_cell) in shipped.iter().enumerate() {
            if i >= own_len {
                break;
            }
            let own_cell = crate::py_compat::tuple_item(own, i as ffi::Py_ssize_t);
            if ffi::PyCell_Check(own_cell) == 0 || ffi::PyCell_Check(shipped_cell.as_ptr()) == 0 {
                return Err(PyTypeError::new_err("closure entries must be cells"));
            }
            // A new reference, or null (no exception) when the cell is empty.
            let value = crate::py_compat::cell_get(shipped_cell.as_ptr());
            if value.is_null() {
                ffi::PyErr_Clear();
                continue;
            }
            let value = Bound::from_owned_ptr(py, value);
            if crate::py_compat::cell_set(own_cell, value.as_ptr()) != 0 {
                return Err(fetch(py));
            }
        }
        Ok(())
    }
}

/// `_make_empty_cell()`: a new cell that holds no value.
#[pyfunction]
#[pyo3(name = "_make_empty_cell")]
pub fn make_empty_cell(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    // SAFETY: GIL held; PyCell_New(NULL) returns a new reference or null.
    unsafe { owned(py, crate::py_compat::cell_new(std::ptr::null_mut())) }
}

/// `_make_cell(value=_empty_cell_value)`: a new cell holding `value`, or an
/// empty one when it is omitted or is the `_empty_cell_value` marker.
#[pyfunction]
#[pyo3(name = "_make_cell", signature = (*args, **kwargs))]
pub fn make_cell<'py>(
    py: Python<'py>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let kwargs = kwargs.filter(|k| !k.is_empty());
    let value = match (args.len(), kwargs) {
        (0, None) => None,
        (1, None) => Some(args.get_item(0)?),
        (0, Some(k)) if k.len() == 1 => match k.get_item(pyo3::intern!(py, "value"))? {
            Some(v) => Some(v),
            None => {
                return Err(PyTypeError::new_err(
                    "_make_cell() got an unexpected keyword argument",
                ))
            }
        },
        _ => {
            return Err(PyTypeError::new_err(
                "_make_cell() takes at most 1 argument (value)",
            ))
        }
    };
    let value = match value {
        Some(v) if !v.is(crate::bridge::bridge(py)?.empty_cell_value.bind(py)) => v.as_ptr(),
        _ => std::ptr::null_mut(),
    };
    // SAFETY: GIL held; PyCell_New takes a borrowed value (or null) and
    // returns a new reference or null.
    unsafe { owned(py, crate::py_compat::cell_new(value)) }
}
