//! Which global names a code object uses (cloudpickle's
//! `_extract_code_globals`): the names its own bytecode reads, writes or
//! deletes as globals, then those of the code objects nested in its
//! constants (inner functions, lambdas, class bodies), in first-use order,
//! as the keys of a dict (values None), so that payloads are
//! deterministic.
//!
//! The bytecode is read directly (word code: one byte of opcode, one of
//! argument, `EXTENDED_ARG` prefixes supplying higher bytes), with the
//! opcode numbers of the running interpreter's `opcode` module as
//! `cloudpickle._code_analysis` read them (the bridge holds them). Results
//! are cached per code object (immutable, so they never go stale).

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use crate::bridge::bridge;
use crate::cache::ObjectCache;

/// The answer for each code object, nested ones included.
static CODE_GLOBALS: ObjectCache<Py<PyDict>> = ObjectCache::new(4096);

/// Code objects nest as deep as functions do in source code; deeper than
/// this is a constructed code object, refused rather than risking the
/// native stack.
const MAX_NESTING: usize = 200;

fn is_code(obj: &Bound<'_, PyAny>) -> bool {
    // PyPy's C API exports no PyCode_Type: py_compat finds the type.
    // SAFETY: GIL held (a Bound); only reads the object's type.
    unsafe { ffi::Py_TYPE(obj.as_ptr()) == crate::py_compat::code_type() }
}

/// The global names `code` and the code nested in it use, as a dict. The
/// dict is cached and shared: callers must not mutate it.
#[inline]
pub fn extract_code_globals<'py>(code: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    // The common case first, inlined into the function reduction: a code
    // object seen before (only code objects are ever cached).
    let py = code.py();
    if let Some(names) = CODE_GLOBALS.get(code.as_ptr(), |names| names.bind(py).clone()) {
        return Ok(names);
    }
    if !is_code(code) {
        return Err(crate::errors::wrong_type(
            code,
            "_extract_code_globals expects a code object",
        ));
    }
    extract(code, 0)
}

fn extract<'py>(code: &Bound<'py, PyAny>, depth: usize) -> PyResult<Bound<'py, PyDict>> {
    let py = code.py();
    if let Some(names) = CODE_GLOBALS.get(code.as_ptr(), |names| names.bind(py).clone()) {
        return Ok(names);
    }
    if depth > MAX_NESTING {
        return Err(pyo3::exceptions::PyRecursionError::new_err(
            "code objects nested too deeply",
        ));
    }
    let names = PyDict::new(py);
    own_global_names(code, &names)?;
    let consts = code
        .getattr(pyo3::intern!(py, "co_consts"))?
        .cast_into::<PyTuple>()?;
    for constant in consts.iter() {
        if is_code(&constant) {
            for (name, value) in extract(&constant, depth + 1)?.iter() {
                names.set_item(name, value)?;
            }
        }
    }
    CODE_GLOBALS.insert(code, names.clone().unbind());
    Ok(names)
}

/// Adds to `names`, in bytecode order, every global name `code` itself
/// reads, writes or deletes (not those of the code nested in it).
fn own_global_names(code: &Bound<'_, PyAny>, names: &Bound<'_, PyDict>) -> PyResult<()> {
    let py = code.py();
    let ops = &bridge(py)?.global_opcodes;
    let raw = code
        .getattr(pyo3::intern!(py, "co_code"))?
        .cast_into::<PyBytes>()?;
    let co_names = code
        .getattr(pyo3::intern!(py, "co_names"))?
        .cast_into::<PyTuple>()?;
    let none = py.None();
    let mut extended: usize = 0;
    for word in raw.as_bytes().chunks_exact(2) {
        let (op, arg) = (word[0], usize::from(word[1]) | extended);
        if op == ops.extended_arg {
            extended = arg << 8;
            continue;
        }
        extended = 0;
        if !ops.global_ops.contains(&op) {
            continue;
        }
        let index = if op == ops.load_global {
            arg >> ops.load_global_shift
        } else {
            arg
        };
        // An index out of range is an IndexError, as in the reference.
        names.set_item(co_names.get_item(index)?, &none)?;
    }
    Ok(())
}

/// `_extract_code_globals(co)`: the global names used by the code object
/// `co` or by any code nested in it, as a dict (keys in first-use order,
/// values None). Cached per code object; callers must not mutate it.
#[pyfunction]
#[pyo3(name = "_extract_code_globals")]
pub fn extract_code_globals_py<'py>(co: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    extract_code_globals(co)
}
