//! cloudpickle's own reductions, consulted where pickle consults
//! `reducer_override`: functions (and, later, classes) that cannot be
//! imported on the loading side become by-value reductions referencing
//! cloudpickle's reconstructors.

use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::by_value::should_pickle_by_reference;
use crate::cache::ObjectCache;
use crate::pickler::fragment::Fragment;

pub(crate) mod function_reduction;

/// The Python module holding the helpers and reconstructors.
static HELPERS: OnceLock<Py<PyModule>> = OnceLock::new();

/// An attribute of `cloudpickle.cloudpickle` (helpers written in Python).
pub fn helper<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let module = match HELPERS.get() {
        Some(m) => m.bind(py).clone(),
        None => {
            let m = py.import("cloudpickle.cloudpickle")?;
            let _ = HELPERS.set(m.clone().unbind());
            m
        }
    };
    module.getattr(pyo3::types::PyString::intern(py, name))
}

/// Helpers used on every call, looked up once.
pub(crate) struct Hot {
    builtin_type_names: Py<PyDict>,
    builtin_type: Py<PyAny>,
    code_reduce: Py<PyAny>,
    cell_reduce: Py<PyAny>,
    module_reduce: Py<PyAny>,
    subimport: Py<PyAny>,
    pub(crate) make_function: Py<PyAny>,
    pub(crate) function_setstate: Py<PyAny>,
    make_cell: Py<PyAny>,
    pub(crate) make_empty_cell: Py<PyAny>,
    /// Addresses of the callables that rebuild what is pickled by value
    /// (`_make_function`, `_make_skeleton_class`, `_make_skeleton_enum`,
    /// `_make_typevar`, `dynamic_subimport`, `types.CodeType`), held so
    /// that their addresses cannot be reused by other objects.
    by_value: [Py<PyAny>; 6],
}

impl Hot {
    /// The `__module__` string of the published `_make_function`.
    pub(crate) fn make_function_module(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.make_function
            .bind(py)
            .getattr(pyo3::intern!(py, "__module__"))
            .ok()
            .map(Bound::unbind)
    }

    /// Whether `callable` is one of the reconstructors of values pickled
    /// by value.
    #[inline]
    pub(crate) fn is_by_value_reconstructor(&self, callable: *mut ffi::PyObject) -> bool {
        self.by_value.iter().any(|o| o.as_ptr() == callable)
    }
}

pub(crate) static HOT: OnceLock<Hot> = OnceLock::new();

pub(crate) fn hot(py: Python<'_>) -> PyResult<&'static Hot> {
    if let Some(h) = HOT.get() {
        return Ok(h);
    }
    let hot = Hot {
        builtin_type_names: helper(py, "_BUILTIN_TYPE_NAMES")?
            .cast_into::<PyDict>()?
            .unbind(),
        builtin_type: helper(py, "_builtin_type")?.unbind(),
        code_reduce: helper(py, "_code_reduce")?.unbind(),
        cell_reduce: helper(py, "_cell_reduce")?.unbind(),
        module_reduce: helper(py, "_module_reduce")?.unbind(),
        subimport: helper(py, "subimport")?.unbind(),
        make_function: helper(py, "_make_function")?.unbind(),
        function_setstate: helper(py, "_function_setstate")?.unbind(),
        make_cell: helper(py, "_make_cell")?.unbind(),
        make_empty_cell: helper(py, "_make_empty_cell")?.unbind(),
        by_value: [
            helper(py, "_make_function")?.unbind(),
            helper(py, "_make_skeleton_class")?.unbind(),
            helper(py, "_make_skeleton_enum")?.unbind(),
            helper(py, "_make_typevar")?.unbind(),
            helper(py, "dynamic_subimport")?.unbind(),
            // SAFETY: a static type object, alive for the interpreter's life.
            unsafe {
                Bound::from_borrowed_ptr(py, std::ptr::addr_of_mut!(ffi::PyCode_Type).cast())
            }
            .unbind(),
        ],
    };
    let _ = HOT.set(hot);
    Ok(HOT.get().expect("just set"))
}

/// What a reduction needs from the pickler it runs in.
pub struct ReduceContext<'a, 'py> {
    /// id(func.__globals__) -> the globals dict shipped for it, so that
    /// functions sharing globals share them after loading.
    pub globals_ref: &'a mut Option<Bound<'py, PyDict>>,
}

/// The reduction cloudpickle uses for `obj`, or `None` to let the regular
/// pickle rules apply (which pickle importable functions and classes by
/// reference).
///
/// # Safety
/// `obj` must be alive and the GIL held.
pub unsafe fn reducer_override<'py>(
    obj: &Bound<'py, PyAny>,
    ctx: ReduceContext<'_, 'py>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = obj.py();
    let tp = ffi::Py_TYPE(obj.as_ptr());
    if tp == std::ptr::addr_of_mut!(ffi::PyFunction_Type) {
        if should_pickle_by_reference(obj)? {
            return Ok(None);
        }
        let globals_ref = match ctx.globals_ref {
            Some(g) => g.clone(),
            None => {
                let g = PyDict::new(py);
                *ctx.globals_ref = Some(g.clone());
                g
            }
        };
        return Ok(Some(function_reduction::dynamic_function_reduce(
            obj,
            &globals_ref,
        )?));
    }
    if ffi::PyType_IsSubtype(tp, std::ptr::addr_of_mut!(ffi::PyType_Type)) != 0 {
        // The singletons' types (NoneType...) are pickled by pickle's own
        // rule, `type(None)`, before anything else.
        let o = obj.as_ptr();
        if o == ffi::Py_TYPE(ffi::Py_None()).cast()
            || o == ffi::Py_TYPE(ffi::Py_Ellipsis()).cast()
            || o == ffi::Py_TYPE(ffi::Py_NotImplemented()).cast()
        {
            return Ok(None);
        }
        // Types of the `types` module that builtins does not name (code,
        // cell, function...): pickle cannot find them by reference.
        let hot = hot(py)?;
        // A dict keyed by types: the lookup runs no Python code.
        if let Some(name) = hot.builtin_type_names.bind(py).get_item(obj)? {
            let args = pyo3::types::PyTuple::new(py, [name])?;
            let rv = (hot.builtin_type.bind(py), args).into_pyobject(py)?;
            return Ok(Some(rv.into_any()));
        }
        if should_pickle_by_reference(obj)? {
            return Ok(None);
        }
        // A class that cannot be imported on the loading side: by value.
        if let Some(rv) = cached_class_reduce(obj) {
            return Ok(Some(rv));
        }
        let rv = helper(py, "_dynamic_class_reduce")?.call1((obj,))?;
        remember_class_reduce(obj, &rv);
        return Ok(Some(rv));
    }
    Ok(None)
}

/// By-value reductions of classes whose metaclass is `type`, by class,
/// with the class's version tag when it was made. The tag changes whenever
/// the class or one of its bases is modified (attribute set or deleted,
/// `__bases__` assigned), so a reduction is reused only while the class
/// namespace it copied is unchanged. The values in it are pickled afresh
/// each time (a mutated list attribute shows its new contents). Classes
/// with other metaclasses (ABCs, whose registry changes without a new tag;
/// enums) are not cached.
static CLASS_CACHE: ObjectCache<(u32, Py<PyAny>)> = ObjectCache::new(4096);

/// A `gc.callbacks` entry: at the start of every full collection, let go
/// of the cached class reductions. The cache holds each class and its
/// reduction (whose methods can refer back to the class), so a class
/// pickled once would otherwise stay alive, with everything its namespace
/// holds, after the program dropped it; with the cache emptied first, the
/// collection that follows frees it as it would without this package. The
/// cache fills again on later `dumps` calls. Nothing is done when the
/// cache is in use (the lock is taken): the next full collection will.
#[pyfunction]
#[pyo3(name = "_release_class_cache")]
pub fn release_class_cache(phase: &Bound<'_, PyAny>, info: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = phase.py();
    if !phase.eq(pyo3::intern!(py, "start"))? {
        return Ok(());
    }
    let generation = info.get_item(pyo3::intern!(py, "generation"))?;
    if generation.extract::<i64>()? < 2 {
        return Ok(());
    }
    CLASS_CACHE.try_clear();
    Ok(())
}

/// The version tag of `obj` if it is a class whose metaclass is exactly
/// `type` and it has a valid tag.
fn cacheable_class_tag(obj: &Bound<'_, PyAny>) -> Option<u32> {
    let o = obj.as_ptr();
    // SAFETY: GIL held; `o` is alive; a type object when its type is
    // `type`.
    unsafe {
        if ffi::Py_TYPE(o) != std::ptr::addr_of_mut!(ffi::PyType_Type) {
            return None;
        }
        let tag = crate::py::version_tag(o.cast(), crate::py::cache().py_minor);
        (tag != 0).then_some(tag)
    }
}

fn cached_class_reduce<'py>(obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    let tag = cacheable_class_tag(obj)?;
    CLASS_CACHE
        .get(obj.as_ptr(), |(cached_tag, rv)| {
            (*cached_tag == tag).then(|| rv.bind(obj.py()).clone())
        })
        .flatten()
}

fn remember_class_reduce(obj: &Bound<'_, PyAny>, rv: &Bound<'_, PyAny>) {
    // Read after the reduction ran: the tag must describe the namespace as
    // the reduction copied it.
    let Some(tag) = cacheable_class_tag(obj) else {
        return;
    };
    CLASS_CACHE.insert(obj, (tag, rv.clone().unbind()));
}

/// A cached code reduction: its reduction, and what the engine recorded of
/// writing the reduction's arguments (see `pickler::fragment`). Code objects
/// are immutable, so their reductions never go stale.
struct CodeEntry {
    rv: Py<PyAny>,
    fragment: Fragment,
}

static CODE_CACHE: ObjectCache<CodeEntry> = ObjectCache::new(4096);

/// Whether `reducer` is cloudpickle's own `_code_reduce` (whose results
/// `code_reduction` caches).
pub(crate) fn is_code_reduce(reducer: &Bound<'_, PyAny>) -> bool {
    hot(reducer.py()).is_ok_and(|h| reducer.is(h.code_reduce.bind(reducer.py())))
}

/// Calls `reducer(obj)`, from the code-object cache when `reducer` is
/// cloudpickle's own `_code_reduce`.
pub fn call_reducer<'py>(
    reducer: &Bound<'py, PyAny>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let h = hot(py)?;
    if reducer.is(h.cell_reduce.bind(py))
        && obj.get_type().is(unsafe {
            Bound::from_borrowed_ptr(py, std::ptr::addr_of_mut!(ffi::PyCell_Type).cast())
        })
    {
        // SAFETY: `obj` is a cell (checked above).
        return unsafe { function_reduction::cell_reduce(obj) };
    }
    if reducer.is(h.module_reduce.bind(py)) {
        if let Some(rv) = importable_module_reduce(obj)? {
            return Ok(rv);
        }
        return reducer.call1((obj,));
    }
    if reducer.is(h.code_reduce.bind(py)) && obj.is_exact_instance_of::<pyo3::types::PyCode>() {
        return code_reduction(reducer, obj).map(|(rv, _)| rv);
    }
    reducer.call1((obj,))
}

/// `reducer(code)` for `reducer` cloudpickle's own `_code_reduce` and
/// `code` an exact code object: from the cache (code objects are
/// immutable, so their reductions never go stale), with what the engine
/// recorded of writing it.
pub(crate) fn code_reduction<'py>(
    reducer: &Bound<'py, PyAny>,
    code: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyAny>, Fragment)> {
    let py = code.py();
    let cached = CODE_CACHE.get(code.as_ptr(), |entry| {
        (entry.rv.bind(py).clone(), entry.fragment.clone())
    });
    if let Some(found) = cached {
        return Ok(found);
    }
    let rv = reducer.call1((code,))?;
    CODE_CACHE.insert(
        code,
        CodeEntry {
            rv: rv.clone().unbind(),
            fragment: Fragment::default(),
        },
    );
    Ok((rv, Fragment::default()))
}

/// Records `fragment` for the cached reduction `rv` of `code` (nothing
/// when the cache has another reduction for it by now).
pub(crate) fn set_code_fragment(
    code: *mut ffi::PyObject,
    rv: *mut ffi::PyObject,
    fragment: Fragment,
) {
    let previous = CODE_CACHE
        .update(code, |entry| {
            (entry.rv.as_ptr() == rv).then(|| std::mem::replace(&mut entry.fragment, fragment))
        })
        .flatten();
    // Released outside the lock: dropping references may run finalizers.
    drop(previous);
}

/// `_module_reduce` for the common case, an imported module not registered
/// for pickling by value: `(subimport, (name,))`. None for the other cases,
/// left to the Python helper.
fn importable_module_reduce<'py>(
    module: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = module.py();
    if !module.is_exact_instance_of::<PyModule>() {
        return Ok(None);
    }
    // SAFETY: `module` is a module object; PyModule_GetNameObject returns a
    // new reference or null.
    let name = unsafe { ffi::PyModule_GetNameObject(module.as_ptr()) };
    if name.is_null() {
        // SAFETY: clearing the error just raised.
        unsafe { ffi::PyErr_Clear() };
        return Ok(None);
    }
    // SAFETY: `name` is a new reference.
    let name = unsafe { Bound::from_owned_ptr(py, name) };
    let Ok(name) = name.cast_into::<pyo3::types::PyString>() else {
        return Ok(None);
    };
    // SAFETY: GIL held.
    if unsafe { crate::lookup::imported_module(py, &name) }.is_none()
        || crate::by_value::is_registered(py, &name.to_cow()?)?
    {
        return Ok(None);
    }
    let args = pyo3::types::PyTuple::new(py, [name])?;
    Ok(Some(
        (hot(py)?.subimport.bind(py), args)
            .into_pyobject(py)?
            .into_any(),
    ))
}
