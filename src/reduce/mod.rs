//! cloudpickle's own reductions, consulted where pickle consults
//! `reducer_override`: functions and classes that cannot be imported on
//! the loading side become by-value reductions referencing cloudpickle's
//! reconstructors.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::bridge::bridge;
use crate::by_value::should_pickle_by_reference;
use crate::cache::ObjectCache;
use class_rule::ClassRule;

pub(crate) mod class_reduction;
pub(crate) mod class_rule;
pub(crate) mod code_globals;
pub(crate) mod code_reduction;
pub(crate) mod function_reduction;
pub(crate) mod submodules;
pub(crate) mod type_reducers;

/// `(callable, args)`: the reduce tuple that rebuilds an object as
/// `callable(*args)` when loading. `args` is anything that becomes a tuple:
/// a Rust tuple of Python objects (`(name,)`, `()`...) or a built tuple.
pub(crate) fn reduction<'py, A>(
    callable: &Bound<'py, PyAny>,
    args: A,
) -> PyResult<Bound<'py, PyAny>>
where
    A: IntoPyObject<'py, Target = PyTuple>,
    A::Error: Into<PyErr>,
{
    let args = args.into_pyobject(callable.py()).map_err(Into::into)?;
    let args = pyo3::BoundObject::into_bound(args).into_any();
    Ok(PyTuple::new(callable.py(), [callable.clone(), args])?.into_any())
}

/// The Python module holding the helpers and reconstructors.
/// What a reduction needs from the pickler it runs in.
pub struct ReduceContext<'a, 'py> {
    /// id(func.__globals__) -> the globals dict shipped for it, so that
    /// functions sharing globals share them after loading.
    pub globals_ref: &'a mut Option<Bound<'py, PyDict>>,
    /// Whether a class reduction made here may be cached for later dumps:
    /// not while a tracker-id digest is computed (see `Engine::digest_run`).
    pub cache_classes: bool,
    /// Gives a class by value its tracker id: the pickler's
    /// `tracker_id::get_or_create_tracker_id`, passed in because minting
    /// runs a pickle (this module does not depend on the pickler).
    pub mint_tracker_id: class_reduction::MintTrackerId,
}

/// The reduction cloudpickle uses for `obj`, or `None` to let the regular
/// pickle rules apply (which pickle importable functions and classes by
/// reference).
pub fn reducer_override<'py>(
    obj: &Bound<'py, PyAny>,
    ctx: ReduceContext<'_, 'py>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    // SAFETY: `obj` is alive (bound): its type is read and compared, and the
    // callees that need an exact type get one (checked right before).
    unsafe {
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
            match class_rule::class_rule(obj)? {
                // pickle's own rule, `type(None)`, applies (`save_type`).
                ClassRule::Singleton(_) | ClassRule::ByReference => return Ok(None),
                ClassRule::Builtin(name) => {
                    return reduction(bridge(py)?.builtin_type.bind(py), (name,)).map(Some)
                }
                ClassRule::ByValue => {}
            }
            // A class that cannot be imported on the loading side: by value.
            if let Some(rv) = cached_class_reduce(obj) {
                return Ok(Some(rv));
            }
            let rv = class_reduction::dynamic_class_reduce(obj, ctx.mint_tracker_id)?;
            if ctx.cache_classes {
                remember_class_reduce(obj, &rv);
            }
            return Ok(Some(rv));
        }
        Ok(None)
    }
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

/// Whether `reducer` is cloudpickle's own `_code_reduce` (whose results
/// `pickler::fragment` caches).
pub(crate) fn is_code_reduce(reducer: &Bound<'_, PyAny>) -> bool {
    code_reduction::is_native_code_reduce(reducer)
}

/// Calls `reducer(obj)`, natively for cloudpickle's own `_cell_reduce` and
/// `_module_reduce`. (Code objects, whose reductions are cached, are
/// handled by `pickler::fragment`.)
pub fn call_reducer<'py>(
    reducer: &Bound<'py, PyAny>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let h = bridge(py)?;
    if reducer.is(h.cell_reduce.bind(py))
        && obj.get_type().as_type_ptr() == std::ptr::addr_of_mut!(ffi::PyCell_Type)
    {
        // SAFETY: `obj` is a cell (checked above).
        return unsafe { function_reduction::cell_reduce(obj) };
    }
    if reducer.is(h.module_reduce.bind(py)) {
        if let Some(name) = importable_module_name(obj)? {
            return reduction(h.subimport.bind(py), (name,));
        }
        return reducer.call1((obj,));
    }
    reducer.call1((obj,))
}

/// `_module_reduce` for the common case, an imported module not registered
/// for pickling by value, is `(subimport, (name,))`: its name then. None
/// for the other cases, left to the Python helper.
pub(crate) fn importable_module_name<'py>(
    module: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
    let py = module.py();
    if !module.is_exact_instance_of::<PyModule>() {
        return Ok(None);
    }
    // SAFETY: `module` is a module object; PyModule_GetNameObject returns a
    // new reference or null.
    let name = unsafe { crate::py_compat::module_name_object(module.as_ptr()) };
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
    if crate::lookup::imported_module(py, &name).is_none()
        || crate::by_value::is_registered(py, &name.to_cow()?)?
    {
        return Ok(None);
    }
    Ok(Some(name))
}
