//! Every access to the interpreter whose form depends on which interpreter
//! runs the engine: CPython, or PyPy through its C API emulation (cpyext).
//!
//! On CPython each accessor is what the engine did inline before (a struct
//! field, a macro of the C API), so the code generated there is the same.
//! On PyPy only the portable C API is used: cpyext hands out proxy objects
//! that do not hold CPython's struct layouts (function fields, dict tables,
//! instance slots), and the address of a proxy of a `str`, `bytes` or `int`
//! is not that object's identity once the proxy is freed. So on PyPy:
//! - [`LAYOUT_READS`] is false: the fast paths that read object layouts are
//!   off (`fast_paths::enabled` answers false whatever the switch says);
//! - the accessors that have no portable equivalent answer "unknown"
//!   (`None`), and the caller takes its general path;
//! - cells, code objects and `PickleBuffer` are reached through their Python
//!   types and attributes, found once at import ([`init`]).

use pyo3::ffi;
use pyo3::prelude::*;

/// Whether the engine may read CPython's object layouts. False on PyPy.
pub const LAYOUT_READS: bool = !cfg!(PyPy);

extern "C" {
    /// Exported by CPython 3.9 to 3.14 (`Include/cpython/object.h`) and by
    /// PyPy's cpyext; looks an attribute up along a type's MRO without
    /// calling any Python code. Returns a borrowed reference or null.
    #[cfg_attr(PyPy, link_name = "_PyPyType_Lookup")]
    pub fn _PyType_Lookup(
        tp: *mut ffi::PyTypeObject,
        name: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject;
    /// Public C API (`Include/cpython/bytesobject.h`), not re-exported by
    /// pyo3-ffi: reallocates a bytes object that nobody else references.
    #[cfg_attr(PyPy, link_name = "_PyPyBytes_Resize")]
    pub fn _PyBytes_Resize(
        bytes: *mut *mut ffi::PyObject,
        newsize: ffi::Py_ssize_t,
    ) -> std::os::raw::c_int;
}

#[cfg(not(PyPy))]
extern "C" {
    /// Public since 3.8 (`Include/cpython/picklebufobject.h`); PyPy has no
    /// C-level PickleBuffer.
    static mut PyPickleBuffer_Type: ffi::PyTypeObject;
    fn PyPickleBuffer_GetBuffer(obj: *mut ffi::PyObject) -> *const ffi::Py_buffer;
}

#[cfg(PyPy)]
extern "C" {
    #[link_name = "PyPyModule_GetNameObject"]
    fn PyModule_GetNameObject(module: *mut ffi::PyObject) -> *mut ffi::PyObject;
}

/// The Python-level types PyPy's C API does not export, found at import.
#[cfg(PyPy)]
struct PyPyTypes {
    code: *mut ffi::PyObject,
    cell: *mut ffi::PyObject,
    picklebuffer: *mut ffi::PyObject,
    s_cell_contents: *mut ffi::PyObject,
    s_self: *mut ffi::PyObject,
    builtin_id: *mut ffi::PyObject,
}

// SAFETY: strong references never released, only used with the GIL held.
#[cfg(PyPy)]
unsafe impl Send for PyPyTypes {}
// SAFETY: as for Send.
#[cfg(PyPy)]
unsafe impl Sync for PyPyTypes {}

#[cfg(PyPy)]
static PYPY_TYPES: std::sync::OnceLock<PyPyTypes> = std::sync::OnceLock::new();

#[cfg(PyPy)]
fn pypy_types() -> &'static PyPyTypes {
    PYPY_TYPES
        .get()
        .expect("cloudpickle._engine used before initialisation")
}

/// Finds what the accessors need; called once by module initialisation.
pub fn init(py: Python<'_>) -> PyResult<()> {
    #[cfg(PyPy)]
    {
        let types = py.import("types")?;
        let t = PyPyTypes {
            code: types.getattr("CodeType")?.unbind().into_ptr(),
            cell: types.getattr("CellType")?.unbind().into_ptr(),
            picklebuffer: py
                .import("pickle")?
                .getattr("PickleBuffer")?
                .unbind()
                .into_ptr(),
            s_cell_contents: pyo3::types::PyString::intern(py, "cell_contents")
                .unbind()
                .into_ptr(),
            s_self: pyo3::types::PyString::intern(py, "__self__")
                .unbind()
                .into_ptr(),
            builtin_id: py.import("builtins")?.getattr("id")?.unbind().into_ptr(),
        };
        let _ = PYPY_TYPES.set(t);
    }
    let _ = py;
    Ok(())
}

/// The type of code objects.
#[inline(always)]
pub fn code_type() -> *mut ffi::PyTypeObject {
    #[cfg(not(PyPy))]
    {
        std::ptr::addr_of_mut!(ffi::PyCode_Type)
    }
    #[cfg(PyPy)]
    {
        pypy_types().code.cast()
    }
}

/// The type of `pickle.PickleBuffer`.
pub fn picklebuffer_type() -> *mut ffi::PyTypeObject {
    #[cfg(not(PyPy))]
    {
        std::ptr::addr_of_mut!(PyPickleBuffer_Type)
    }
    #[cfg(PyPy)]
    {
        pypy_types().picklebuffer.cast()
    }
}

/// The item array of a list (`ob_item`), valid until Python code runs
/// (which may resize the list); None on PyPy, whose lists have no such
/// array.
///
/// # Safety
/// `obj` must be an alive exact list; GIL held.
#[inline(always)]
pub unsafe fn list_items(obj: *mut ffi::PyObject) -> Option<*const *mut ffi::PyObject> {
    #[cfg(not(PyPy))]
    {
        // SAFETY: `obj` is an alive exact list (contract), whose struct is a
        // `PyListObject` on CPython.
        Some(unsafe { (*obj.cast::<ffi::PyListObject>()).ob_item.cast_const() })
    }
    #[cfg(PyPy)]
    {
        let _ = obj;
        None
    }
}

/// Size of a tuple (`PyTuple_GET_SIZE`).
///
/// # Safety
/// GIL held; `t` is a live tuple.
#[inline(always)]
pub unsafe fn tuple_size(t: *mut ffi::PyObject) -> ffi::Py_ssize_t {
    #[cfg(not(PyPy))]
    {
        // SAFETY: the caller's contract.
        unsafe { ffi::PyTuple_GET_SIZE(t) }
    }
    #[cfg(PyPy)]
    {
        // SAFETY: the caller's contract; cannot fail for a tuple.
        unsafe { ffi::PyTuple_Size(t) }
    }
}

/// Item `i` of a tuple, borrowed (`PyTuple_GET_ITEM`).
///
/// # Safety
/// GIL held; `t` is a live tuple and `0 <= i < tuple_size(t)`.
#[inline(always)]
pub unsafe fn tuple_item(t: *mut ffi::PyObject, i: ffi::Py_ssize_t) -> *mut ffi::PyObject {
    #[cfg(not(PyPy))]
    {
        // SAFETY: the caller's contract.
        unsafe { ffi::PyTuple_GET_ITEM(t, i) }
    }
    #[cfg(PyPy)]
    {
        // SAFETY: the caller's contract; in range, so it cannot fail. The
        // reference is borrowed from the tuple, which keeps it alive.
        unsafe { ffi::PyTuple_GetItem(t, i) }
    }
}

/// A field of a Python function object.
#[derive(Clone, Copy)]
pub enum FuncSlot {
    Name,
    Qualname,
    Module,
    Doc,
    Defaults,
    KwDefaults,
    Annotations,
}

impl FuncSlot {
    /// The attribute whose getter reads this field.
    #[cfg_attr(not(PyPy), allow(dead_code))]
    fn attr(self) -> &'static str {
        match self {
            FuncSlot::Name => "__name__",
            FuncSlot::Qualname => "__qualname__",
            FuncSlot::Module => "__module__",
            FuncSlot::Doc => "__doc__",
            FuncSlot::Defaults => "__defaults__",
            FuncSlot::KwDefaults => "__kwdefaults__",
            FuncSlot::Annotations => "__annotations__",
        }
    }
}

/// The raw field of a function object (borrowed, null when unset), or None
/// where the interpreter's function objects do not expose it (PyPy): the
/// caller then takes its general path.
///
/// # Safety
/// GIL held; `f` is a live exact function object.
#[inline(always)]
pub unsafe fn function_slot(f: *mut ffi::PyObject, slot: FuncSlot) -> Option<*mut ffi::PyObject> {
    #[cfg(not(PyPy))]
    {
        // SAFETY: the caller's contract: `f` points to a PyFunctionObject.
        let fo = unsafe { &*(f as *mut ffi::PyFunctionObject) };
        Some(match slot {
            FuncSlot::Name => fo.func_name,
            FuncSlot::Qualname => fo.func_qualname,
            FuncSlot::Module => fo.func_module,
            FuncSlot::Doc => fo.func_doc,
            FuncSlot::Defaults => fo.func_defaults,
            FuncSlot::KwDefaults => fo.func_kwdefaults,
            FuncSlot::Annotations => fo.func_annotations,
        })
    }
    #[cfg(PyPy)]
    {
        let _ = (f, slot);
        None
    }
}

/// A function's `__dict__`, None when it has none yet (the attribute
/// getter would make an empty one). On PyPy, the getter itself.
///
/// # Safety
/// GIL held; `func` is an exact function object.
pub unsafe fn function_dict<'py>(
    func: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, pyo3::types::PyDict>>> {
    #[cfg(not(PyPy))]
    {
        // SAFETY: the caller's contract: `func` points to a PyFunctionObject,
        // whose `func_dict` is null or a live dict (its setter accepts dicts
        // only); we take our own reference.
        unsafe {
            let d = (*(func.as_ptr() as *mut ffi::PyFunctionObject)).func_dict;
            if d.is_null() {
                return Ok(None);
            }
            Ok(Some(Bound::from_borrowed_ptr(func.py(), d).cast_into()?))
        }
    }
    #[cfg(PyPy)]
    {
        Ok(Some(
            func.getattr(pyo3::intern!(func.py(), "__dict__"))?
                .cast_into()?,
        ))
    }
}

/// The value of a function's field as its attribute getter gives it (None
/// for an unset field). On PyPy, the getter itself.
///
/// # Safety
/// GIL held; `func` is an exact function object.
pub unsafe fn function_slot_value<'py>(
    func: &Bound<'py, PyAny>,
    slot: FuncSlot,
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: the caller's contract.
    match unsafe { function_slot(func.as_ptr(), slot) } {
        Some(p) if p.is_null() => Ok(func.py().None().into_bound(func.py())),
        // SAFETY: a field of a live function is a live object; we take our
        // own reference.
        Some(p) => Ok(unsafe { Bound::from_borrowed_ptr(func.py(), p) }),
        None => func.getattr(slot.attr()),
    }
}

/// A builtin function's name (the C string of its method definition, null
/// if it has none) and its `m_module` (borrowed, may be null); None where
/// builtin functions do not have that layout (PyPy).
///
/// # Safety
/// GIL held; `obj` is a live object of type `PyCFunction_Type`.
#[inline(always)]
pub unsafe fn cfunction_fields(
    obj: *mut ffi::PyObject,
) -> Option<(*const std::os::raw::c_char, *mut ffi::PyObject)> {
    #[cfg(not(PyPy))]
    {
        // SAFETY: the caller's contract: `obj` is a PyCFunctionObject, whose
        // `m_ml` is null or a method definition that outlives it.
        unsafe {
            let f = obj as *mut ffi::PyCFunctionObject;
            let name = if (*f).m_ml.is_null() {
                std::ptr::null()
            } else {
                (*(*f).m_ml).ml_name
            };
            Some((name, (*f).m_module))
        }
    }
    #[cfg(PyPy)]
    {
        let _ = obj;
        None
    }
}

/// Whether a builtin function is bound to a module or to nothing (a
/// function of a module, not a method of an object).
///
/// # Safety
/// GIL held; `obj` is a live object of type `PyCFunction_Type`.
#[inline(always)]
pub unsafe fn cfunction_of_module(obj: *mut ffi::PyObject) -> bool {
    #[cfg(not(PyPy))]
    {
        // SAFETY: the caller's contract; PyCFunction_GetSelf returns a
        // borrowed reference or null.
        unsafe {
            let owner = ffi::PyCFunction_GetSelf(obj);
            owner.is_null() || ffi::PyModule_Check(owner) != 0
        }
    }
    #[cfg(PyPy)]
    {
        // SAFETY: the caller's contract; the attribute is a new reference
        // (released below) or null with an exception, cleared: a function
        // whose owner cannot be read is not treated as a module's.
        unsafe {
            let owner = ffi::PyObject_GetAttr(obj, pypy_types().s_self);
            if owner.is_null() {
                ffi::PyErr_Clear();
                return false;
            }
            let r = owner == ffi::Py_None() || ffi::PyModule_Check(owner) != 0;
            ffi::Py_DECREF(owner);
            r
        }
    }
}

/// `PyModule_GetNameObject`: a new reference to the module's name, or null
/// with an exception set.
///
/// # Safety
/// GIL held; `module` is a live module object.
pub unsafe fn module_name_object(module: *mut ffi::PyObject) -> *mut ffi::PyObject {
    #[cfg(not(PyPy))]
    {
        // SAFETY: the caller's contract.
        unsafe { ffi::PyModule_GetNameObject(module) }
    }
    #[cfg(PyPy)]
    {
        // SAFETY: the caller's contract.
        unsafe { PyModule_GetNameObject(module) }
    }
}

/// The name object of a heap type (`ht_name`, borrowed, may be null), or
/// None where type objects do not have that layout (PyPy).
///
/// # Safety
/// GIL held; `t` is a live heap type.
#[inline(always)]
pub unsafe fn heap_type_name(t: *mut ffi::PyTypeObject) -> Option<*mut ffi::PyObject> {
    #[cfg(not(PyPy))]
    {
        // SAFETY: the caller's contract: a heap type is a PyHeapTypeObject.
        Some(unsafe { (*(t as *mut ffi::PyHeapTypeObject)).ht_name })
    }
    #[cfg(PyPy)]
    {
        let _ = t;
        None
    }
}

/// Whether a dict has a combined table (its keys are its own, not shared
/// with other instances' dicts). Where the table cannot be read (PyPy),
/// false: a key is then never assumed to be held by this dict only.
///
/// # Safety
/// GIL held; `d` is a live exact dict.
#[inline(always)]
pub unsafe fn dict_is_combined(d: *mut ffi::PyObject) -> bool {
    #[cfg(not(PyPy))]
    {
        // SAFETY: the caller's contract: `d` is a PyDictObject.
        unsafe { (*(d as *mut ffi::PyDictObject)).ma_values.is_null() }
    }
    #[cfg(PyPy)]
    {
        let _ = d;
        false
    }
}

/// A type's flags (`PyType_GetFlags`), read from the type object on CPython.
///
/// # Safety
/// GIL held; `tp` is a live type object.
#[inline(always)]
pub unsafe fn type_flags(tp: *mut ffi::PyTypeObject) -> std::os::raw::c_ulong {
    #[cfg(not(PyPy))]
    {
        // SAFETY: `tp` is a live type object (contract), whose struct may be read.
        unsafe { (*tp).tp_flags as std::os::raw::c_ulong }
    }
    #[cfg(PyPy)]
    {
        // SAFETY: as above.
        unsafe { ffi::PyType_GetFlags(tp) }
    }
}

/// The characters of a compact ASCII str (the usual layout of an ASCII
/// str on CPython: its characters right after its header, which are also
/// its UTF-8 form); None for any other str, and always on PyPy and from
/// CPython 3.14 on, where PyO3 no longer reads the str's state bits (their
/// layout differs between the free-threaded and the default builds).
///
/// # Safety
/// GIL held; `obj` is a live exact str. The slice lives as long as `obj`.
#[inline(always)]
pub unsafe fn str_ascii<'a>(obj: *mut ffi::PyObject) -> Option<&'a [u8]> {
    #[cfg(not(any(PyPy, Py_3_14)))]
    {
        // SAFETY: `obj` is a live str (contract); a compact ASCII str stores
        // its `len` characters, one byte each, right after its
        // `PyASCIIObject` header, immutable and alive while `obj` is.
        unsafe {
            if ffi::PyUnicode_IS_COMPACT_ASCII(obj) == 0 {
                return None;
            }
            let len = ffi::PyUnicode_GET_LENGTH(obj) as usize;
            let data = (obj as *const ffi::PyASCIIObject).add(1) as *const u8;
            Some(std::slice::from_raw_parts(data, len))
        }
    }
    #[cfg(any(PyPy, Py_3_14))]
    {
        let _ = obj;
        None
    }
}

/// Whether a str that is not 1-byte (`kind` is `PyUnicode_2BYTE_KIND` or
/// `PyUnicode_4BYTE_KIND`) holds a surrogate code point.
///
/// # Safety
/// GIL held; `obj` is a live exact str of that kind.
pub unsafe fn str_has_surrogates(obj: *mut ffi::PyObject, kind: std::os::raw::c_uint) -> bool {
    let surrogate = |c: u32| (0xD800..=0xDFFF).contains(&c);
    #[cfg(not(PyPy))]
    {
        // SAFETY: a canonical str of this kind stores `len` code units of
        // that width at `data`, alive while `obj` is.
        unsafe {
            let len = ffi::PyUnicode_GET_LENGTH(obj) as usize;
            let data = ffi::PyUnicode_DATA(obj);
            if kind == ffi::PyUnicode_2BYTE_KIND {
                std::slice::from_raw_parts(data as *const u16, len)
                    .iter()
                    .any(|&c| surrogate(u32::from(c)))
            } else {
                std::slice::from_raw_parts(data as *const u32, len)
                    .iter()
                    .any(|&c| surrogate(c))
            }
        }
    }
    #[cfg(PyPy)]
    {
        let _ = kind;
        // SAFETY: the caller's contract; indices are in range, so
        // PyUnicode_ReadChar cannot fail.
        unsafe {
            let len = ffi::PyUnicode_GetLength(obj);
            (0..len).any(|i| surrogate(ffi::PyUnicode_ReadChar(obj, i)))
        }
    }
}

/// `PyCell_Get`: a new reference to the cell's value, or null without an
/// exception when the cell is empty (or, on PyPy, cannot be read).
///
/// # Safety
/// GIL held; `cell` is a live cell.
pub unsafe fn cell_get(cell: *mut ffi::PyObject) -> *mut ffi::PyObject {
    #[cfg(not(PyPy))]
    {
        // SAFETY: the caller's contract.
        unsafe { ffi::PyCell_Get(cell) }
    }
    #[cfg(PyPy)]
    {
        // SAFETY: the caller's contract; reading `cell_contents` of an
        // empty cell raises ValueError, cleared: the cell is empty.
        unsafe {
            let v = ffi::PyObject_GetAttr(cell, pypy_types().s_cell_contents);
            if v.is_null() {
                ffi::PyErr_Clear();
            }
            v
        }
    }
}

/// `PyCell_Set`: stores `value` (borrowed; null empties the cell). Returns
/// 0, or -1 with an exception set.
///
/// # Safety
/// GIL held; `cell` is a live cell; `value` null or alive.
pub unsafe fn cell_set(cell: *mut ffi::PyObject, value: *mut ffi::PyObject) -> std::os::raw::c_int {
    #[cfg(not(PyPy))]
    {
        // SAFETY: the caller's contract.
        unsafe { ffi::PyCell_Set(cell, value) }
    }
    #[cfg(PyPy)]
    {
        // SAFETY: the caller's contract; a null value deletes the
        // attribute, which empties the cell.
        unsafe { ffi::PyObject_SetAttr(cell, pypy_types().s_cell_contents, value) }
    }
}

/// `PyCell_New`: a new cell holding `value` (borrowed; null for an empty
/// cell). A new reference, or null with an exception set.
///
/// # Safety
/// GIL held; `value` null or alive.
pub unsafe fn cell_new(value: *mut ffi::PyObject) -> *mut ffi::PyObject {
    #[cfg(not(PyPy))]
    {
        // SAFETY: the caller's contract.
        unsafe { ffi::PyCell_New(value) }
    }
    #[cfg(PyPy)]
    {
        // SAFETY: the caller's contract; `types.CellType()` makes an empty
        // cell and `types.CellType(value)` a full one.
        unsafe {
            let cell_type = pypy_types().cell;
            if value.is_null() {
                ffi::PyObject_CallObject(cell_type, std::ptr::null_mut())
            } else {
                ffi::PyObject_CallOneArg(cell_type, value)
            }
        }
    }
}

/// The buffer of a `pickle.PickleBuffer`, valid while this view is alive
/// (on PyPy the view holds its own export of the buffer, released when it
/// is dropped; on CPython it is the PickleBuffer's own view).
pub struct PickleBufferView {
    #[cfg(not(PyPy))]
    view: *const ffi::Py_buffer,
    #[cfg(PyPy)]
    view: Box<ffi::Py_buffer>,
}

impl PickleBufferView {
    /// The view of `obj`, or null with an exception set (None).
    ///
    /// # Safety
    /// GIL held; `obj` is a live `pickle.PickleBuffer`, which outlives the
    /// view.
    pub unsafe fn new(obj: *mut ffi::PyObject) -> Option<Self> {
        #[cfg(not(PyPy))]
        {
            // SAFETY: the caller's contract.
            let view = unsafe { PyPickleBuffer_GetBuffer(obj) };
            (!view.is_null()).then_some(PickleBufferView { view })
        }
        #[cfg(PyPy)]
        {
            // SAFETY: zeroed is a valid initial Py_buffer (plain data), and
            // PyObject_GetBuffer fills it or fails with an exception set.
            unsafe {
                let mut view: Box<ffi::Py_buffer> = Box::new(std::mem::zeroed());
                if ffi::PyObject_GetBuffer(obj, &mut *view, ffi::PyBUF_FULL_RO) != 0 {
                    return None;
                }
                Some(PickleBufferView { view })
            }
        }
    }

    /// The view, valid while `self` is alive.
    pub fn as_ptr(&self) -> *const ffi::Py_buffer {
        #[cfg(not(PyPy))]
        {
            self.view
        }
        #[cfg(PyPy)]
        {
            &*self.view
        }
    }
}

#[cfg(PyPy)]
impl Drop for PickleBufferView {
    fn drop(&mut self) {
        // SAFETY: the view was filled by PyObject_GetBuffer and not released
        // yet; the GIL is held wherever the engine holds a view.
        unsafe { ffi::PyBuffer_Release(&mut *self.view) }
    }
}

/// A function's closure (the tuple of its cells), or None when it has no
/// free variables.
///
/// # Safety
/// GIL held; `func` is an exact function object.
#[inline(always)]
pub unsafe fn function_closure<'py>(
    func: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    #[cfg(not(PyPy))]
    {
        // SAFETY: the caller's contract; a borrowed reference or null (no
        // exception), which we turn into our own reference.
        unsafe {
            let p = ffi::PyFunction_GetClosure(func.as_ptr());
            Ok((!p.is_null()).then(|| Bound::from_borrowed_ptr(func.py(), p)))
        }
    }
    #[cfg(PyPy)]
    {
        let closure = func.getattr(pyo3::intern!(func.py(), "__closure__"))?;
        Ok((!closure.is_none()).then_some(closure))
    }
}

/// Stops the garbage collector from tracking `obj` (see `py::untrack`).
/// PyPy's collector does not track objects this way: nothing to do there.
#[inline]
pub fn gc_untrack(obj: &Bound<'_, PyAny>) {
    #[cfg(not(PyPy))]
    // SAFETY: GIL held (a Bound); PyObject_GC_UnTrack accepts any object
    // that supports GC, tracked or not.
    unsafe {
        if ffi::PyObject_IS_GC(obj.as_ptr()) != 0 {
            ffi::PyObject_GC_UnTrack(obj.as_ptr().cast());
        }
    }
    #[cfg(PyPy)]
    let _ = obj;
}

/// `id(obj)`, as Python computes it: the object's address on CPython. On
/// PyPy the address of a C API proxy is not the object's `id()`, which
/// Python code (a `globals_ref` dict keyed by `id(func.__globals__)`)
/// compares with.
pub fn object_id<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    #[cfg(not(PyPy))]
    // SAFETY: GIL held (a Bound); PyLong_FromVoidPtr only reads the address
    // and returns a new reference or null with an exception set.
    unsafe {
        Bound::from_owned_ptr_or_err(obj.py(), ffi::PyLong_FromVoidPtr(obj.as_ptr().cast()))
    }
    #[cfg(PyPy)]
    // SAFETY: `builtin_id` is a strong reference kept for the process.
    unsafe {
        Bound::from_borrowed_ptr(obj.py(), pypy_types().builtin_id).call1((obj,))
    }
}

/// Gives the garbage collector back an object `gc_untrack` (or an untracked
/// construction) left untracked. Nothing to do on PyPy, as for
/// `gc_untrack` (its C API has no `PyObject_IS_GC` either).
#[inline]
pub fn gc_track(obj: &Bound<'_, PyAny>) {
    #[cfg(not(PyPy))]
    // SAFETY: GIL held (a Bound); an object that supports GC and is not
    // tracked may be tracked once it is fully built.
    unsafe {
        let o = obj.as_ptr();
        if ffi::PyObject_IS_GC(o) != 0 && ffi::PyObject_GC_IsTracked(o) == 0 {
            ffi::PyObject_GC_Track(o.cast());
        }
    }
    #[cfg(PyPy)]
    let _ = obj;
}

/// `weakref.ref`'s type object, whose `tp_new` the class tracker calls
/// directly; None where it is not exported (PyPy: the tracker then takes
/// its Python path).
#[inline(always)]
pub fn weakref_ref_type() -> Option<*mut ffi::PyTypeObject> {
    #[cfg(not(PyPy))]
    {
        Some(std::ptr::addr_of_mut!(ffi::_PyWeakref_RefType))
    }
    #[cfg(PyPy)]
    {
        None
    }
}

/// The version tag of the type `tp`, if it is valid (0 otherwise). CPython
/// gives a type a new tag whenever it, or one of its bases, is modified.
/// Up to 3.12 a flag says whether the tag is valid; from 3.13 on, the flag
/// is unused and 0 means "no valid tag". PyPy's type objects keep no tag:
/// always 0 there, so nothing keyed by a tag is cached.
///
/// # Safety
/// `tp` must be a live type object; GIL held.
#[inline(always)]
pub unsafe fn version_tag(tp: *mut ffi::PyTypeObject, py_minor: u8) -> u32 {
    #[cfg(not(PyPy))]
    // SAFETY: the caller's contract.
    unsafe {
        if py_minor >= 13 || ((*tp).tp_flags & ffi::Py_TPFLAGS_VALID_VERSION_TAG) != 0 {
            (*tp).tp_version_tag
        } else {
            0
        }
    }
    #[cfg(PyPy)]
    {
        let _ = (tp, py_minor);
        0
    }
}

/// Iterates over a dict's entries as `PyDict_Next` does, giving borrowed
/// references. On PyPy, `PyDict_Next` is not safe when the dict changes
/// between calls (Python code runs while each entry is saved): there the
/// iterator walks a snapshot of the keys, looks each value up, and stops
/// at a key that is gone, answering true to [`DictIter::changed`].
pub struct DictIter {
    pos: ffi::Py_ssize_t,
    #[cfg(PyPy)]
    keys: *mut ffi::PyObject,
    #[cfg(PyPy)]
    changed: bool,
}

impl DictIter {
    #[inline(always)]
    pub fn new() -> Self {
        DictIter {
            pos: 0,
            #[cfg(PyPy)]
            keys: std::ptr::null_mut(),
            #[cfg(PyPy)]
            changed: false,
        }
    }

    /// The next entry of `d` into `key` and `value` (borrowed: the caller
    /// takes its own references before running any Python code); false at
    /// the end.
    ///
    /// # Safety
    /// GIL held; `d` is a live exact dict, the same on every call.
    #[inline(always)]
    pub unsafe fn next(
        &mut self,
        d: *mut ffi::PyObject,
        key: &mut *mut ffi::PyObject,
        value: &mut *mut ffi::PyObject,
    ) -> bool {
        #[cfg(not(PyPy))]
        {
            // SAFETY: the caller's contract.
            unsafe { ffi::PyDict_Next(d, &mut self.pos, key, value) != 0 }
        }
        #[cfg(PyPy)]
        // SAFETY: the caller's contract; `keys` is our own list (a new
        // reference, released on drop), which keeps its items alive; the
        // value is borrowed from the dict, which holds it.
        unsafe {
            if self.keys.is_null() {
                self.keys = ffi::PyDict_Keys(d);
                if self.keys.is_null() {
                    ffi::PyErr_Clear();
                    self.changed = true;
                    return false;
                }
            }
            if self.pos >= ffi::PyList_Size(self.keys) {
                return false;
            }
            let k = ffi::PyList_GetItem(self.keys, self.pos);
            self.pos += 1;
            let v = ffi::PyDict_GetItemWithError(d, k);
            if v.is_null() {
                ffi::PyErr_Clear();
                self.changed = true;
                return false;
            }
            *key = k;
            *value = v;
            true
        }
    }

    /// Whether the iteration stopped at a key removed from the dict (never
    /// on CPython, whose `PyDict_Next` goes on over the changed table).
    #[inline(always)]
    pub fn changed(&self) -> bool {
        #[cfg(not(PyPy))]
        {
            false
        }
        #[cfg(PyPy)]
        {
            self.changed
        }
    }
}

#[cfg(PyPy)]
impl Drop for DictIter {
    fn drop(&mut self) {
        // SAFETY: `keys` is null or our own reference; the GIL is held
        // wherever the engine iterates a dict.
        unsafe { ffi::Py_XDECREF(self.keys) }
    }
}

/// What the memo keys an object by: its address on CPython (its identity,
/// as `id()`). On PyPy the C API may hand out a new proxy, at a new
/// address, for a `str`, `bytes`, `complex` or empty `frozenset` that
/// `id()` (and so `pickle`'s memo) sees as the same object (PyPy's identity
/// of these is their value): there the first object met with a given `id()`
/// stands for the later ones, and this table holds a strong reference to it
/// (so its id cannot be reused).
#[derive(Default)]
pub struct ValueIdentity {
    #[cfg(PyPy)]
    strs: *mut ffi::PyObject,
    #[cfg(PyPy)]
    bytes: *mut ffi::PyObject,
    #[cfg(PyPy)]
    complexes: *mut ffi::PyObject,
    #[cfg(PyPy)]
    frozensets: *mut ffi::PyObject,
}

impl ValueIdentity {
    /// The object standing for `obj` if one was recorded, else `obj`.
    ///
    /// # Safety
    /// GIL held; `obj` alive.
    #[inline(always)]
    pub unsafe fn lookup(&self, obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
        #[cfg(not(PyPy))]
        {
            obj
        }
        #[cfg(PyPy)]
        // SAFETY: the caller's contract; the tables are null or our dicts,
        // keyed by ints (`id()` runs no Python code); the result is borrowed
        // from the table, which keeps it.
        unsafe {
            let table = self.table_of(obj);
            if table.is_null() {
                return obj;
            }
            let id = ffi::PyObject_CallOneArg(pypy_types().builtin_id, obj);
            if id.is_null() {
                ffi::PyErr_Clear();
                return obj;
            }
            let found = ffi::PyDict_GetItemWithError(table, id);
            ffi::Py_DECREF(id);
            if found.is_null() {
                ffi::PyErr_Clear();
                return obj;
            }
            found
        }
    }

    /// The object standing for `obj`, recording `obj` if it is the first
    /// of its value.
    ///
    /// # Safety
    /// GIL held; `obj` alive.
    #[inline(always)]
    pub unsafe fn record(&mut self, obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
        #[cfg(not(PyPy))]
        {
            obj
        }
        #[cfg(PyPy)]
        // SAFETY: as in `lookup`; a new table is a new dict reference,
        // released by `clear`.
        unsafe {
            let slot = if ffi::PyUnicode_CheckExact(obj) != 0 {
                &mut self.strs
            } else if ffi::PyBytes_CheckExact(obj) != 0 {
                &mut self.bytes
            } else if ffi::PyComplex_CheckExact(obj) != 0 {
                &mut self.complexes
            } else if ffi::PyFrozenSet_CheckExact(obj) != 0 {
                &mut self.frozensets
            } else {
                return obj;
            };
            if slot.is_null() {
                *slot = ffi::PyDict_New();
                if slot.is_null() {
                    ffi::PyErr_Clear();
                    return obj;
                }
            }
            let id = ffi::PyObject_CallOneArg(pypy_types().builtin_id, obj);
            if id.is_null() {
                ffi::PyErr_Clear();
                return obj;
            }
            let found = ffi::PyDict_GetItemWithError(*slot, id);
            if found.is_null() && ffi::PyDict_SetItem(*slot, id, obj) != 0 {
                ffi::PyErr_Clear();
            }
            ffi::Py_DECREF(id);
            if found.is_null() {
                obj
            } else {
                found
            }
        }
    }

    /// Forgets every recorded object.
    ///
    /// # Safety
    /// GIL held (releasing the references may run finalizers).
    pub unsafe fn clear(&mut self) {
        #[cfg(PyPy)]
        // SAFETY: the caller's contract; each table is null or our own.
        unsafe {
            for table in [
                &mut self.strs,
                &mut self.bytes,
                &mut self.complexes,
                &mut self.frozensets,
            ] {
                let t = std::mem::replace(table, std::ptr::null_mut());
                ffi::Py_XDECREF(t);
            }
        }
    }

    #[cfg(PyPy)]
    unsafe fn table_of(&self, obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
        // SAFETY: the caller's contract.
        unsafe {
            if ffi::PyUnicode_CheckExact(obj) != 0 {
                self.strs
            } else if ffi::PyBytes_CheckExact(obj) != 0 {
                self.bytes
            } else if ffi::PyComplex_CheckExact(obj) != 0 {
                self.complexes
            } else if ffi::PyFrozenSet_CheckExact(obj) != 0 {
                self.frozensets
            } else {
                std::ptr::null_mut()
            }
        }
    }
}
