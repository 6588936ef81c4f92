//! Objects pickled by reference: `module` + qualified name (`save_global`),
//! and the singleton types.

use pyo3::exceptions::PyAttributeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use super::opcodes::*;
use super::{borrowed, Engine};
use crate::errors::{fetch, repr};

use crate::lookup::Located;

/// The namespace of the `builtins` module (the module's dict lives as long
/// as the interpreter).
fn builtins_dict(py: Python<'_>) -> PyResult<*mut ffi::PyObject> {
    static DICT: std::sync::OnceLock<Py<PyAny>> = std::sync::OnceLock::new();
    if let Some(d) = DICT.get() {
        return Ok(d.as_ptr());
    }
    let dict = py.import("builtins")?.dict().into_any().unbind();
    Ok(DICT.get_or_init(|| dict).as_ptr())
}

impl<'s, 'py> Engine<'s, 'py> {
    /// cloudpickle's own reconstructors (`_make_function`, `subimport`...,
    /// named in every payload by value) once saved in this state: the same
    /// opcodes as `save_global` writes for them, without looking them up
    /// again (see `lookup::known_function`). Returns false when it does not
    /// apply: another protocol, copyreg extension codes, a dispatch table
    /// entry for their type, or modules registered by value (which could
    /// include cloudpickle itself).
    ///
    /// # Safety
    /// GIL held; `obj` alive, not in the memo.
    #[inline]
    pub(super) unsafe fn save_own_global(
        &mut self,
        obj: *mut ffi::PyObject,
        tp: *mut ffi::PyTypeObject,
    ) -> PyResult<bool> {
        // SAFETY: `obj` and `tp` are alive (contract); the two names are held by
        // the type cache, and the extension registry by the cache.
        unsafe {
            let Some(i) = self
                .types
                .own_globals
                .iter()
                .position(|(o, _, _)| o.as_ptr() == obj)
            else {
                return Ok(false);
            };
            if self.proto < 4
                || ffi::PyDict_Size(self.c.extension_registry) != 0
                || !crate::by_value::registry_is_empty(self.py)
                || self.dispatch_lookup(tp)?.is_some()
            {
                return Ok(false);
            }
            // The cache holds references to both strings.
            let module_name = self.types.own_globals[i].1.as_ptr();
            let global_name = self.types.own_globals[i].2.as_ptr();
            self.save(module_name, false)?;
            self.save(global_name, false)?;
            self.out.byte(STACK_GLOBAL);
            self.memo_put(obj, false)?;
            Ok(true)
        }
    }

    /// A static type of `builtins` (`object`, `property`, `int`...) once
    /// saved in this state: the opcodes `save_global` writes for it, with
    /// the names it was saved under, as long as `builtins` still holds it
    /// under that name (and protocol, extension codes and the by-value
    /// registry do not ask for the full path). Returns false when it does
    /// not apply.
    ///
    /// # Safety
    /// GIL held; `obj` alive, a type whose type is `type`, not in the memo.
    pub(super) unsafe fn save_builtin_type(&mut self, obj: *mut ffi::PyObject) -> PyResult<bool> {
        // SAFETY: `obj` is alive (contract); the two names are held by the type
        // cache and `builtins`' dict lives as long as the process. Only the
        // address the dict lookup returns is used (compared with `obj`).
        unsafe {
            let Some((_, module_name, global_name)) = self.types.builtin_types.get(&(obj as usize))
            else {
                return Ok(false);
            };
            // The cache holds references to both strings.
            let (module_name, global_name) = (module_name.as_ptr(), global_name.as_ptr());
            if self.proto < 4
                || ffi::PyDict_Size(self.c.extension_registry) != 0
                || !crate::by_value::registry_is_empty(self.py)
            {
                return Ok(false);
            }
            let builtins = builtins_dict(self.py)?;
            if ffi::PyDict_GetItemWithError(builtins, global_name) != obj {
                ffi::PyErr_Clear();
                return Ok(false);
            }
            self.save(module_name, false)?;
            self.save(global_name, false)?;
            self.out.byte(STACK_GLOBAL);
            self.memo_put(obj, false)?;
            Ok(true)
        }
    }

    /// # Safety
    /// `obj` must be an alive type object.
    pub(super) unsafe fn save_type(&mut self, obj: *mut ffi::PyObject) -> PyResult<()> {
        // SAFETY: `obj` is an alive type (contract); the singletons are immortal.
        unsafe {
            let singleton = crate::reduce::class_rule::singleton_of_type(obj);
            match singleton {
                Some(value) => {
                    let py = self.py;
                    let args = PyTuple::new(py, [borrowed(py, value)])?;
                    let rv = (
                        borrowed(py, std::ptr::addr_of_mut!(ffi::PyType_Type).cast()),
                        args,
                    )
                        .into_pyobject(py)?;
                    self.save_reduce(rv.as_ptr(), Some(obj))
                }
                None => self.save_global(obj, None),
            }
        }
    }

    /// Pickles `obj` as a reference to `module.qualname`, after checking
    /// that importing finds this very object, as pickle does.
    ///
    /// # Safety
    /// `obj` must be alive for the whole call.
    pub(super) unsafe fn save_global(
        &mut self,
        obj: *mut ffi::PyObject,
        name: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<()> {
        // SAFETY: `obj` is alive (contract) and held by `object`; the names and
        // objects saved are held by `located`.
        unsafe {
            let py = self.py;
            let object = borrowed(py, obj);
            let known = match name {
                None => crate::lookup::known_function(&object),
                Some(_) => None,
            };
            let located = match known {
                Some(located) => located,
                None => {
                    let global_name: Bound<'py, PyAny> = match name {
                        Some(n) => n.clone(),
                        None => match object.getattr_opt(super::name(py, self.c.s_qualname))? {
                            Some(q) => q,
                            None => object.getattr(super::name(py, self.c.s_name))?,
                        },
                    };
                    let global_name = global_name.cast_into::<PyString>().map_err(|e| {
                        self.pickling_error(format!(
                            "Can't pickle {}: its name is not a string ({})",
                            repr(&object),
                            e
                        ))
                    })?;
                    let located = self.locate(&object, &global_name)?;
                    if name.is_none() {
                        crate::lookup::remember_function(&object, &located);
                    }
                    located
                }
            };
            let Located {
                module_name,
                global_name,
                path,
                module,
                parent,
            } = located;
            let last = path.get_item(path.len() - 1)?;

            if self.proto >= 2 && ffi::PyDict_Size(self.c.extension_registry) > 0 {
                let key = PyTuple::new(py, [module_name.as_any(), global_name.as_any()])?;
                let code = ffi::PyDict_GetItemWithError(self.c.extension_registry, key.as_ptr());
                if !code.is_null() {
                    let code = borrowed(py, code);
                    let code: i64 = code.extract().map_err(|_| {
                        self.pickling_error(format!(
                            "Can't pickle {}: extension code {} isn't an integer",
                            repr(&object),
                            repr(&code)
                        ))
                    })?;
                    if code <= 0 || code > 0x7fff_ffff {
                        return Err(self.pickling_error(format!(
                            "Can't pickle {}: extension code {} is out of range",
                            repr(&object),
                            code
                        )));
                    }
                    if code <= 0xff {
                        self.out.op_u8(EXT1, code as u8);
                    } else if code <= 0xffff {
                        let b = (code as u16).to_le_bytes();
                        self.out.bytes(&[EXT2, b[0], b[1]]);
                    } else {
                        self.out.op_u32(EXT4, code as u32);
                    }
                    return Ok(());
                } else if !ffi::PyErr_Occurred().is_null() {
                    return Err(fetch(py));
                }
            }

            let global_name: Bound<'py, PyString> = if parent.is(&module) {
                last.clone().cast_into::<PyString>()?
            } else {
                global_name
            };
            if self.proto >= 4
                && name.is_none()
                && self.types.own_globals.len() < 16
                && crate::lookup::is_reconstructor_module(py, &module_name)
                && !self
                    .types
                    .own_globals
                    .iter()
                    .any(|(o, _, _)| o.as_ptr() == obj)
            {
                self.types.own_globals.push((
                    object.clone().unbind(),
                    module_name.clone().unbind(),
                    global_name.clone().unbind(),
                ));
            }
            if self.proto >= 4
                && name.is_none()
                && ffi::PyType_Check(obj) != 0
                && (*obj.cast::<ffi::PyTypeObject>()).tp_flags & ffi::Py_TPFLAGS_HEAPTYPE == 0
                && self.types.builtin_types.len() < 256
                && module_name.to_cow()? == "builtins"
                && parent.is(&module)
            {
                self.types.builtin_types.insert(
                    obj as usize,
                    (
                        object.clone().unbind(),
                        module_name.clone().unbind(),
                        global_name.clone().unbind(),
                    ),
                );
            }
            if self.proto >= 4 {
                self.save(module_name.as_ptr(), false)?;
                self.save(global_name.as_ptr(), false)?;
                self.out.byte(STACK_GLOBAL);
            } else if self.c.py_minor >= 13 && path.len() > 1 {
                // Python 3.13+: getattr(getattr(<module.first>, a), b)...
                let getattr = self.c.builtins_getattr;
                for _ in 1..path.len() {
                    self.save(getattr, false)?;
                    if self.proto < 2 {
                        self.out.byte(MARK);
                    }
                }
                let first = path.get_item(0)?.cast_into::<PyString>()?;
                self.save_toplevel_by_name(module_name, first)?;
                for attr in path.iter().skip(1) {
                    self.save(attr.as_ptr(), false)?;
                    self.out.byte(if self.proto < 2 { TUPLE } else { TUPLE2 });
                    self.out.byte(REDUCE);
                }
            } else if !parent.is(&module) {
                // A nested name: getattr(parent, last) rebuilds it.
                let args = PyTuple::new(py, [parent, last])?;
                let rv = (borrowed(py, self.c.builtins_getattr), args).into_pyobject(py)?;
                self.save_reduce(rv.as_ptr(), None)?;
            } else {
                self.save_toplevel_by_name(module_name, global_name)?;
            }
            self.memo_put(obj, false)
        }
    }

    /// GLOBAL with a module name and a top-level name (Python 2 names for
    /// protocols < 3).
    fn save_toplevel_by_name(
        &mut self,
        module_name: Bound<'py, PyString>,
        name: Bound<'py, PyString>,
    ) -> PyResult<()> {
        let (mut module_name, mut name) = (module_name, name);
        if self.proto < 3 {
            (module_name, name) = self.fix_imports(module_name, name)?;
        }
        let m = self.encode_identifier(&module_name)?;
        let n = self.encode_identifier(&name)?;
        self.out.byte(GLOBAL);
        self.out.bytes(&m);
        self.out.byte(b'\n');
        self.out.bytes(&n);
        self.out.byte(b'\n');
        Ok(())
    }

    /// Module names and qualified names in GLOBAL: UTF-8 for protocol 3,
    /// ASCII (for Python 2) below.
    fn encode_identifier(&mut self, s: &Bound<'py, PyString>) -> PyResult<Vec<u8>> {
        let text = s.to_cow()?;
        if self.proto != 3 && !text.is_ascii() {
            return Err(self.pickling_error(format!(
                "can't pickle module identifier '{}' using pickle protocol {}",
                text, self.proto
            )));
        }
        Ok(text.as_bytes().to_vec())
    }

    /// Python 3 names mapped back to Python 2 ones (`_compat_pickle`), for
    /// protocols < 3.
    fn fix_imports(
        &mut self,
        module_name: Bound<'py, PyString>,
        global_name: Bound<'py, PyString>,
    ) -> PyResult<(Bound<'py, PyString>, Bound<'py, PyString>)> {
        // SAFETY: the cache holds `_compat_pickle`'s two mappings for the life of
        // the process.
        unsafe {
            let py = self.py;
            let key = PyTuple::new(py, [module_name.as_any(), global_name.as_any()])?;
            let names = borrowed(py, self.c.name_mapping_3to2).cast_into::<PyDict>()?;
            if let Some(item) = names.get_item(&key)? {
                let pair = item
                    .cast_into::<PyTuple>()
                    .ok()
                    .filter(|t| t.len() == 2)
                    .ok_or_else(|| {
                        pyo3::exceptions::PyRuntimeError::new_err(
                            "_compat_pickle.REVERSE_NAME_MAPPING values should be 2-tuples",
                        )
                    })?;
                let m = pair.get_item(0)?.cast_into::<PyString>()?;
                let n = pair.get_item(1)?.cast_into::<PyString>()?;
                return Ok((m, n));
            }
            let imports = borrowed(py, self.c.import_mapping_3to2).cast_into::<PyDict>()?;
            if let Some(item) = imports.get_item(&module_name)? {
                let m = item.cast_into::<PyString>().map_err(|_| {
                    pyo3::exceptions::PyRuntimeError::new_err(
                        "_compat_pickle.REVERSE_IMPORT_MAPPING values should be strings",
                    )
                })?;
                return Ok((m, global_name));
            }
            Ok((module_name, global_name))
        }
    }

    /// Finds the module of `obj` and checks that `module.<dotted name>` is
    /// `obj`, as `_pickle.c` does (same errors).
    fn locate(
        &mut self,
        object: &Bound<'py, PyAny>,
        global_name: &Bound<'py, PyString>,
    ) -> PyResult<Located<'py>> {
        // SAFETY: `PyImport_Import` is given a `str` we hold; its result is a new
        // reference (or null with an exception set).
        unsafe {
            let py = self.py;
            let path = crate::lookup::dotted_path(global_name)?;
            for part in path.iter() {
                if part.cast::<PyString>()?.to_cow()? == "<locals>" {
                    return Err(PyAttributeError::new_err(format!(
                        "Can't pickle local object {}",
                        repr(global_name.as_any())
                    )));
                }
            }
            let module_name = self.whichmodule(object, &path)?;
            let module = match self.imported_module(&module_name) {
                Some(m) => m,
                None => {
                    let imported = ffi::PyImport_Import(module_name.as_ptr());
                    if imported.is_null() {
                        let cause = fetch(py);
                        let err = self.pickling_error(format!(
                            "Can't pickle {}: import of module {} failed",
                            repr(object),
                            repr(module_name.as_any())
                        ));
                        err.set_cause(py, Some(cause));
                        return Err(err);
                    }
                    drop(Bound::from_owned_ptr(py, imported));
                    match self.imported_module(&module_name) {
                        Some(m) => m,
                        None => {
                            return Err(self.pickling_error(format!(
                                "Can't pickle {}: import of module {} failed",
                                repr(object),
                                repr(module_name.as_any())
                            )))
                        }
                    }
                }
            };
            let (found, parent) = match self.deep_getattr(&module, &path) {
                Ok(v) => v,
                Err(_) => {
                    return Err(self.pickling_error(format!(
                        "Can't pickle {}: attribute lookup {} on {} failed",
                        repr(object),
                        global_name,
                        module_name
                    )));
                }
            };
            if !found.is(object) {
                return Err(self.pickling_error(format!(
                    "Can't pickle {}: it's not the same object as {}.{}",
                    repr(object),
                    module_name,
                    global_name
                )));
            }
            Ok(Located {
                module_name,
                global_name: global_name.clone(),
                path,
                module,
                parent,
            })
        }
    }

    /// The module named by `obj.__module__`, or else the first module in
    /// `sys.modules` holding `obj` under its dotted path, or `__main__`.
    fn whichmodule(
        &mut self,
        object: &Bound<'py, PyAny>,
        path: &Bound<'py, PyList>,
    ) -> PyResult<Bound<'py, PyString>> {
        // SAFETY: `PyImport_GetModuleDict` returns `sys.modules`, which `borrowed`
        // takes a reference to; the cached `__main__` string lives as long as the
        // process.
        unsafe {
            let py = self.py;
            if let Some(m) = object.getattr_opt(super::name(py, self.c.s_module))? {
                if !m.is_none() {
                    return m.cast_into::<PyString>().map_err(|_| {
                        self.pickling_error(format!(
                            "Can't pickle {}: its __module__ is not a string",
                            repr(object)
                        ))
                    });
                }
            }
            let dotted = path
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(".");
            let dotted = PyString::new(py, &dotted);
            let search = crate::which_module::Search::Pickle;
            match crate::which_module::search_modules(object, &dotted, path, search)? {
                Some(found) => Ok(found),
                None => Ok(intern(py, self.c.s_main).cast_into::<PyString>()?),
            }
        }
    }

    fn imported_module(&mut self, name: &Bound<'py, PyString>) -> Option<Bound<'py, PyAny>> {
        crate::lookup::imported_module(self.py, name)
    }

    fn deep_getattr(
        &mut self,
        module: &Bound<'py, PyAny>,
        path: &Bound<'py, PyList>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        crate::lookup::deep_getattr(module, path)
    }
}

/// One of the cache's interned strings as a `Bound`.
///
/// # Safety
/// `s` must be one of the cache's strings.
unsafe fn intern<'py>(py: Python<'py>, s: *mut ffi::PyObject) -> Bound<'py, PyAny> {
    // SAFETY: the cache's strings are strong references kept for the life
    // of the process (contract).
    unsafe { borrowed(py, s) }
}
