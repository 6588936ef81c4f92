//! The reducers of the other types the standard pickle does not handle (or
//! not the way cloudpickle wants): methods and descriptors, open text
//! files, loggers, memoryviews, mapping proxies, `WeakSet`s, dictionary
//! views and the dataclass field-type sentinels. Each returns the reduce
//! tuple cloudpickle 3.1.3 returns, reading the same attributes in the
//! same order (they may be Python properties of a subclass).
//!
//! `cloudpickle._type_reducers` builds `_REDUCERS`, the table by exact type
//! that `Pickler.dispatch_table` starts from, from these functions; the
//! engine calls them through that table like any reducer.
//! `cloudpickle.cloudpickle` exports them under the reference's names.

use pyo3::exceptions::PyOSError;
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyModule, PyString};

use super::reduction;
use crate::bridge::bridge;
use crate::errors::{owned, pickling_error};
use crate::py::{builtins_getattr, type_object};

/// The types and modules these reductions name, looked up once.
struct Names {
    property: Py<PyAny>,
    method_type: Py<PyAny>,
    mappingproxy_type: Py<PyAny>,
    weakset_type: Py<PyAny>,
    string_io: Py<PyAny>,
    /// `logging.getLogger` is read from the module at each call, as the
    /// reference reads it: a replaced one is what payloads then name.
    logging: Py<PyModule>,
    sys: Py<PyModule>,
}

static NAMES: PyOnceLock<Names> = PyOnceLock::new();

fn names(py: Python<'_>) -> PyResult<&Names> {
    NAMES.get_or_try_init(py, || {
        let attr = |module: &str, name: &str| -> PyResult<Py<PyAny>> {
            Ok(py.import(module)?.getattr(name)?.unbind())
        };
        Ok(Names {
            property: attr("builtins", "property")?,
            method_type: attr("types", "MethodType")?,
            mappingproxy_type: attr("types", "MappingProxyType")?,
            weakset_type: attr("weakref", "WeakSet")?,
            string_io: attr("io", "StringIO")?,
            logging: py.import("logging")?.unbind(),
            sys: py.import("sys")?.unbind(),
        })
    })
}

/// `list(obj)`.
fn list_of<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: GIL held; `obj` is alive (borrowed by the caller);
    // PySequence_List returns a new reference or null with an error set.
    unsafe { owned(obj.py(), ffi::PySequence_List(obj.as_ptr())) }
}

/// `dict(obj)`: a call of the `dict` type itself, so that mappings and
/// iterables of pairs are read exactly as `dict(obj)` reads them.
fn dict_of<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: `PyDict_Type` is a static type object; GIL held.
    let dict_type = unsafe { type_object(obj.py(), std::ptr::addr_of_mut!(ffi::PyDict_Type)) };
    dict_type.call1((obj,))
}

/// `_classmethod_reduce(obj)`: `(type(obj), (obj.__func__,))`, for
/// classmethods and staticmethods (and their subclasses).
#[pyfunction]
#[pyo3(name = "_classmethod_reduce")]
fn classmethod_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let func = obj.getattr(intern!(obj.py(), "__func__"))?;
    reduction(obj.get_type().as_any(), (func,))
}

/// Whether the function `func` is a function without bytecode: on PyPy,
/// builtin methods (`[].append`, `dict.fromkeys`) are bound methods of such
/// functions, which cannot travel by value.
fn is_builtin_function(func: &Bound<'_, PyAny>) -> PyResult<bool> {
    // SAFETY: GIL held; `func` is alive; only its type is read.
    let is_function =
        unsafe { ffi::Py_TYPE(func.as_ptr()) } == std::ptr::addr_of_mut!(ffi::PyFunction_Type);
    if !is_function {
        return Ok(false);
    }
    let code = func.getattr(intern!(func.py(), "__code__"))?;
    // SAFETY: as above, for `code`.
    Ok(unsafe { ffi::Py_TYPE(code.as_ptr()) } != crate::py_compat::code_type())
}

/// `_method_reduce(obj)`: a bound method, `(types.MethodType, (function,
/// self))`; on PyPy, a builtin method is looked up again on its object,
/// `(getattr, (self, name))`, as CPython's builtin methods reduce
/// themselves.
#[pyfunction]
#[pyo3(name = "_method_reduce")]
fn method_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let func = obj.getattr(intern!(py, "__func__"))?;
    if is_builtin_function(&func)? {
        let owner = obj.getattr(intern!(py, "__self__"))?;
        let name = obj.getattr(intern!(py, "__name__"))?;
        return reduction(&builtins_getattr(py), (owner, name));
    }
    let owner = obj.getattr(intern!(py, "__self__"))?;
    reduction(names(py)?.method_type.bind(py), (func, owner))
}

/// `_file_reduce(obj)`: an open text file travels as an `io.StringIO`
/// holding its whole contents, positioned where the file was, with the
/// file's name; `sys.stdout` and `sys.stderr` travel by reference. Standard
/// input, closed files, ttys and files not opened for reading raise
/// `pickle.PicklingError`, as does an `OSError` while reading (chained to
/// it).
#[pyfunction]
#[pyo3(name = "_file_reduce")]
fn file_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let names = names(py)?;
    let s_mode = intern!(py, "mode");
    if !obj.hasattr(intern!(py, "name"))? || !obj.hasattr(s_mode)? {
        return Err(pickling_error(
            py,
            "Cannot pickle files that do not map to an actual file",
        ));
    }
    let sys = names.sys.bind(py);
    for stream in [intern!(py, "stdout"), intern!(py, "stderr")] {
        if obj.is(sys.getattr(stream)?) {
            return reduction(&builtins_getattr(py), (sys, stream));
        }
    }
    if obj.is(sys.getattr(intern!(py, "stdin"))?) {
        return Err(pickling_error(py, "Cannot pickle standard input"));
    }
    if obj.getattr(intern!(py, "closed"))?.is_truthy()? {
        return Err(pickling_error(py, "Cannot pickle closed files"));
    }
    let s_isatty = intern!(py, "isatty");
    if obj.hasattr(s_isatty)? && obj.call_method0(s_isatty)?.is_truthy()? {
        return Err(pickling_error(
            py,
            "Cannot pickle files that map to tty objects",
        ));
    }
    if !obj.getattr(s_mode)?.contains("r")? && !obj.getattr(s_mode)?.contains("+")? {
        // `"...: %s" % obj.mode`, as the reference formats it.
        let message = PyString::new(
            py,
            "Cannot pickle files that are not opened for reading: %s",
        )
        .rem(obj.getattr(s_mode)?)?;
        return Err(pickling_error(py, message));
    }

    let name = obj.getattr(intern!(py, "name"))?;
    let copy = names.string_io.bind(py).call0()?;
    let s_seek = intern!(py, "seek");
    let read = || -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let position = obj.call_method0(intern!(py, "tell"))?;
        obj.call_method1(s_seek, (0,))?;
        let contents = obj.call_method0(intern!(py, "read"))?;
        obj.call_method1(s_seek, (&position,))?;
        Ok((position, contents))
    };
    let (position, contents) = match read() {
        Ok(read) => read,
        Err(err) if err.is_instance_of::<PyOSError>(py) => {
            let message =
                PyString::new(py, "Cannot pickle file %s as it cannot be read").rem(&name)?;
            let new = pickling_error(py, message);
            // `raise ... from err` inside `except OSError as err`: err is
            // both the cause and the context.
            new.value(py)
                .setattr(intern!(py, "__context__"), err.value(py))?;
            new.set_cause(py, Some(err));
            return Err(new);
        }
        Err(err) => return Err(err),
    };
    copy.call_method1(intern!(py, "write"), (contents,))?;
    copy.call_method1(s_seek, (position,))?;
    copy.setattr(intern!(py, "name"), name)?;
    reduction(bridge(py)?.file_reconstructor.bind(py), (copy,))
}

/// `_logger_reduce(obj)`: `(logging.getLogger, (obj.name,))`.
#[pyfunction]
#[pyo3(name = "_logger_reduce")]
fn logger_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let name = obj.getattr(intern!(py, "name"))?;
    reduction(&get_logger(py)?, (name,))
}

/// `_root_logger_reduce(obj)`: `(logging.getLogger, ())`.
#[pyfunction]
#[pyo3(name = "_root_logger_reduce")]
fn root_logger_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    reduction(&get_logger(obj.py())?, ())
}

fn get_logger(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    names(py)?
        .logging
        .bind(py)
        .getattr(intern!(py, "getLogger"))
}

/// `_memoryview_reduce(obj)`: `(bytes, (obj.tobytes(),))`.
#[pyfunction]
#[pyo3(name = "_memoryview_reduce")]
fn memoryview_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let data = obj.call_method0(intern!(py, "tobytes"))?;
    reduction(py.get_type::<pyo3::types::PyBytes>().as_any(), (data,))
}

/// `_property_reduce(obj)`: `(property, (fget, fset, fdel, doc))`.
#[pyfunction]
#[pyo3(name = "_property_reduce")]
fn property_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let fget = obj.getattr(intern!(py, "fget"))?;
    let fset = obj.getattr(intern!(py, "fset"))?;
    let fdel = obj.getattr(intern!(py, "fdel"))?;
    let doc = obj.getattr(intern!(py, "__doc__"))?;
    reduction(names(py)?.property.bind(py), (fget, fset, fdel, doc))
}

/// `_getset_descriptor_reduce(obj)`: `(getattr, (obj.__objclass__,
/// obj.__name__))`, looked up on the class that owns it.
#[pyfunction]
#[pyo3(name = "_getset_descriptor_reduce")]
fn getset_descriptor_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let owner = obj.getattr(intern!(py, "__objclass__"))?;
    let name = obj.getattr(intern!(py, "__name__"))?;
    reduction(&builtins_getattr(py), (owner, name))
}

/// `_mappingproxy_reduce(obj)`: `(types.MappingProxyType, (dict(obj),))`.
#[pyfunction]
#[pyo3(name = "_mappingproxy_reduce")]
fn mappingproxy_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    reduction(names(py)?.mappingproxy_type.bind(py), (dict_of(obj)?,))
}

/// `_weakset_reduce(obj)`: `(weakref.WeakSet, (list(obj),))`, the objects
/// alive now.
#[pyfunction]
#[pyo3(name = "_weakset_reduce")]
fn weakset_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    reduction(names(py)?.weakset_type.bind(py), (list_of(obj)?,))
}

// Dictionary views: only what the view shows travels, not the whole dict.
// Views of an OrderedDict add `True` (`is_ordered`).

/// `(reconstructor, (contents,))`, or `(reconstructor, (contents, True))`
/// for the view of an OrderedDict.
fn view_reduction<'py>(
    reconstructor: &Py<PyAny>,
    contents: Bound<'py, PyAny>,
    ordered: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let reconstructor = reconstructor.bind(contents.py());
    if ordered {
        reduction(reconstructor, (contents, true))
    } else {
        reduction(reconstructor, (contents,))
    }
}

/// `_dict_keys_reduce(obj)`: `(_make_dict_keys, (list(obj),))`.
#[pyfunction]
#[pyo3(name = "_dict_keys_reduce")]
fn dict_keys_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    view_reduction(&bridge(obj.py())?.make_dict_keys, list_of(obj)?, false)
}

/// `_dict_values_reduce(obj)`: `(_make_dict_values, (list(obj),))`.
#[pyfunction]
#[pyo3(name = "_dict_values_reduce")]
fn dict_values_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    view_reduction(&bridge(obj.py())?.make_dict_values, list_of(obj)?, false)
}

/// `_dict_items_reduce(obj)`: `(_make_dict_items, (dict(obj),))`.
#[pyfunction]
#[pyo3(name = "_dict_items_reduce")]
fn dict_items_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    view_reduction(&bridge(obj.py())?.make_dict_items, dict_of(obj)?, false)
}

/// `_odict_keys_reduce(obj)`: `(_make_dict_keys, (list(obj), True))`.
#[pyfunction]
#[pyo3(name = "_odict_keys_reduce")]
fn odict_keys_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    view_reduction(&bridge(obj.py())?.make_dict_keys, list_of(obj)?, true)
}

/// `_odict_values_reduce(obj)`: `(_make_dict_values, (list(obj), True))`.
#[pyfunction]
#[pyo3(name = "_odict_values_reduce")]
fn odict_values_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    view_reduction(&bridge(obj.py())?.make_dict_values, list_of(obj)?, true)
}

/// `_odict_items_reduce(obj)`: `(_make_dict_items, (dict(obj), True))`.
#[pyfunction]
#[pyo3(name = "_odict_items_reduce")]
fn odict_items_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    view_reduction(&bridge(obj.py())?.make_dict_items, dict_of(obj)?, true)
}

/// `_dataclass_field_base_reduce(obj)`: the field-type sentinels of
/// `dataclasses` are compared by identity, so they travel by name:
/// `(_get_dataclass_field_type_sentinel, (obj.name,))`.
#[pyfunction]
#[pyo3(name = "_dataclass_field_base_reduce")]
fn dataclass_field_base_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let name = obj.getattr(intern!(py, "name"))?;
    reduction(
        bridge(py)?.get_dataclass_field_type_sentinel.bind(py),
        (name,),
    )
}

/// Adds these reducers to the `_engine` module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(classmethod_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(method_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(file_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(logger_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(root_logger_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(memoryview_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(property_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(getset_descriptor_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(mappingproxy_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(weakset_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(dict_keys_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(dict_values_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(dict_items_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(odict_keys_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(odict_values_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(odict_items_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(dataclass_field_base_reduce, m)?)?;
    Ok(())
}
