//! Classes and enums by value: a skeleton class (`_make_skeleton_class`)
//! or enum with its members (`_make_skeleton_enum`), filled by
//! `_class_setstate` once memoized, so that a class may refer to itself.
//!
//! The state is the class's own namespace (`extract_class_dict`) minus
//! what the skeleton recreates by itself: the `__dict__`/`__weakref__`
//! descriptors, the member descriptors of `__slots__`, ABC caches, and for
//! enums the members and what the enum metaclass computes from them. An
//! ABC's registry travels as the list of its registered virtual
//! subclasses. From Python 3.14 on, a class's lazily evaluated annotations
//! travel evaluated, as an `__annotations__` entry (the Python helper the
//! bridge names, `_portable_class_annotations`, evaluates them: it is a
//! sequence of `annotationlib` calls).
//!
//! Every function reads the class through ordinary attribute and item
//! access, holding strong references throughout: a metaclass's
//! `__iter__`, `__bases__` or `__dict__`, a descriptor or a weakref
//! callback may run Python code at any of these steps, and a bad answer
//! raises a Python exception.
//!
//! Tracker ids are minted by the pickler (they digest a canonical pickle,
//! which runs this reduction again): callers pass the minting function in
//! (`MintTrackerId`), so this module does not depend on the pickler.
//! `cloudpickle.cloudpickle` exports these functions under the
//! reference's private names (`_get_bases`, `_extract_class_dict`,
//! `_class_getnewargs`, `_enum_getnewargs`, `_class_getstate`,
//! `_enum_getstate`, `_dynamic_class_reduce`; see `rules_api`).

use pyo3::exceptions::PyKeyError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::bridge::bridge;
use crate::errors::owned;

/// The function giving a class its tracker id (the pickler's
/// `tracker_id::get_or_create_tracker_id`).
pub type MintTrackerId = for<'py> fn(&Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>>;

/// Entries of an ABC's namespace that are caches rebuilt by `isinstance`
/// and `issubclass` checks (pure-Python `_py_abc` layout): never shipped.
const ABC_CACHE_KEYS: [&str; 3] = [
    "_abc_cache",
    "_abc_negative_cache",
    "_abc_negative_cache_version",
];

/// Attributes of an enum class that its metaclass computes from the
/// members given to `_make_skeleton_enum`.
const ENUM_METACLASS_KEYS: [&str; 5] = [
    "_generate_next_value_",
    "_member_names_",
    "_member_map_",
    "_member_type_",
    "_value2member_map_",
];

/// The standard library objects the rules use, read once.
struct Stdlib {
    abc_meta: Py<PyAny>,
    /// `abc._get_dump`, present when `abc` uses the C `_abc` module.
    abc_get_dump: Option<Py<PyAny>>,
    enum_base: Py<PyAny>,
    property: Py<PyAny>,
    /// Python 3.14 or later (lazily evaluated annotations, PEP 649).
    lazy_annotations: bool,
}

static STDLIB: PyOnceLock<Stdlib> = PyOnceLock::new();

fn stdlib(py: Python<'_>) -> PyResult<&Stdlib> {
    STDLIB.get_or_try_init(py, || {
        let abc = py.import("abc")?;
        let builtins = py.import("builtins")?;
        Ok(Stdlib {
            abc_meta: abc.getattr("ABCMeta")?.unbind(),
            abc_get_dump: abc.getattr_opt("_get_dump")?.map(Bound::unbind),
            enum_base: py.import("enum")?.getattr("Enum")?.unbind(),
            property: builtins.getattr("property")?.unbind(),
            lazy_annotations: py.version_info() >= (3, 14),
        })
    })
}

/// `issubclass(a, b)`, with its errors (TypeError when `a` is not a
/// class).
fn is_subclass(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<bool> {
    // SAFETY: GIL held, both objects alive (bound); the call returns -1
    // with an exception set on failure.
    let r = unsafe { ffi::PyObject_IsSubclass(a.as_ptr(), b.as_ptr()) };
    if r < 0 {
        return Err(crate::errors::fetch(a.py()));
    }
    Ok(r == 1)
}

/// `d.pop(key, None)`.
fn pop_or_none<'py>(
    d: &Bound<'py, PyDict>,
    key: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let value = d.get_item(key)?;
    if value.is_some() {
        d.del_item(key)?;
    }
    Ok(value)
}

/// `d.pop(key)`: KeyError when it is missing.
fn pop_required<'py>(d: &Bound<'py, PyDict>, key: &Bound<'py, PyAny>) -> PyResult<()> {
    if d.get_item(key)?.is_none() {
        return Err(PyKeyError::new_err(key.clone().unbind()));
    }
    d.del_item(key)
}

/// `list(obj)`: a new list of the items `obj` iterates over.
fn new_list<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    // SAFETY: GIL held, `obj` alive; PySequence_List returns a new
    // reference (a new list) or null with an exception set.
    let list = unsafe { owned(obj.py(), ffi::PySequence_List(obj.as_ptr())) }?;
    Ok(list.cast_into::<PyList>()?)
}

/// `sorted(mapping)`: the keys of `mapping`, sorted.
fn sorted_keys<'py>(mapping: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    let keys = new_list(mapping)?;
    keys.sort()?;
    Ok(keys)
}

/// The bases a class is rebuilt with: `__orig_bases__` when the class
/// itself defines it (generic subclasses, PEP 560), else `__bases__`.
pub fn get_bases<'py>(typ: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = typ.py();
    let orig_bases = pyo3::intern!(py, "__orig_bases__");
    // `getattr(typ, "__dict__", {})`: no namespace, no own entry.
    let own = match typ.getattr_opt(pyo3::intern!(py, "__dict__"))? {
        Some(namespace) => namespace.contains(orig_bases)?,
        None => false,
    };
    if own {
        typ.getattr(orig_bases)
    } else {
        typ.getattr(pyo3::intern!(py, "__bases__"))
    }
}

/// A copy of `cls.__dict__` (keys sorted, as non-interned copies,
/// `"".join(key)`) without the entries that are the very same object in
/// the bases' namespaces (what the class merely inherits; with several
/// bases, earlier bases win, as in the method resolution order).
pub fn extract_class_dict<'py>(cls: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    let py = cls.py();
    let dict_name = pyo3::intern!(py, "__dict__");
    let own = cls.getattr(dict_name)?;
    let keys = sorted_keys(&own)?;
    let empty = pyo3::intern!(py, "");
    // The namespace in key order: distinct keys give distinct copies.
    let mut entries = Vec::with_capacity(keys.len());
    for key in keys.iter() {
        // SAFETY: GIL held, both objects alive; PyUnicode_Join (`str.join`)
        // returns a new reference or null with an exception set.
        let copy = unsafe { owned(py, ffi::PyUnicode_Join(empty.as_ptr(), key.as_ptr())) }?;
        let value = own.get_item(&key)?;
        entries.push((copy, value));
    }

    let bases = cls.getattr(pyo3::intern!(py, "__bases__"))?;
    let inherited = if bases.len()? == 1 {
        bases.get_item(0)?.getattr(dict_name)?
    } else {
        let merged = PyDict::new(py);
        let update = pyo3::intern!(py, "update");
        // Earlier bases win: the last update is the first base's.
        let base_list = match bases.cast::<PyTuple>() {
            Ok(tuple) => tuple.to_list(),
            Err(_) => new_list(&bases)?,
        };
        base_list.reverse()?;
        for base in base_list.iter() {
            merged.call_method1(update, (base.getattr(dict_name)?,))?;
        }
        merged.into_any()
    };

    let class_dict = PyDict::new(py);
    let get = pyo3::intern!(py, "get");
    // `inherited.get(key, missing)`: a new object no namespace holds.
    let missing = PyList::empty(py);
    for (key, value) in entries {
        let inherited_value = match inherited.cast_exact::<PyDict>() {
            Ok(dict) => dict.get_item(&key)?,
            Err(_) => {
                let found = inherited.call_method1(get, (&key, &missing))?;
                (!found.is(&missing)).then_some(found)
            }
        };
        if !inherited_value.is_some_and(|v| v.is(&value)) {
            class_dict.set_item(key, value)?;
        }
    }
    Ok(class_dict)
}

/// The arguments of `_make_skeleton_class` for the class `obj`:
/// `(type(obj), name, bases, type_kwargs, tracker_id, None)`, where
/// `type_kwargs` holds the class's own `__module__` and a `__dict__`
/// property it defines.
pub fn class_getnewargs<'py>(
    obj: &Bound<'py, PyAny>,
    mint: MintTrackerId,
) -> PyResult<Bound<'py, PyTuple>> {
    let py = obj.py();
    let dict_name = pyo3::intern!(py, "__dict__");
    let module_name = pyo3::intern!(py, "__module__");
    let type_kwargs = PyDict::new(py);
    if obj.getattr(dict_name)?.contains(module_name)? {
        type_kwargs.set_item(module_name, obj.getattr(module_name)?)?;
    }
    let dict_descriptor = obj
        .getattr(dict_name)?
        .call_method1(pyo3::intern!(py, "get"), (dict_name, py.None()))?;
    if dict_descriptor.is_instance(stdlib(py)?.property.bind(py))? {
        type_kwargs.set_item(dict_name, dict_descriptor)?;
    }
    let metaclass = obj.get_type().into_any();
    let name = obj.getattr(pyo3::intern!(py, "__name__"))?;
    let bases = get_bases(obj)?;
    let tracker_id = mint(obj)?;
    PyTuple::new(
        py,
        [
            metaclass,
            name,
            bases,
            type_kwargs.into_any(),
            tracker_id,
            py.None().into_bound(py),
        ],
    )
}

/// The arguments of `_make_skeleton_enum` for the enum class `obj`:
/// `(bases, name, qualname, {member name: value}, module, tracker_id,
/// None)`.
pub fn enum_getnewargs<'py>(
    obj: &Bound<'py, PyAny>,
    mint: MintTrackerId,
) -> PyResult<Bound<'py, PyTuple>> {
    let py = obj.py();
    let members = PyDict::new(py);
    for member in obj.try_iter()? {
        let member = member?;
        members.set_item(
            member.getattr(pyo3::intern!(py, "name"))?,
            member.getattr(pyo3::intern!(py, "value"))?,
        )?;
    }
    let bases = obj.getattr(pyo3::intern!(py, "__bases__"))?;
    let name = obj.getattr(pyo3::intern!(py, "__name__"))?;
    let qualname = obj.getattr(pyo3::intern!(py, "__qualname__"))?;
    let module = obj.getattr(pyo3::intern!(py, "__module__"))?;
    let tracker_id = mint(obj)?;
    PyTuple::new(
        py,
        [
            bases,
            name,
            qualname,
            members.into_any(),
            module,
            tracker_id,
            py.None().into_bound(py),
        ],
    )
}

/// The live classes among `classes` (None stands for a dead weak
/// reference), sorted by `(str(module), qualname)`, ties kept in their
/// order: a set's order changes from run to run, and payloads should not.
fn sorted_classes<'py>(
    py: Python<'py>,
    classes: Vec<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyList>> {
    let live: Vec<_> = classes.into_iter().filter(|c| !c.is_none()).collect();
    // (key..., position): sorting these sorts by key, stably.
    let keyed = PyList::empty(py);
    for (position, class) in live.iter().enumerate() {
        let module = class.getattr(pyo3::intern!(py, "__module__"))?.str()?;
        let qualname = class.getattr(pyo3::intern!(py, "__qualname__"))?;
        keyed.append((module, qualname, position))?;
    }
    keyed.sort()?;
    let sorted = PyList::empty(py);
    for item in keyed.iter() {
        let position: usize = item.get_item(2)?.extract()?;
        // Only code that found this private list through the collector
        // could have put another position in it.
        let class = live.get(position).ok_or_else(|| {
            pyo3::exceptions::PyRuntimeError::new_err("ABC registry changed while sorted")
        })?;
        sorted.append(class)?;
    }
    Ok(sorted)
}

/// The classes registered as virtual subclasses of the ABC `cls`, as a
/// list; the ABC bookkeeping entries are removed from `class_dict`.
fn abc_registered_subclasses<'py>(
    cls: &Bound<'py, PyAny>,
    class_dict: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyList>> {
    let py = cls.py();
    for key in ABC_CACHE_KEYS {
        pop_or_none(class_dict, PyString::new(py, key).as_any())?;
    }
    let registry = pop_or_none(class_dict, pyo3::intern!(py, "_abc_registry").as_any())?;
    if let Some(registry) = registry.filter(|r| !r.is_none()) {
        // _py_abc: the registry is a WeakSet of classes.
        let classes = registry.try_iter()?.collect::<PyResult<Vec<_>>>()?;
        return sorted_classes(py, classes);
    }
    // The C implementation keeps registry and caches in one opaque
    // `_abc_impl` object; `abc._get_dump` gives the registry as a set of
    // weak references.
    pop_or_none(class_dict, pyo3::intern!(py, "_abc_impl").as_any())?;
    let get_dump = stdlib(py)?.abc_get_dump.as_ref().ok_or_else(|| {
        pyo3::exceptions::PyAttributeError::new_err("module 'abc' has no attribute '_get_dump'")
    })?;
    let weak_registry = get_dump.bind(py).call1((cls,))?.get_item(0)?;
    let mut classes = Vec::new();
    for weak in weak_registry.try_iter()? {
        classes.push(weak?.call0()?);
    }
    sorted_classes(py, classes)
}

/// The state of a class sent by value: `(class_dict, {})`, applied by
/// `_class_setstate` once the skeleton class exists (see the module docs
/// for what `class_dict` leaves out; an ABC's `_abc_impl` entry becomes
/// the list of its registered virtual subclasses).
pub fn class_getstate<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    let py = obj.py();
    let lib = stdlib(py)?;
    let mut class_dict = extract_class_dict(obj)?;
    pop_or_none(&class_dict, pyo3::intern!(py, "__weakref__").as_any())?;

    // Python 3.15 generates a dataclass's docstring lazily (a descriptor
    // that replaces itself on first access): it travels as it is, and is
    // computed on the loading side. An eager one showing sets is written
    // in canonical order.
    let doc_name = pyo3::intern!(py, "__doc__");
    if let Some(doc) = class_dict.get_item(doc_name)? {
        if class_dict.contains(pyo3::intern!(py, "__dataclass_fields__"))?
            && doc.is_instance_of::<PyString>()
            && doc.contains(pyo3::intern!(py, "{"))?
        {
            let canonical = bridge(py)?
                .canonical_dataclass_doc
                .bind(py)
                .call1((obj, &doc))?;
            if !canonical.is_none() {
                class_dict.set_item(doc_name, canonical)?;
            }
        }
    }

    if is_subclass(obj.get_type().as_any(), lib.abc_meta.bind(py))? {
        // Popped first, then set: the entry goes last, as Python's
        // `class_dict["_abc_impl"] = ...(class_dict)` puts it.
        let registered = abc_registered_subclasses(obj, &class_dict)?;
        class_dict.set_item(pyo3::intern!(py, "_abc_impl"), registered)?;
    }

    if class_dict.contains(pyo3::intern!(py, "__slots__"))? {
        // The skeleton's metaclass creates the member descriptors from the
        // `__slots__` entry again: shipping them would be redundant.
        let slots = obj.getattr(pyo3::intern!(py, "__slots__"))?;
        if slots.is_instance_of::<PyString>() {
            pop_required(&class_dict, &slots)?;
        } else {
            for slot in slots.try_iter()? {
                pop_or_none(&class_dict, &slot?)?;
            }
        }
    }

    // A getset descriptor, not picklable (and recreated by type()).
    pop_or_none(&class_dict, pyo3::intern!(py, "__dict__").as_any())?;

    if lib.lazy_annotations {
        class_dict = class_dict_with_annotations(obj, class_dict)?;
    }
    PyTuple::new(py, [class_dict.into_any(), PyDict::new(py).into_any()])
}

/// Python 3.14+ (PEP 649/749): `class_dict` without the annotate function
/// (it closes over the class namespace) and the cache Python fills on
/// first access, with the class's annotations evaluated into an
/// `__annotations__` entry instead (keys sorted again). Annotations stored
/// eagerly (`from __future__ import annotations`, or assigned in the class
/// body) travel as they are. The evaluation is the bridge's
/// `_portable_class_annotations` (FORWARDREF format, forward references
/// made portable; None when the annotate function fails, as the reference
/// then carries none).
fn class_dict_with_annotations<'py>(
    obj: &Bound<'py, PyAny>,
    class_dict: Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyDict>> {
    let py = obj.py();
    let annotate = pop_or_none(&class_dict, pyo3::intern!(py, "__annotate_func__").as_any())?;
    let cached = pop_or_none(
        &class_dict,
        pyo3::intern!(py, "__annotations_cache__").as_any(),
    )?;
    let annotations_name = pyo3::intern!(py, "__annotations__");
    if class_dict.contains(annotations_name)? {
        return Ok(class_dict);
    }
    let has_cache = cached
        .as_ref()
        .is_some_and(|c| c.is_instance_of::<PyDict>());
    let has_annotate = annotate.as_ref().is_some_and(|a| a.is_callable());
    if !has_cache && !has_annotate {
        return Ok(class_dict);
    }
    let none = py.None().into_bound(py);
    let annotations = bridge(py)?.portable_class_annotations.bind(py).call1((
        obj,
        annotate.unwrap_or_else(|| none.clone()),
        cached.unwrap_or(none),
    ))?;
    if annotations.is_none() {
        return Ok(class_dict);
    }
    class_dict.set_item(annotations_name, annotations)?;
    // Keys stay sorted, as `extract_class_dict` made them.
    let sorted = PyDict::new(py);
    for key in sorted_keys(class_dict.as_any())?.iter() {
        let value = class_dict.as_any().get_item(&key)?;
        sorted.set_item(key, value)?;
    }
    Ok(sorted)
}

/// The state of an enum class sent by value: that of `class_getstate`
/// without the members and the bookkeeping the enum metaclass rebuilds.
pub fn enum_getstate<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    let py = obj.py();
    let state = class_getstate(obj)?;
    let class_dict = state.get_item(0)?.cast_into::<PyDict>()?;
    for key in ENUM_METACLASS_KEYS {
        pop_or_none(&class_dict, PyString::new(py, key).as_any())?;
    }
    for member in obj.try_iter()? {
        let name = member?.getattr(pyo3::intern!(py, "name"))?;
        pop_required(&class_dict, &name)?;
    }
    Ok(state)
}

/// The reduce tuple pickling the class `obj` by value:
/// `(_make_skeleton_enum, enum_getnewargs, enum_getstate, None, None,
/// _class_setstate)` for enums, `(_make_skeleton_class, class_getnewargs,
/// class_getstate, None, None, _class_setstate)` for other classes.
pub fn dynamic_class_reduce<'py>(
    obj: &Bound<'py, PyAny>,
    mint: MintTrackerId,
) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let b = bridge(py)?;
    let none = py.None().into_bound(py);
    let (make, args, state) = if is_subclass(obj, stdlib(py)?.enum_base.bind(py))? {
        let args = enum_getnewargs(obj, mint)?;
        (b.make_skeleton_enum.bind(py), args, enum_getstate(obj)?)
    } else {
        let args = class_getnewargs(obj, mint)?;
        (b.make_skeleton_class.bind(py), args, class_getstate(obj)?)
    };
    Ok(PyTuple::new(
        py,
        [
            make.clone(),
            args.into_any(),
            state.into_any(),
            none.clone(),
            none,
            b.class_setstate.bind(py).clone(),
        ],
    )?
    .into_any())
}
