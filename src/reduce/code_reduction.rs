//! Code objects by value: `(types.CodeType, args)`, the constructor
//! arguments of the running interpreter, read from the code object's
//! attributes in the constructor's order (`CODE_FIELDS`), with
//! `"<dynamic-code>"` as the file name (as cloudpickle 3.1.3 does).
//!
//! Some arguments are copies rather than the code object's own values
//! (`copy_str`, `copy_tuple`): the loading side builds fresh objects, and a
//! payload must not depend on which names the compiler happened to share
//! or intern, or re-pickling a loaded function would give other bytes.
//! The engine caches the reduction per code object (`pickler::fragment`);
//! `cloudpickle.cloudpickle` exports these functions under their Python
//! names (`_code_reduce`, `_copy_str`, `_copy_tuple`,
//! `_dynamic_code_filename`, `_CODE_FIELDS`, `_DYNAMIC_CODE_FILENAME`).

use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyModule, PyString, PyTuple};

use crate::errors::{owned, require_exact_type};

/// The file name every code object pickled by value carries: code objects
/// do not use it to run, and a payload then does not depend on where the
/// script, module or notebook cell defining the code lives.
pub const DYNAMIC_CODE_FILENAME: &str = "<dynamic-code>";

/// What goes into the constructor argument of one field.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arg {
    /// The code object's own value.
    Same,
    /// `copy_str`.
    Str,
    /// `copy_tuple`.
    Tuple,
    /// A new `"<dynamic-code>"` string.
    Filename,
}

/// The generations of `types.CodeType`'s constructor, told apart by
/// attribute of the code type (not by version number: PyPy follows the
/// CPython generation whose attributes it has).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Generation {
    /// CPython 3.8 and 3.9: `co_lnotab`.
    Lnotab,
    /// CPython 3.10: `co_linetable`.
    Linetable,
    /// CPython 3.11 on: `co_qualname` and `co_exceptiontable` too.
    ExceptionTable,
}

/// Which generations have a field.
#[derive(Clone, Copy)]
enum Present {
    Always,
    /// This generation and the later ones.
    From(Generation),
    /// The generations before this one.
    Before(Generation),
}

impl Present {
    fn in_generation(self, generation: Generation) -> bool {
        match self {
            Present::Always => true,
            Present::From(first) => generation >= first,
            Present::Before(end) => generation < end,
        }
    }
}

/// The positional parameters of `types.CodeType`, in constructor order,
/// with what each argument is and which generations have it.
const FIELDS_TABLE: &[(&str, Arg, Present)] = {
    use Arg::{Filename, Same, Str, Tuple};
    use Generation::{ExceptionTable, Linetable};
    use Present::{Always, Before, From};
    &[
        ("co_argcount", Same, Always),
        ("co_posonlyargcount", Same, Always),
        ("co_kwonlyargcount", Same, Always),
        ("co_nlocals", Same, Always),
        ("co_stacksize", Same, Always),
        ("co_flags", Same, Always),
        ("co_code", Same, Always),
        ("co_consts", Same, Always),
        ("co_names", Tuple, Always),
        ("co_varnames", Tuple, Always),
        ("co_filename", Filename, Always),
        ("co_name", Str, Always),
        ("co_qualname", Same, From(ExceptionTable)),
        ("co_firstlineno", Same, Always),
        ("co_lnotab", Same, Before(Linetable)),
        ("co_linetable", Same, From(Linetable)),
        ("co_exceptiontable", Same, From(ExceptionTable)),
        ("co_freevars", Tuple, Always),
        ("co_cellvars", Tuple, Always),
    ]
};

/// The fields of the running interpreter's generation.
struct Fields {
    /// The attribute names, interned, in constructor order.
    names: Py<PyTuple>,
    copies: Vec<Arg>,
}

static FIELDS: PyOnceLock<Fields> = PyOnceLock::new();

fn fields(py: Python<'_>) -> PyResult<&Fields> {
    FIELDS.get_or_try_init(py, || {
        // SAFETY: the code type, alive for the interpreter's life.
        let code_type = unsafe { crate::py::type_object(py, crate::py_compat::code_type()) };
        let generation = if code_type.hasattr("co_exceptiontable")? {
            Generation::ExceptionTable
        } else if code_type.hasattr("co_linetable")? {
            Generation::Linetable
        } else {
            Generation::Lnotab
        };
        let table = FIELDS_TABLE
            .iter()
            .filter(|(_, _, present)| present.in_generation(generation));
        let names = table
            .clone()
            .map(|(name, _, _)| PyString::intern(py, name))
            .collect::<Vec<_>>();
        Ok(Fields {
            names: PyTuple::new(py, names)?.unbind(),
            copies: table.map(|(_, copy, _)| *copy).collect(),
        })
    })
}

/// `"".join(s)`: a string equal to `s` that is not `s` itself (except the
/// empty and one-character strings, shared singletons with `"".join` too),
/// for any iterable of strings `s`.
pub(crate) fn copy_str<'py>(s: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = s.py();
    // SAFETY: GIL held; the UTF-8 buffer belongs to `s`, alive meanwhile.
    unsafe {
        if ffi::PyUnicode_CheckExact(s.as_ptr()) != 0 {
            let mut size: ffi::Py_ssize_t = 0;
            let data = ffi::PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut size);
            if !data.is_null() {
                // Decoding makes a new string, except for the empty and
                // one-character ones, shared singletons as with "".join.
                return owned(py, ffi::PyUnicode_FromStringAndSize(data, size));
            }
            // Lone surrogates have no UTF-8 form: joined below.
            ffi::PyErr_Clear();
        }
        let empty = pyo3::intern!(py, "");
        owned(py, ffi::PyUnicode_Join(empty.as_ptr(), s.as_ptr()))
    }
}

/// `tuple(iter(t))`: a new tuple holding the items of the iterable `t` (a
/// non-empty tuple is never `t` itself, which `tuple(t)` would return).
pub(crate) fn copy_tuple<'py>(t: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = t.py();
    let iterator = t.try_iter()?;
    // SAFETY: GIL held; `iterator` is alive; PySequence_Tuple returns a new
    // reference or null with an exception set.
    unsafe { owned(py, ffi::PySequence_Tuple(iterator.as_ptr())) }
}

/// A new `"<dynamic-code>"` string each call: two code objects of one
/// payload must not share it (the memo would write a reference to the
/// first one, which the reference does not).
fn dynamic_code_filename(py: Python<'_>) -> Bound<'_, PyAny> {
    PyString::new(py, DYNAMIC_CODE_FILENAME).into_any()
}

/// `(types.CodeType, args)` for the code object `code`.
pub fn code_reduce<'py>(code: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = code.py();
    let code_type = crate::py_compat::code_type();
    require_exact_type(code, code_type, "_code_reduce expects a code object")?;
    let fields = fields(py)?;
    let mut args = Vec::with_capacity(fields.copies.len());
    for (name, copy) in fields.names.bind(py).iter().zip(&fields.copies) {
        let value = code.getattr(name.cast_into::<PyString>()?)?;
        args.push(match copy {
            Arg::Same => value,
            Arg::Str => copy_str(&value)?,
            Arg::Tuple => copy_tuple(&value)?,
            Arg::Filename => dynamic_code_filename(py),
        });
    }
    // SAFETY: the code type, alive for the interpreter's life.
    let constructor = unsafe { crate::py::type_object(py, code_type) };
    super::reduction(&constructor, PyTuple::new(py, args)?)
}

/// The engine's `_code_reduce` function object: the dispatch table entry
/// for code objects is this one unless a client replaced it, and then the
/// engine calls `code_reduce` directly.
static NATIVE_CODE_REDUCE: OnceLock<Py<PyAny>> = OnceLock::new();

/// Whether `reducer` is the engine's own `_code_reduce`.
pub(crate) fn is_native_code_reduce(reducer: &Bound<'_, PyAny>) -> bool {
    NATIVE_CODE_REDUCE
        .get()
        .is_some_and(|native| reducer.is(native.bind(reducer.py())))
}

/// `_code_reduce(code)`: `(types.CodeType, args)`, the constructor
/// arguments of the running interpreter rebuilding the code object `code`,
/// with `"<dynamic-code>"` as its file name. Code objects nested in
/// `co_consts` (inner functions, lambdas, comprehensions before 3.12) are
/// pickled by this reducer too, so they carry that file name as well.
#[pyfunction]
#[pyo3(name = "_code_reduce")]
fn code_reduce_py<'py>(code: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    code_reduce(code)
}

/// `_copy_str(s)`: `"".join(s)`, a new string with the characters of `s`.
#[pyfunction]
#[pyo3(name = "_copy_str")]
fn copy_str_py<'py>(s: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    copy_str(s)
}

/// `_copy_tuple(t)`: `tuple(iter(t))`, a new tuple with the items of `t`.
#[pyfunction]
#[pyo3(name = "_copy_tuple")]
fn copy_tuple_py<'py>(t: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    copy_tuple(t)
}

/// `_dynamic_code_filename(filename)`: the file name a code object pickled
/// by value carries instead of `filename`, a new `"<dynamic-code>"` string.
#[pyfunction]
#[pyo3(name = "_dynamic_code_filename")]
fn dynamic_code_filename_py<'py>(filename: &Bound<'py, PyAny>) -> Bound<'py, PyAny> {
    dynamic_code_filename(filename.py())
}

/// Adds the code reduction and its helpers to the `_engine` module, with
/// `_CODE_FIELDS` (the constructor's parameters, as attribute names) and
/// `_DYNAMIC_CODE_FILENAME`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let native = wrap_pyfunction!(code_reduce_py, m)?;
    // The module is initialised once per process (PyO3 refuses a second
    // initialisation), so this is the one `_code_reduce` object.
    let _ = NATIVE_CODE_REDUCE.set(native.clone().into_any().unbind());
    m.add_function(native)?;
    m.add_function(wrap_pyfunction!(copy_str_py, m)?)?;
    m.add_function(wrap_pyfunction!(copy_tuple_py, m)?)?;
    m.add_function(wrap_pyfunction!(dynamic_code_filename_py, m)?)?;
    m.add("_CODE_FIELDS", fields(py)?.names.clone_ref(py))?;
    m.add("_DYNAMIC_CODE_FILENAME", DYNAMIC_CODE_FILENAME)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(generation: Generation) -> Vec<&'static str> {
        FIELDS_TABLE
            .iter()
            .filter(|(_, _, present)| present.in_generation(generation))
            .map(|(name, _, _)| *name)
            .collect()
    }

    /// The constructor parameters of each generation, as CPython documents
    /// them.
    #[test]
    fn each_generation_has_its_constructor_parameters() {
        let common_head = [
            "co_argcount",
            "co_posonlyargcount",
            "co_kwonlyargcount",
            "co_nlocals",
            "co_stacksize",
            "co_flags",
            "co_code",
            "co_consts",
            "co_names",
            "co_varnames",
            "co_filename",
            "co_name",
        ];
        let tail = ["co_freevars", "co_cellvars"];
        let expect = |middle: &[&'static str]| -> Vec<&'static str> {
            [&common_head[..], middle, &tail[..]].concat()
        };
        assert_eq!(
            names(Generation::ExceptionTable),
            expect(&[
                "co_qualname",
                "co_firstlineno",
                "co_linetable",
                "co_exceptiontable"
            ])
        );
        assert_eq!(
            names(Generation::Linetable),
            expect(&["co_firstlineno", "co_linetable"])
        );
        assert_eq!(
            names(Generation::Lnotab),
            expect(&["co_firstlineno", "co_lnotab"])
        );
    }
}
