//! The bridge: every object of the Python package that the engine uses, in
//! one typed set, installed once when `cloudpickle.cloudpickle` is imported
//! (`_engine._install_bridge`) and checked there.
//!
//! The engine looks nothing up by name at its call sites: it reads a field
//! of `Bridge`. The names are read here, once, from the package's modules;
//! a missing or wrong one makes the import fail with a message naming it.

use std::sync::OnceLock;

use pyo3::exceptions::{PyImportError, PyRuntimeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule, PySet, PyString};

pub struct Bridge {
    // Reconstructors named in payloads (as published in
    // `cloudpickle.cloudpickle`).
    pub make_function: Py<PyAny>,
    pub function_setstate: Py<PyAny>,
    pub make_cell: Py<PyAny>,
    pub make_empty_cell: Py<PyAny>,
    pub builtin_type: Py<PyAny>,
    pub subimport: Py<PyAny>,
    pub dynamic_subimport: Py<PyAny>,
    pub make_typevar: Py<PyAny>,
    pub make_skeleton_class: Py<PyAny>,
    pub make_skeleton_enum: Py<PyAny>,
    pub class_setstate: Py<PyAny>,
    pub file_reconstructor: Py<PyAny>,
    pub make_dict_keys: Py<PyAny>,
    pub make_dict_values: Py<PyAny>,
    pub make_dict_items: Py<PyAny>,
    pub get_dataclass_field_type_sentinel: Py<PyAny>,
    /// The `__module__` string the published reconstructors carry.
    pub published_module: Py<PyString>,

    // Helpers written in Python.
    pub builtin_type_names: Py<PyDict>,
    pub cell_reduce: Py<PyAny>,
    pub module_reduce: Py<PyAny>,
    /// `_determinism._canonical_dataclass_doc(cls, doc)`: a dataclass's
    /// generated docstring with set defaults in sorted order (through
    /// `inspect.signature`), or None.
    pub canonical_dataclass_doc: Py<PyAny>,
    /// `_annotations._portable_class_annotations(cls, annotate, cached)`
    /// (Python 3.14+): a class's annotations evaluated by `annotationlib`,
    /// with portable forward references, or None.
    pub portable_class_annotations: Py<PyAny>,
    /// `_failure_trail._annotate(exc, steps)`: words the path to an object
    /// that failed to pickle and attaches it to the exception.
    pub annotate_failure: Py<PyAny>,
    /// The opcodes naming globals, for the bytecode walk of
    /// `reduce::code_globals`.
    pub global_opcodes: GlobalOpcodes,

    // The class tracker (`cloudpickle._reconstructors`).
    pub tracker_by_id: Py<PyAny>,
    pub tracker_by_class: Py<PyAny>,
    pub tracker_lock: Py<PyAny>,
    pub lookup_class_or_track: Py<PyAny>,
    pub empty_cell_value: Py<PyAny>,

    // The Pickler as seen from Python.
    pub pickler_class: Py<PyAny>,
    pub default_table: Py<PyAny>,
    /// Module names registered with `register_pickle_by_value`.
    pub by_value_registry: Py<PySet>,

    /// Held so that their addresses cannot be reused: the reconstructors
    /// of what is pickled by value (`is_by_value_reconstructor`).
    by_value: [Py<PyAny>; 6],
}

/// The opcode numbers the walk of `reduce::code_globals` needs, as the
/// running interpreter's `opcode` module gives them (read from the
/// constants `cloudpickle._code_analysis` built from it).
pub struct GlobalOpcodes {
    /// `STORE_GLOBAL`, `DELETE_GLOBAL` (while the interpreter has it) and
    /// `LOAD_GLOBAL`.
    pub global_ops: Vec<u8>,
    pub load_global: u8,
    pub extended_arg: u8,
    /// From CPython 3.11 on, the argument of `LOAD_GLOBAL` is the name
    /// index shifted left by one (the low bit says whether a NULL is
    /// pushed too). PyPy 3.11 keeps its own 3.9-style bytecode, where the
    /// argument is the index itself.
    pub load_global_shift: u32,
}

fn global_opcodes(public: &Bound<'_, PyModule>) -> PyResult<GlobalOpcodes> {
    let py = public.py();
    let opcode = |name: &str| -> PyResult<u8> {
        attr(public, name)?.bind(py).extract::<u8>().map_err(|_| {
            PyImportError::new_err(format!("cloudpickle: {name} is not an opcode number"))
        })
    };
    Ok(GlobalOpcodes {
        global_ops: attr(public, "GLOBAL_OPS")?
            .bind(py)
            .extract::<Vec<u8>>()
            .map_err(|_| {
                PyImportError::new_err("cloudpickle: GLOBAL_OPS is not a tuple of opcodes")
            })?,
        load_global: opcode("LOAD_GLOBAL")?,
        extended_arg: opcode("EXTENDED_ARG")?,
        load_global_shift: u32::from(!cfg!(PyPy) && py.version_info() >= (3, 11)),
    })
}

static BRIDGE: OnceLock<Bridge> = OnceLock::new();

/// The installed bridge.
pub fn bridge(_py: Python<'_>) -> PyResult<&'static Bridge> {
    BRIDGE.get().ok_or_else(|| {
        PyRuntimeError::new_err(
            "cloudpickle._engine is used before cloudpickle.cloudpickle was imported",
        )
    })
}

/// The installed bridge, when there is one (for code that has a fallback).
pub fn installed() -> Option<&'static Bridge> {
    BRIDGE.get()
}

impl Bridge {
    /// Whether `callable` is one of the reconstructors of values pickled
    /// by value (`_make_function`, `_make_skeleton_class`,
    /// `_make_skeleton_enum`, `_make_typevar`, `dynamic_subimport`,
    /// `types.CodeType`).
    #[inline]
    pub fn is_by_value_reconstructor(&self, callable: *mut ffi::PyObject) -> bool {
        self.by_value.iter().any(|o| o.as_ptr() == callable)
    }
}

fn attr(module: &Bound<'_, PyModule>, name: &str) -> PyResult<Py<PyAny>> {
    module.getattr(name).map(Bound::unbind).map_err(|_| {
        PyImportError::new_err(format!(
            "cloudpickle: {}.{name} is missing (the engine needs it)",
            module.name().map(|n| n.to_string()).unwrap_or_default()
        ))
    })
}

fn callable(module: &Bound<'_, PyModule>, name: &str) -> PyResult<Py<PyAny>> {
    let value = attr(module, name)?;
    if !value.bind(module.py()).is_callable() {
        return Err(PyImportError::new_err(format!(
            "cloudpickle: {name} is not callable"
        )));
    }
    Ok(value)
}

/// Installs the bridge: `public` is `cloudpickle.cloudpickle` (the
/// published reconstructors and the Python helpers), `reconstructors` is
/// `cloudpickle._reconstructors` (the class tracker), `failure_trail` is
/// `cloudpickle._failure_trail` (the wording of failure paths). Called
/// once, at the end of `cloudpickle.cloudpickle`'s import; later calls
/// change nothing.
#[pyfunction]
#[pyo3(name = "_install_bridge")]
pub fn install_bridge(
    public: &Bound<'_, PyModule>,
    reconstructors: &Bound<'_, PyModule>,
    failure_trail: &Bound<'_, PyModule>,
    pickler_class: &Bound<'_, PyAny>,
    default_table: &Bound<'_, PyAny>,
    by_value_registry: &Bound<'_, PySet>,
) -> PyResult<()> {
    let py = public.py();
    if BRIDGE.get().is_some() {
        return Ok(());
    }
    publish(public, reconstructors)?;
    let make_function = callable(public, "_make_function")?;
    let published_module = make_function
        .bind(py)
        .getattr(pyo3::intern!(py, "__module__"))?
        .cast_into::<PyString>()?
        .unbind();
    // SAFETY: a static type object, alive for the interpreter's life.
    let code_type = unsafe { crate::py::type_object(py, crate::py_compat::code_type()) };
    let bridge = Bridge {
        by_value: [
            make_function.clone_ref(py),
            callable(public, "_make_skeleton_class")?,
            callable(public, "_make_skeleton_enum")?,
            callable(public, "_make_typevar")?,
            callable(public, "dynamic_subimport")?,
            code_type.unbind(),
        ],
        make_function,
        function_setstate: callable(public, "_function_setstate")?,
        make_cell: callable(public, "_make_cell")?,
        make_empty_cell: callable(public, "_make_empty_cell")?,
        builtin_type: callable(public, "_builtin_type")?,
        subimport: callable(public, "subimport")?,
        dynamic_subimport: callable(public, "dynamic_subimport")?,
        make_typevar: callable(public, "_make_typevar")?,
        make_skeleton_class: callable(public, "_make_skeleton_class")?,
        make_skeleton_enum: callable(public, "_make_skeleton_enum")?,
        class_setstate: callable(public, "_class_setstate")?,
        file_reconstructor: callable(public, "_file_reconstructor")?,
        make_dict_keys: callable(public, "_make_dict_keys")?,
        make_dict_values: callable(public, "_make_dict_values")?,
        make_dict_items: callable(public, "_make_dict_items")?,
        get_dataclass_field_type_sentinel: callable(public, "_get_dataclass_field_type_sentinel")?,
        published_module,
        builtin_type_names: attr(public, "_BUILTIN_TYPE_NAMES")?
            .into_bound(py)
            .cast_into::<PyDict>()?
            .unbind(),
        cell_reduce: callable(public, "_cell_reduce")?,
        module_reduce: callable(public, "_module_reduce")?,
        canonical_dataclass_doc: callable(public, "_canonical_dataclass_doc")?,
        portable_class_annotations: callable(public, "_portable_class_annotations")?,
        annotate_failure: callable(failure_trail, "_annotate")?,
        global_opcodes: global_opcodes(public)?,
        tracker_by_id: attr(reconstructors, "_DYNAMIC_CLASS_TRACKER_BY_ID")?,
        tracker_by_class: attr(reconstructors, "_DYNAMIC_CLASS_TRACKER_BY_CLASS")?,
        tracker_lock: attr(reconstructors, "_DYNAMIC_CLASS_TRACKER_LOCK")?,
        lookup_class_or_track: callable(reconstructors, "_lookup_class_or_track")?,
        empty_cell_value: attr(reconstructors, "_empty_cell_value")?,
        pickler_class: pickler_class.clone().unbind(),
        default_table: default_table.clone().unbind(),
        by_value_registry: by_value_registry.clone().unbind(),
    };
    let _ = BRIDGE.set(bridge);
    Ok(())
}

/// Gives every reconstructor payloads name, and `dumps`/`dump`, the public
/// module's name as `__module__` (the string `_reconstructors._PUBLIC_MODULE`,
/// one object, so the memo writes it once per payload as the reference
/// does): pickle finds them there by reference, and payloads name what
/// cloudpickle 3.1.3 names. The reconstructors are the objects
/// `cloudpickle.cloudpickle` exposes under the names listed in
/// `_reconstructors.__all__`: Python functions, or the engine's native
/// versions where they replace them; and the engine's own functions the
/// public module re-exports. The one place where a `__module__` is
/// rewritten.
fn publish(public: &Bound<'_, PyModule>, reconstructors: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = public.py();
    let published = attr(reconstructors, "_PUBLIC_MODULE")?.into_bound(py);
    // Payloads name `cloudpickle.cloudpickle` even when the package is
    // imported under another name, as the reference's do.
    if !published.is_exact_instance_of::<PyString>() {
        return Err(PyImportError::new_err(
            "cloudpickle: _reconstructors._PUBLIC_MODULE must be a str",
        ));
    }
    let module_attr = pyo3::intern!(py, "__module__");
    let names = attr(reconstructors, "__all__")?.into_bound(py);
    for name in names.try_iter()? {
        let name = name?.cast_into::<PyString>()?;
        let value = attr(public, &name.to_cow()?)?.into_bound(py);
        if value.is_instance_of::<pyo3::types::PyFunction>()
            || value.is_instance_of::<pyo3::types::PyCFunction>()
        {
            value.setattr(module_attr, &published)?;
        }
    }
    for name in ["dumps", "dump"] {
        callable(public, name)?
            .bind(py)
            .setattr(module_attr, &published)?;
    }
    // The engine's functions the public module re-exports (`_class_reduce`,
    // `_file_reduce`...): pickled by reference, they are found there, under
    // the name the reference's payloads use, not `cloudpickle._engine`.
    let engine_name = attr(public, "_engine")?.bind(py).getattr("__name__")?;
    for (_, value) in public.dict().iter() {
        if value.is_instance_of::<pyo3::types::PyCFunction>()
            && value.getattr(module_attr)?.eq(&engine_name)?
        {
            value.setattr(module_attr, &published)?;
        }
    }
    Ok(())
}
