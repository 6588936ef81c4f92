//! Type variables (`typing.TypeVar`): by reference, `getattr(module,
//! name)`, when their module holds them under their name and is not
//! registered for pickling by value (the decision of `by_value`, as for
//! functions and classes); otherwise by value, rebuilt by `_make_typevar`
//! with their tracker id (`tracker_id`), so that one type variable loaded
//! twice is one object.

use pyo3::prelude::*;
use pyo3::types::{PyModule, PyTuple};

use crate::bridge::bridge;
use crate::pickler::tracker_id::get_or_create_tracker_id;
use crate::reduce::reduction;

/// The arguments of `_make_typevar` for the type variable `obj`: `(name,
/// bound, constraints, covariant, contravariant, tracker_id)`, read in
/// that order (a bound may be evaluated lazily, on first read).
pub fn decompose_typevar<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    let py = obj.py();
    let name = obj.getattr(pyo3::intern!(py, "__name__"))?;
    let bound = obj.getattr(pyo3::intern!(py, "__bound__"))?;
    let constraints = obj.getattr(pyo3::intern!(py, "__constraints__"))?;
    let covariant = obj.getattr(pyo3::intern!(py, "__covariant__"))?;
    let contravariant = obj.getattr(pyo3::intern!(py, "__contravariant__"))?;
    let tracker_id = get_or_create_tracker_id(obj)?;
    PyTuple::new(
        py,
        [
            name,
            bound,
            constraints,
            covariant,
            contravariant,
            tracker_id,
        ],
    )
}

/// `(getattr, (module, name))` or `(_make_typevar, decompose_typevar(obj))`.
pub fn typevar_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let name = obj.getattr(pyo3::intern!(py, "__name__"))?;
    // SAFETY: GIL held; `obj` is alive (borrowed by the caller).
    let found = unsafe { crate::by_value::importable_by_reference(obj, Some(&name)) }?;
    match found {
        Some(module_and_name) => reduction(&crate::py::builtins_getattr(py), module_and_name),
        None => reduction(bridge(py)?.make_typevar.bind(py), decompose_typevar(obj)?),
    }
}

/// `_typevar_reduce(obj)`: how the type variable `obj` is pickled (see the
/// module docs).
#[pyfunction]
#[pyo3(name = "_typevar_reduce")]
fn typevar_reduce_py<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    typevar_reduce(obj)
}

/// `_decompose_typevar(obj)`: the arguments of `_make_typevar` for the
/// type variable `obj`.
#[pyfunction]
#[pyo3(name = "_decompose_typevar")]
fn decompose_typevar_py<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    decompose_typevar(obj)
}

/// Adds these functions to the `_engine` module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(typevar_reduce_py, m)?)?;
    m.add_function(wrap_pyfunction!(decompose_typevar_py, m)?)?;
    Ok(())
}
