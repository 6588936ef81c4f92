//! `_make_skeleton_class` and `_class_setstate` on the load side.
//!
//! Every payload that carries a class by value creates a skeleton class,
//! then hands it to the class tracker, which returns the class already
//! loaded under the same tracker id if there is one (the skeleton is then
//! thrown away, and `_class_setstate` fills the known class). Workers that
//! receive the same class in payload after payload pay for creating a type
//! object each time (most of the cost of loading a class) only to discard
//! it. Here the tracker is asked first: when it knows the class, and
//! creating the skeleton could have had no visible effect (metaclass
//! `type`, bases without `__init_subclass__` hooks, a namespace of plain
//! strings), the known class is returned directly. A plain skeleton
//! (metaclass `type`, plain bases, a namespace with `__module__`) is made
//! with `type(name, bases, namespace)`; every other class goes through
//! `types.new_class`, as the reference creates it.

use std::sync::OnceLock;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyCFunction, PyDict, PyIterator, PyList, PyString, PyTuple};

/// `_make_skeleton_class(type_constructor, name, bases, type_kwargs,
/// class_tracker_id, extra)`: the class known under `class_tracker_id`, or
/// a new skeleton class (see the module docs).
#[pyfunction]
#[pyo3(name = "_make_skeleton_class")]
pub fn make_skeleton_class<'py>(
    py: Python<'py>,
    type_constructor: &Bound<'py, PyAny>,
    name: &Bound<'py, PyAny>,
    bases: &Bound<'py, PyAny>,
    type_kwargs: &Bound<'py, PyAny>,
    class_tracker_id: &Bound<'py, PyAny>,
    extra: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let bridge = crate::bridge::bridge(py)?;
    if let Some(known) = tracked_class(bridge.tracker_by_id.bind(py), class_tracker_id)? {
        if creation_is_invisible(py, type_constructor, bases, type_kwargs) {
            return Ok(known);
        }
    }
    if let Some(skeleton) = plain_skeleton(py, type_constructor, name, bases, type_kwargs)? {
        if class_tracker_id.is_none() || track_new(bridge, class_tracker_id, &skeleton)? {
            return Ok(skeleton);
        }
        return bridge
            .lookup_class_or_track
            .bind(py)
            .call1((class_tracker_id, skeleton));
    }
    let _ = extra; // reserved for future use, as in the reference
    let namespace = interned_namespace(type_kwargs)?;
    let skeleton = new_class(type_constructor, name, bases, &namespace)?;
    bridge
        .lookup_class_or_track
        .bind(py)
        .call1((class_tracker_id, skeleton))
}

/// `types.new_class`, looked up once.
static NEW_CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `types.new_class(name, bases, {"metaclass": type_constructor},
/// lambda ns: ns.update(namespace))`: `__mro_entries__` of the bases
/// resolved (the bases given kept as `__orig_bases__`), the most derived
/// metaclass, its `__prepare__` and its keyword arguments, as a class
/// statement would. Called rather than spelt out step by step so that the
/// metaclass runs under the frame of `types.new_class`, as in the
/// reference: `type.__new__` takes a missing `__module__` from the
/// globals of the calling Python frame (`"types"` there).
fn new_class<'py>(
    type_constructor: &Bound<'py, PyAny>,
    name: &Bound<'py, PyAny>,
    bases: &Bound<'py, PyAny>,
    namespace: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = name.py();
    let new_class = NEW_CLASS.get_or_try_init(py, || {
        py.import(pyo3::intern!(py, "types"))?
            .getattr(pyo3::intern!(py, "new_class"))
            .map(Bound::unbind)
    })?;
    let kwds = PyDict::new(py);
    kwds.set_item(pyo3::intern!(py, "metaclass"), type_constructor)?;
    // The closure holds its own reference to the namespace: the body may
    // outlive this call if the metaclass keeps it.
    let fill_from = namespace.clone().unbind();
    let exec_body = PyCFunction::new_closure(
        py,
        Some(c"exec_body"),
        None,
        move |args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>| -> PyResult<()> {
            let py = args.py();
            let ns = args.get_item(0)?;
            ns.call_method1(pyo3::intern!(py, "update"), (fill_from.bind(py),))?;
            Ok(())
        },
    )?;
    new_class.bind(py).call1((name, bases, kwds, exec_body))
}

/// `{sys.intern(key): value for key, value in type_kwargs.items()}`:
/// CPython interns the names set on a class, so a class rebuilt here
/// pickles as one defined here. Keys that are not exact strings raise
/// the `TypeError` `sys.intern` raises.
fn interned_namespace<'py>(type_kwargs: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    let py = type_kwargs.py();
    let namespace = PyDict::new(py);
    let mut items = Items::of(type_kwargs)?;
    while let Some(item) = items.next_item()? {
        let (key, value) = item;
        namespace.set_item(intern(key)?, value)?;
    }
    Ok(namespace)
}

/// `sys.intern(key)`.
fn intern(key: Bound<'_, PyAny>) -> PyResult<Bound<'_, PyAny>> {
    let py = key.py();
    if !key.is_exact_instance_of::<PyString>() {
        // Argument checks name None itself rather than its type.
        let type_name = if key.is_none() {
            "None".to_owned()
        } else {
            type_name(&key)
        };
        return Err(PyTypeError::new_err(if key.is_instance_of::<PyString>() {
            format!("can't intern {type_name}")
        } else {
            format!("intern() argument must be str, not {type_name}")
        }));
    }
    let mut raw = key.into_ptr();
    // SAFETY: `raw` is a new (owned) reference to an exact str;
    // PyUnicode_InternInPlace may replace it with another owned reference,
    // which `from_owned_ptr` then takes over.
    Ok(unsafe {
        ffi::PyUnicode_InternInPlace(&mut raw);
        Bound::from_owned_ptr(py, raw)
    })
}

/// The `tp_name` of `obj`'s type, as CPython's messages name it.
fn type_name(obj: &Bound<'_, PyAny>) -> String {
    // SAFETY: GIL held; `obj` is alive, so its type is, and `tp_name` is a
    // NUL-terminated string owned by the type.
    let name = unsafe { std::ffi::CStr::from_ptr((*ffi::Py_TYPE(obj.as_ptr())).tp_name) };
    name.to_string_lossy().into_owned()
}

/// `a, b = value`: the two items of any iterable of two, or the error the
/// interpreter's unpacking raises.
fn unpack2<'py>(value: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let py = value.py();
    if let Ok(t) = value.cast_exact::<PyTuple>() {
        if t.len() == 2 {
            return Ok((t.get_item(0)?, t.get_item(1)?));
        }
    }
    let iter = match value.try_iter() {
        Ok(iter) => iter,
        Err(err) => {
            // SAFETY: GIL held; `value` is alive; reading a slot of its
            // type and asking whether it is a sequence run no Python code.
            let sequence = unsafe {
                (*ffi::Py_TYPE(value.as_ptr())).tp_iter.is_some()
                    || ffi::PySequence_Check(value.as_ptr()) != 0
            };
            if err.is_instance_of::<PyTypeError>(py) && !sequence {
                return Err(PyTypeError::new_err(format!(
                    "cannot unpack non-iterable {} object",
                    type_name(value)
                )));
            }
            return Err(err);
        }
    };
    let mut got = Vec::with_capacity(2);
    for item in iter {
        let item = item?;
        if got.len() == 2 {
            // From 3.14 on, the count is given for lists, tuples and dicts.
            let len = if crate::py::cache().py_minor < 14 {
                None
            } else if let Ok(t) = value.cast_exact::<PyTuple>() {
                Some(t.len())
            } else if let Ok(l) = value.cast_exact::<PyList>() {
                Some(l.len())
            } else if let Ok(d) = value.cast_exact::<PyDict>() {
                Some(d.len())
            } else {
                None
            };
            return Err(PyValueError::new_err(match len {
                Some(n) if n > 2 => format!("too many values to unpack (expected 2, got {n})"),
                _ => "too many values to unpack (expected 2)".to_owned(),
            }));
        }
        got.push(item);
    }
    let mut got = got.into_iter();
    match (got.next(), got.next()) {
        (Some(a), Some(b)) => Ok((a, b)),
        (a, _) => Err(PyValueError::new_err(format!(
            "not enough values to unpack (expected 2, got {})",
            usize::from(a.is_some())
        ))),
    }
}

/// The `(key, value)` pairs of a mapping, as `for key, value in
/// mapping.items()` obtains them: from an exact dict, a snapshot taken
/// without running Python code (strong references: what runs while they
/// are used cannot free them, and changes to the dict do not disturb the
/// walk); from anything else, its `items()` iterated as Python would,
/// each item unpacked into two.
enum Items<'py> {
    Snapshot(std::vec::IntoIter<(Bound<'py, PyAny>, Bound<'py, PyAny>)>),
    Live(Bound<'py, PyIterator>),
}

impl<'py> Items<'py> {
    fn of(mapping: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(dict) = mapping.cast_exact::<PyDict>() {
            return Ok(Items::Snapshot(dict.iter().collect::<Vec<_>>().into_iter()));
        }
        let items = mapping.call_method0(pyo3::intern!(mapping.py(), "items"))?;
        Ok(Items::Live(items.try_iter()?))
    }

    fn next_item(&mut self) -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
        match self {
            Items::Snapshot(items) => Ok(items.next()),
            Items::Live(iter) => match iter.next() {
                None => Ok(None),
                Some(item) => unpack2(&item?).map(Some),
            },
        }
    }
}

/// The skeleton made by the common branch of the Python
/// `_make_skeleton_class`: `type(name, bases, namespace)` with the keys of
/// `type_kwargs` interned, when `type_constructor` is `type`, every base's
/// metaclass is `type` and the namespace has `__module__` (so there are no
/// `__mro_entries__`, derived metaclass or `__prepare__` to consider).
/// None when the general branch applies.
fn plain_skeleton<'py>(
    py: Python<'py>,
    type_constructor: &Bound<'py, PyAny>,
    name: &Bound<'py, PyAny>,
    bases: &Bound<'py, PyAny>,
    type_kwargs: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let type_type: *mut ffi::PyObject = std::ptr::addr_of_mut!(ffi::PyType_Type).cast();
    if type_constructor.as_ptr() != type_type {
        return Ok(None);
    }
    let (Ok(bases_tuple), Ok(kwargs)) = (bases.cast::<PyTuple>(), type_kwargs.cast::<PyDict>())
    else {
        return Ok(None);
    };
    if !bases_tuple
        .iter()
        .all(|b| b.get_type().as_type_ptr().cast() == type_type)
    {
        return Ok(None);
    }
    let namespace = PyDict::new(py);
    let mut has_module = false;
    for (key, value) in kwargs.iter() {
        if !key.is_exact_instance_of::<pyo3::types::PyString>() {
            // sys.intern refuses it: the general branch says so.
            return Ok(None);
        }
        let key = intern(key)?;
        has_module |= key.eq(pyo3::intern!(py, "__module__"))?;
        namespace.set_item(key, value)?;
    }
    if !has_module {
        return Ok(None);
    }
    type_constructor.call1((name, bases, namespace)).map(Some)
}

/// `weakref.WeakValueDictionary`, `weakref.WeakKeyDictionary` and
/// `weakref.KeyedRef`, looked up once.
static WEAKREF_TYPES: OnceLock<[Py<PyAny>; 3]> = OnceLock::new();

fn weakref_types(py: Python<'_>) -> PyResult<&[Py<PyAny>; 3]> {
    if let Some(t) = WEAKREF_TYPES.get() {
        return Ok(t);
    }
    let m = py.import(pyo3::intern!(py, "weakref"))?;
    let types = [
        m.getattr(pyo3::intern!(py, "WeakValueDictionary"))?
            .unbind(),
        m.getattr(pyo3::intern!(py, "WeakKeyDictionary"))?.unbind(),
        m.getattr(pyo3::intern!(py, "KeyedRef"))?.unbind(),
    ];
    Ok(WEAKREF_TYPES.get_or_init(|| types))
}

/// The instance dict of `obj` when `obj` is exactly of type `tp`.
fn instance_dict<'py>(obj: &Bound<'py, PyAny>, tp: &Py<PyAny>) -> Option<Bound<'py, PyDict>> {
    if !obj.get_type().is(tp.bind(obj.py())) {
        return None;
    }
    // SAFETY: GIL held; PyObject_GenericGetDict returns a new reference or
    // null with an exception set (cleared: no dict means no answer).
    let attrs = unsafe { ffi::PyObject_GenericGetDict(obj.as_ptr(), std::ptr::null_mut()) };
    if attrs.is_null() {
        // SAFETY: clearing the error just raised.
        unsafe { ffi::PyErr_Clear() };
        return None;
    }
    // SAFETY: a new reference.
    unsafe { Bound::from_owned_ptr(obj.py(), attrs) }
        .cast_into::<PyDict>()
        .ok()
}

/// What `_lookup_class_or_track(tracker_id, skeleton)` does for a class
/// just created and an id the tracker holds no live class for, done on the
/// trackers' own dicts: `_DYNAMIC_CLASS_TRACKER_BY_ID.data[tracker_id] =
/// KeyedRef(skeleton, its _remove, tracker_id)` and
/// `_DYNAMIC_CLASS_TRACKER_BY_CLASS.data[ref(skeleton, its _remove)] =
/// tracker_id`, as `setdefault` and `__setitem__` would. No Python code
/// runs (string keys; weak references to a class of metaclass `type`
/// hash and compare by identity) and the tracker lock is held, as
/// `_lookup_class_or_track` holds it. False (nothing done) whenever
/// anything differs from that plain case, or the lock is taken:
/// `_lookup_class_or_track` then runs.
fn track_new(
    bridge: &crate::bridge::Bridge,
    tracker_id: &Bound<'_, PyAny>,
    skeleton: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    let py = skeleton.py();
    let type_type: *mut ffi::PyTypeObject = std::ptr::addr_of_mut!(ffi::PyType_Type);
    if !tracker_id.is_exact_instance_of::<pyo3::types::PyString>()
        || skeleton.get_type().as_type_ptr() != type_type
    {
        return Ok(false);
    }
    let lock = bridge.tracker_lock.bind(py);
    // The lock the Python tracker functions hold while they update the
    // mappings (a thread may be paused in the middle of one). Taken without
    // waiting: when another thread holds it, `_lookup_class_or_track` waits.
    if !lock
        .call_method1(pyo3::intern!(py, "acquire"), (false,))?
        .is_truthy()?
    {
        return Ok(false);
    }
    let result = track_new_locked(bridge, tracker_id, skeleton);
    lock.call_method0(pyo3::intern!(py, "release"))?;
    result
}

/// `track_new`, with the tracker lock held and the arguments checked.
fn track_new_locked(
    bridge: &crate::bridge::Bridge,
    tracker_id: &Bound<'_, PyAny>,
    skeleton: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    let py = skeleton.py();
    let [value_dict_type, key_dict_type, keyed_ref_type] = weakref_types(py)?;
    let (Some(id_attrs), Some(class_attrs)) = (
        instance_dict(bridge.tracker_by_id.bind(py), value_dict_type),
        instance_dict(bridge.tracker_by_class.bind(py), key_dict_type),
    ) else {
        return Ok(false);
    };
    let data = pyo3::intern!(py, "data");
    let remove = pyo3::intern!(py, "_remove");
    let (Some(id_data), Some(id_remove), Some(class_data), Some(class_remove)) = (
        id_attrs.get_item(data)?,
        id_attrs.get_item(remove)?,
        class_attrs.get_item(data)?,
        class_attrs.get_item(remove)?,
    ) else {
        return Ok(false);
    };
    let (Ok(id_data), Ok(class_data)) = (
        id_data.cast_into::<PyDict>(),
        class_data.cast_into::<PyDict>(),
    ) else {
        return Ok(false);
    };
    // Removals waiting to be committed (Python 3.13 and older queue them
    // while the mapping is iterated; 3.14 has no such list), or an entry
    // for this id, dead or alive: `_lookup_class_or_track`'s business.
    let pending = id_attrs.get_item(pyo3::intern!(py, "_pending_removals"))?;
    let no_pending = match &pending {
        None => true,
        Some(p) => p.cast::<pyo3::types::PyList>().is_ok_and(|l| l.is_empty()),
    };
    if !no_pending || id_data.contains(tracker_id)? {
        return Ok(false);
    }
    let keyed_ref_type = keyed_ref_type.bind(py);
    // SAFETY: GIL held. `KeyedRef.__new__` is `ref.__new__(KeyedRef, ob,
    // callback)` followed by setting its `key` slot: the weakref type's own
    // tp_new is called with a subtype of it (checked: KeyedRef's base is
    // `weakref.ref`) and returns a new reference or null with an error set.
    let keyed = unsafe {
        let Some(ref_type) = crate::py_compat::weakref_ref_type() else {
            return Ok(false);
        };
        let tp = keyed_ref_type.as_ptr() as *mut ffi::PyTypeObject;
        if ffi::PyType_Check(keyed_ref_type.as_ptr()) == 0 || (*tp).tp_base != ref_type {
            return Ok(false);
        }
        let Some(new) = (*ref_type).tp_new else {
            return Ok(false);
        };
        let args = PyTuple::new(py, [skeleton, &id_remove])?;
        let keyed = new(tp, args.as_ptr(), std::ptr::null_mut());
        if keyed.is_null() {
            return Err(crate::errors::fetch(py));
        }
        Bound::from_owned_ptr(py, keyed)
    };
    keyed.setattr(pyo3::intern!(py, "key"), tracker_id)?;
    // SAFETY: GIL held; PyWeakref_NewRef returns a new reference or null
    // with an error set.
    let weak = unsafe {
        let weak = ffi::PyWeakref_NewRef(skeleton.as_ptr(), class_remove.as_ptr());
        if weak.is_null() {
            return Err(crate::errors::fetch(py));
        }
        Bound::from_owned_ptr(py, weak)
    };
    id_data.set_item(tracker_id, keyed)?;
    class_data.set_item(weak, tracker_id)?;
    Ok(true)
}

/// The live class the tracker holds under `tracker_id`, read from the
/// `WeakValueDictionary`'s own dict without running Python code.
fn tracked_class<'py>(
    tracker: &Bound<'py, PyAny>,
    tracker_id: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = tracker.py();
    if !tracker_id.is_exact_instance_of::<pyo3::types::PyString>() {
        return Ok(None);
    }
    // SAFETY: GIL held; PyObject_GenericGetDict returns a new reference or
    // null (with an exception set, cleared: no dict means no answer).
    let attrs = unsafe { ffi::PyObject_GenericGetDict(tracker.as_ptr(), std::ptr::null_mut()) };
    if attrs.is_null() {
        // SAFETY: clearing the error just raised.
        unsafe { ffi::PyErr_Clear() };
        return Ok(None);
    }
    // SAFETY: a new reference.
    let attrs = unsafe { Bound::from_owned_ptr(py, attrs) };
    let Ok(attrs) = attrs.cast_into::<PyDict>() else {
        return Ok(None);
    };
    let Some(data) = attrs.get_item(pyo3::intern!(py, "data"))? else {
        return Ok(None);
    };
    let Ok(data) = data.cast_into::<PyDict>() else {
        return Ok(None);
    };
    // Keys are strings: the lookup runs no Python code.
    let Some(weak) = data.get_item(tracker_id)? else {
        return Ok(None);
    };
    // SAFETY: GIL held; checking the type of a live object.
    if unsafe { ffi::PyWeakref_CheckRef(weak.as_ptr()) } == 0 {
        return Ok(None);
    }
    // Calling a weak reference returns its referent, or None once dead.
    let known = weak.call0()?;
    Ok((!known.is_none()).then_some(known))
}

/// Whether creating the skeleton with `type(name, bases, namespace)` could
/// have no effect visible outside the new class: metaclass `type`, plain
/// bases that do not override `__init_subclass__`, and a namespace (with
/// `__module__`) of strings and None, which have no `__set_name__`.
fn creation_is_invisible(
    py: Python<'_>,
    type_constructor: &Bound<'_, PyAny>,
    bases: &Bound<'_, PyAny>,
    type_kwargs: &Bound<'_, PyAny>,
) -> bool {
    let type_type: *mut ffi::PyObject = std::ptr::addr_of_mut!(ffi::PyType_Type).cast();
    if type_constructor.as_ptr() != type_type {
        return false;
    }
    let Ok(bases) = bases.cast::<PyTuple>() else {
        return false;
    };
    let hook = pyo3::intern!(py, "__init_subclass__");
    // SAFETY: GIL held; `_PyType_Lookup` reads type dicts along the MRO and
    // returns a borrowed reference (or null), compared by address only.
    let default_hook = unsafe {
        crate::py::_PyType_Lookup(
            std::ptr::addr_of_mut!(ffi::PyBaseObject_Type),
            hook.as_ptr(),
        )
    };
    for base in bases.iter() {
        // SAFETY: as above; `base` is a type when its type is `type`.
        let plain = unsafe {
            ffi::Py_TYPE(base.as_ptr()) == std::ptr::addr_of_mut!(ffi::PyType_Type)
                && crate::py::_PyType_Lookup(base.as_ptr().cast(), hook.as_ptr()) == default_hook
        };
        if !plain {
            return false;
        }
    }
    let Ok(kwargs) = type_kwargs.cast::<PyDict>() else {
        return false;
    };
    let mut has_module = false;
    for (key, value) in kwargs.iter() {
        if !key.is_exact_instance_of::<pyo3::types::PyString>() {
            return false;
        }
        has_module |= key
            .cast::<pyo3::types::PyString>()
            .is_ok_and(|k| k.to_cow().is_ok_and(|k| k == "__module__"));
        if !(value.is_none() || value.is_exact_instance_of::<pyo3::types::PyString>()) {
            return false;
        }
    }
    has_module
}

/// `_class_setstate(obj, state)`: fills the namespace of a class made by
/// `_make_skeleton_class` or `_make_skeleton_enum` and returns it, as the
/// reference does. `state` is `(class_dict, slotstate)` (any iterable of
/// two; `class_dict` any mapping, read through `in`, `[]` and `items()`
/// unless it is an exact dict): each entry of the class dict is set as an
/// attribute, except `_abc_impl`, the list of virtual subclasses of an
/// ABC, which are registered again at the end, and on 3.14+
/// `__annotations__` when the class keeps its own annotate function
/// (`_keeps_lazy_annotations`); on 3.13+ `__firstlineno__` is set last
/// (assigning any attribute deletes it).
#[pyfunction]
#[pyo3(name = "_class_setstate")]
pub fn class_setstate<'py>(
    obj: &Bound<'py, PyAny>,
    state: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let (class_dict, _slotstate) = unpack2(state)?;
    // `key in class_dict and class_dict[key]`: one lookup for an exact
    // dict (strings as keys: no Python code runs).
    let lookup = |key: &Bound<'py, PyString>| -> PyResult<Option<Bound<'py, PyAny>>> {
        if let Ok(dict) = class_dict.cast_exact::<PyDict>() {
            return dict.get_item(key);
        }
        if class_dict.contains(key)? {
            return class_dict.get_item(key).map(Some);
        }
        Ok(None)
    };
    let abc_impl = pyo3::intern!(py, "_abc_impl");
    let annotations = pyo3::intern!(py, "__annotations__");
    let keep_lazy = match lookup(annotations)? {
        Some(carried) => keeps_lazy_annotations(obj, &carried)?,
        None => false,
    };
    let mut registry = None;
    let mut items = Items::of(&class_dict)?;
    while let Some((attr, value)) = items.next_item()? {
        if attr.eq(abc_impl)? {
            registry = Some(value);
            continue;
        }
        if keep_lazy && attr.eq(annotations)? {
            continue;
        }
        // SAFETY: GIL held; both objects alive (owned by `attr` and
        // `value`). PyObject_SetAttr raises TypeError for a name that is
        // not a string, as setattr() does.
        if unsafe { ffi::PyObject_SetAttr(obj.as_ptr(), attr.as_ptr(), value.as_ptr()) } != 0 {
            return Err(crate::errors::fetch(py));
        }
    }
    if crate::py::cache().py_minor >= 13 {
        let firstlineno = pyo3::intern!(py, "__firstlineno__");
        if let Some(line) = lookup(firstlineno)? {
            obj.setattr(firstlineno, line)?;
        }
    }
    if let Some(registry) = registry.filter(|r| !r.is_none()) {
        let register = pyo3::intern!(py, "register");
        for subclass in registry.try_iter()? {
            obj.call_method1(register, (subclass?,))?;
        }
    }
    Ok(obj.clone())
}

/// `_keeps_lazy_annotations(cls, annotations)`: whether applying a class
/// state whose `__annotations__` entry is `annotations` leaves that entry
/// out. On Python 3.14+ a class state carries the annotations evaluated
/// (the annotate function holds the class namespace in a closure and
/// cannot travel), and setting `__annotations__` on a class discards its
/// annotate function. When the class tracker hands back the original class
/// (a payload loaded in the process that made it), that class still has
/// its own annotate function (`__annotate_func__`, callable) giving the
/// same names: it is left as it was, as the reference leaves it. A fresh
/// skeleton has none, or one its metaclass made (TypedDict, NamedTuple)
/// that knows nothing of the carried names: it gets the annotations. Used
/// by both `_class_setstate`s.
#[pyfunction]
#[pyo3(name = "_keeps_lazy_annotations")]
pub fn keeps_lazy_annotations(
    cls: &Bound<'_, PyAny>,
    annotations: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    let py = cls.py();
    if crate::py::cache().py_minor < 14 || !cls.is_instance_of::<pyo3::types::PyType>() {
        return Ok(false);
    }
    let Ok(carried) = annotations.cast::<PyDict>() else {
        return Ok(false);
    };
    let namespace = cls.getattr(pyo3::intern!(py, "__dict__"))?;
    let annotate = namespace.call_method1(
        pyo3::intern!(py, "get"),
        (pyo3::intern!(py, "__annotate_func__"),),
    )?;
    if !annotate.is_callable() {
        return Ok(false);
    }
    // The names the class's own annotate function gives, in the format that
    // cannot fail on names not defined yet; any error means "not the same".
    let own = (|| -> PyResult<Bound<'_, PyAny>> {
        let annotationlib = py.import(pyo3::intern!(py, "annotationlib"))?;
        let forwardref = annotationlib
            .getattr(pyo3::intern!(py, "Format"))?
            .getattr(pyo3::intern!(py, "FORWARDREF"))?;
        let kwargs = PyDict::new(py);
        kwargs.set_item(pyo3::intern!(py, "format"), forwardref)?;
        annotationlib.call_method(pyo3::intern!(py, "get_annotations"), (cls,), Some(&kwargs))
    })();
    let Ok(own) = own else {
        return Ok(false);
    };
    let Ok(own) = own.cast_into::<PyDict>() else {
        return Ok(false);
    };
    if own.len() != carried.len() {
        return Ok(false);
    }
    for key in carried.keys() {
        if !own.contains(key)? {
            return Ok(false);
        }
    }
    Ok(true)
}
