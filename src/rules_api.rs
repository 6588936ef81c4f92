//! The engine's rules as Python functions: what `cloudpickle.cloudpickle`
//! exposes under the private names of cloudpickle 3.1.3
//! (`_should_pickle_by_reference`, `_whichmodule`, `_cell_reduce`...),
//! which client code imports and calls. Each one calls the very Rust code
//! `dumps` runs (`by_value`, `which_module`, `reduce`): there is no second
//! copy of a rule in Python. Arguments are checked here, so bad input is a
//! Python exception, never undefined behaviour.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule, PyString, PyTuple};

use crate::bridge::bridge;
use crate::by_value;
use crate::errors::{require_exact_type, wrong_type};
use crate::pickler::tracker_id::get_or_create_tracker_id;
use crate::reduce::class_rule::{class_rule, ClassRule};
use crate::reduce::{class_reduction, function_reduction, reduction};
use crate::which_module;

/// `_should_pickle_by_reference(obj, name=None)`: whether the function,
/// class or module `obj` is pickled by reference (re-imported by name when
/// loading) rather than by value. TypeError for other objects.
#[pyfunction]
#[pyo3(name = "_should_pickle_by_reference", signature = (obj, name = None))]
pub fn should_pickle_by_reference(
    obj: &Bound<'_, PyAny>,
    name: Option<&Bound<'_, PyAny>>,
) -> PyResult<bool> {
    by_value::should_pickle_by_reference_any(obj, name)
}

/// `_lookup_module_and_qualname(obj, name=None)`: `(module, name)` under
/// which `obj` can be imported by the loading process, or None.
#[pyfunction]
#[pyo3(name = "_lookup_module_and_qualname", signature = (obj, name = None))]
pub fn lookup_module_and_qualname<'py>(
    obj: &Bound<'py, PyAny>,
    name: Option<&Bound<'py, PyAny>>,
) -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyString>)>> {
    // SAFETY: GIL held; `obj` is alive (borrowed by the caller).
    unsafe { by_value::lookup_module_and_qualname(obj, name) }
}

/// `_typevar_by_reference(obj)`: `(module, name)` when the type variable
/// `obj` is pickled by reference (`getattr(module, name)`), None when it
/// travels by value. Its name is `obj.__name__` (type variables have no
/// qualified name).
#[pyfunction]
#[pyo3(name = "_typevar_by_reference")]
pub fn typevar_by_reference<'py>(
    obj: &Bound<'py, PyAny>,
) -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyString>)>> {
    let name = obj.getattr(pyo3::intern!(obj.py(), "__name__"))?;
    // SAFETY: GIL held; `obj` is alive (borrowed by the caller).
    unsafe { by_value::importable_by_reference(obj, Some(&name)) }
}

/// `_whichmodule(obj, name)`: `obj.__module__` when not None, else the
/// first imported module (not the main one) holding `obj` under `name`, or
/// None.
#[pyfunction]
#[pyo3(name = "_whichmodule")]
pub fn whichmodule<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    // SAFETY: GIL held; `obj` is alive (borrowed by the caller).
    unsafe { which_module::whichmodule(obj, name) }
}

/// `_public_module_name(obj, name, module_name)`: `module_name`, or
/// `"cloudpickle.cloudpickle"` when `module_name` is a private module of
/// this package and the public module holds `obj` under `name` too.
#[pyfunction]
#[pyo3(name = "_public_module_name")]
pub fn public_module_name<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
    module_name: Bound<'py, PyString>,
) -> PyResult<Bound<'py, PyString>> {
    // SAFETY: GIL held; the arguments are alive (borrowed by the caller).
    unsafe { which_module::public_module_name(obj, name, module_name) }
}

/// `_getattribute(owner, dotted_name)`: `owner.a.b.c` for `"a.b.c"`;
/// AttributeError when a step is missing or is `<locals>`.
#[pyfunction]
#[pyo3(name = "_getattribute")]
pub fn getattribute<'py>(
    owner: &Bound<'py, PyAny>,
    dotted_name: &Bound<'py, PyString>,
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: GIL held; the arguments are alive (borrowed by the caller).
    unsafe { which_module::getattribute(owner, dotted_name) }
}

/// `_is_registered_pickle_by_value(module)`: whether `module`, or a
/// package containing it, was registered with `register_pickle_by_value`.
#[pyfunction]
#[pyo3(name = "_is_registered_pickle_by_value")]
pub fn is_registered_pickle_by_value(module: &Bound<'_, PyAny>) -> PyResult<bool> {
    by_value::is_registered_module(module)
}

/// `_cell_reduce(cell)`: `(_make_empty_cell, ())` or `(_make_cell,
/// (value,))`.
#[pyfunction]
#[pyo3(name = "_cell_reduce")]
pub fn cell_reduce<'py>(cell: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    require_exact_type(
        cell,
        std::ptr::addr_of_mut!(ffi::PyCell_Type),
        "_cell_reduce expects a cell",
    )?;
    // SAFETY: `cell` is a cell (checked above); GIL held.
    unsafe { function_reduction::cell_reduce(cell) }
}

/// `_module_reduce(module)`: `(subimport, (name,))` for a module pickled by
/// reference, else `(dynamic_subimport, (name, namespace))` with its
/// namespace minus `__builtins__` (the loading side provides its own).
#[pyfunction]
#[pyo3(name = "_module_reduce")]
pub fn module_reduce<'py>(module: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = module.py();
    if !module.is_instance_of::<PyModule>() {
        return Err(wrong_type(module, "_module_reduce expects a module"));
    }
    let h = bridge(py)?;
    let name = module.getattr(pyo3::intern!(py, "__name__"))?;
    if by_value::module_by_reference(module)? {
        return reduction(h.subimport.bind(py), (name,));
    }
    let namespace = module
        .getattr(pyo3::intern!(py, "__dict__"))?
        .cast_into::<PyDict>()?
        .copy()?;
    if namespace.contains(pyo3::intern!(py, "__builtins__"))? {
        namespace.del_item(pyo3::intern!(py, "__builtins__"))?;
    }
    reduction(h.dynamic_subimport.bind(py), (name, namespace))
}

/// Gives the garbage collector back the containers of a function
/// reduction that the engine built untracked (`py::untrack`): handed to
/// Python code, they may end up in reference cycles.
fn track_reduction(rv: &Bound<'_, PyAny>) -> PyResult<()> {
    // These are fully built, so they may be tracked (py_compat: a no-op on
    // PyPy).
    use crate::py_compat::gc_track as track;
    track(rv);
    let newargs = rv.get_item(1)?;
    track(&newargs);
    track(&newargs.get_item(4)?);
    let state = rv.get_item(2)?;
    track(&state);
    track(&state.get_item(0)?);
    track(&state.get_item(1)?);
    Ok(())
}

/// The by-value reduction of the function `func`, as `dumps` builds it,
/// with `globals_ref` (a new dict when None) mapping `id(func.__globals__)`
/// to the globals dict shipped for it.
fn function_reduction_of<'py>(
    func: &Bound<'py, PyAny>,
    globals_ref: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = func.py();
    require_exact_type(
        func,
        std::ptr::addr_of_mut!(ffi::PyFunction_Type),
        "expected a function",
    )?;
    let globals_ref = match globals_ref {
        Some(g) => g.clone(),
        None => PyDict::new(py),
    };
    // SAFETY: `func` is an exact function (checked above); GIL held.
    let rv = unsafe { function_reduction::dynamic_function_reduce(func, &globals_ref) }?;
    track_reduction(&rv)?;
    Ok(rv)
}

/// `_dynamic_function_reduce(func, globals_ref=None)`: the by-value reduce
/// tuple of `func`, `(_make_function, newargs, state, None, None,
/// _function_setstate)`.
#[pyfunction]
#[pyo3(name = "_dynamic_function_reduce", signature = (func, globals_ref = None))]
pub fn dynamic_function_reduce<'py>(
    func: &Bound<'py, PyAny>,
    globals_ref: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    function_reduction_of(func, globals_ref)
}

/// `_function_reduce(func, globals_ref=None)`: NotImplemented when `func`
/// goes by reference, otherwise its by-value reduce tuple.
#[pyfunction]
#[pyo3(name = "_function_reduce", signature = (func, globals_ref = None))]
pub fn function_reduce<'py>(
    func: &Bound<'py, PyAny>,
    globals_ref: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = func.py();
    if by_value::is_function_or_class(func)
        // SAFETY: GIL held; `func` is alive (borrowed by the caller).
        && unsafe { by_value::should_pickle_by_reference(func) }?
    {
        return Ok(py.NotImplemented().into_bound(py));
    }
    function_reduction_of(func, globals_ref)
}

/// `_function_getnewargs(func, globals_ref)`: the arguments of
/// `_make_function`, `(code, base_globals, None, None, closure)`.
#[pyfunction]
#[pyo3(name = "_function_getnewargs", signature = (func, globals_ref = None))]
pub fn function_getnewargs<'py>(
    func: &Bound<'py, PyAny>,
    globals_ref: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    function_reduction_of(func, globals_ref)?.get_item(1)
}

/// `_function_getstate(func)`: the state `_function_setstate` restores,
/// `(attributes, slotstate)`.
#[pyfunction]
#[pyo3(name = "_function_getstate")]
pub fn function_getstate<'py>(func: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    function_reduction_of(func, None)?.get_item(2)
}

// Classes and enums by value (`reduce::class_reduction`), minting tracker
// ids with the pickler's `tracker_id`.

/// `_get_bases(typ)`: the bases the class `typ` is rebuilt with
/// (`__orig_bases__` when the class defines it, else `__bases__`).
#[pyfunction]
#[pyo3(name = "_get_bases")]
fn get_bases<'py>(typ: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    class_reduction::get_bases(typ)
}

/// `_extract_class_dict(cls)`: the class's own namespace, keys sorted (as
/// copies), without what it merely inherits from its bases.
#[pyfunction]
#[pyo3(name = "_extract_class_dict")]
fn extract_class_dict<'py>(cls: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    class_reduction::extract_class_dict(cls)
}

/// `_class_getnewargs(obj)`: the arguments of `_make_skeleton_class`.
#[pyfunction]
#[pyo3(name = "_class_getnewargs")]
fn class_getnewargs<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    class_reduction::class_getnewargs(obj, get_or_create_tracker_id)
}

/// `_enum_getnewargs(obj)`: the arguments of `_make_skeleton_enum`.
#[pyfunction]
#[pyo3(name = "_enum_getnewargs")]
fn enum_getnewargs<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    class_reduction::enum_getnewargs(obj, get_or_create_tracker_id)
}

/// `_class_getstate(obj)`: `(class_dict, {})`, the state `_class_setstate`
/// applies to the skeleton of the class `obj`.
#[pyfunction]
#[pyo3(name = "_class_getstate")]
fn class_getstate<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    class_reduction::class_getstate(obj)
}

/// `_enum_getstate(obj)`: the state of the enum class `obj`, without its
/// members and what the enum metaclass rebuilds.
#[pyfunction]
#[pyo3(name = "_enum_getstate")]
fn enum_getstate<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    class_reduction::enum_getstate(obj)
}

/// `_dynamic_class_reduce(obj)`: the reduce tuple pickling the class (or
/// enum) `obj` by value.
#[pyfunction]
#[pyo3(name = "_dynamic_class_reduce")]
fn dynamic_class_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    class_reduction::dynamic_class_reduce(obj, get_or_create_tracker_id)
}

/// `_class_reduce(obj)`: how the class `obj` is pickled. The types of
/// `None`, `...` and `NotImplemented` are `type(x)`; other classes that
/// only the `types` module names are `_builtin_type(name)`; classes that
/// go by reference give NotImplemented (pickle saves them as globals);
/// the others go by value (`_dynamic_class_reduce`).
#[pyfunction]
#[pyo3(name = "_class_reduce")]
fn class_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    match class_rule(obj)? {
        ClassRule::Singleton(value) => {
            reduction(py.get_type::<pyo3::types::PyType>().as_any(), (value,))
        }
        ClassRule::Builtin(name) => reduction(bridge(py)?.builtin_type.bind(py), (name,)),
        ClassRule::ByReference => Ok(py.NotImplemented().into_bound(py)),
        ClassRule::ByValue => class_reduction::dynamic_class_reduce(obj, get_or_create_tracker_id),
    }
}

/// Adds these functions to the `_engine` module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(should_pickle_by_reference, m)?)?;
    m.add_function(wrap_pyfunction!(lookup_module_and_qualname, m)?)?;
    m.add_function(wrap_pyfunction!(typevar_by_reference, m)?)?;
    m.add_function(wrap_pyfunction!(whichmodule, m)?)?;
    m.add_function(wrap_pyfunction!(public_module_name, m)?)?;
    m.add_function(wrap_pyfunction!(getattribute, m)?)?;
    m.add_function(wrap_pyfunction!(is_registered_pickle_by_value, m)?)?;
    m.add_function(wrap_pyfunction!(cell_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(module_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(dynamic_function_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(function_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(function_getnewargs, m)?)?;
    m.add_function(wrap_pyfunction!(function_getstate, m)?)?;
    m.add_function(wrap_pyfunction!(get_bases, m)?)?;
    m.add_function(wrap_pyfunction!(extract_class_dict, m)?)?;
    m.add_function(wrap_pyfunction!(class_getnewargs, m)?)?;
    m.add_function(wrap_pyfunction!(enum_getnewargs, m)?)?;
    m.add_function(wrap_pyfunction!(class_getstate, m)?)?;
    m.add_function(wrap_pyfunction!(enum_getstate, m)?)?;
    m.add_function(wrap_pyfunction!(dynamic_class_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(class_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(
        crate::reduce::code_globals::extract_code_globals_py,
        m
    )?)?;
    m.add_function(wrap_pyfunction!(
        crate::reduce::submodules::find_imported_submodules_py,
        m
    )?)?;
    Ok(())
}
