//! The reduce protocol: `__reduce_ex__` / `__reduce__` values and reducer
//! results turned into opcodes (`save_reduce` of `_pickle.c`).

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::opcodes::*;
use super::trail::Step;
use super::{borrowed, Engine};
use crate::errors::{fetch, repr, type_name};
use crate::py_compat::{self, FuncSlot};

impl<'s, 'py> Engine<'s, 'py> {
    /// `obj.__reduce_ex__(protocol)` (or `obj.__reduce__()`), then saves the
    /// result.
    ///
    /// # Safety
    /// `obj` must be alive for the whole call and `tp` its type.
    pub(super) unsafe fn save_by_reduce_ex(
        &mut self,
        obj: *mut ffi::PyObject,
        tp: *mut ffi::PyTypeObject,
    ) -> PyResult<()> {
        // SAFETY: `obj` and `tp` are alive (contract): `borrowed` takes references
        // for the calls.
        unsafe {
            let py = self.py;
            let object = borrowed(py, obj);
            let rv = match object.getattr_opt(super::name(py, self.c.s_reduce_ex))? {
                Some(reduce_ex) => reduce_ex.call1((self.proto,))?,
                None => match object.getattr_opt(super::name(py, self.c.s_reduce))? {
                    Some(reduce) => reduce.call0()?,
                    None => {
                        let name = borrowed(py, tp.cast()).getattr("__name__")?;
                        return Err(self.pickling_error(format!(
                            "can't pickle '{}' object: {}",
                            name,
                            repr(&object)
                        )));
                    }
                },
            };
            self.save_reduce_value(obj, &rv)
        }
    }

    /// Saves what a reducer returned for `obj`: a string names a global, a
    /// tuple is a reduction.
    ///
    /// # Safety
    /// `obj` must be alive for the whole call.
    pub(super) unsafe fn save_reduce_value(
        &mut self,
        obj: *mut ffi::PyObject,
        rv: &Bound<'py, PyAny>,
    ) -> PyResult<()> {
        // SAFETY: `obj` is alive (contract), as `save_global` and `save_reduce`
        // require; `rv` is held by the caller.
        unsafe {
            if rv.is_instance_of::<PyString>() {
                return self.save_global(obj, Some(rv));
            }
            if !rv.is_instance_of::<PyTuple>() {
                return Err(self.pickling_error("__reduce__ must return a string or tuple"));
            }
            self.save_reduce(rv.as_ptr(), Some(obj))
        }
    }

    /// Writes a reduction `(callable, args[, state[, listitems[, dictitems[,
    /// state_setter]]]])`; memoizes `obj` when given.
    ///
    /// # Safety
    /// `rv` must be alive for the whole call, and so must `obj` when given.
    pub(super) unsafe fn save_reduce(
        &mut self,
        rv: *mut ffi::PyObject,
        obj: Option<*mut ffi::PyObject>,
    ) -> PyResult<()> {
        // SAFETY: `rv` and `obj` are alive (contract); the callable read from `rv`
        // is one of its items, alive as long as `rv` is.
        unsafe {
            // A reduction by value (function, class, module, code) is written
            // in canonical order, whatever it contains (see `canonical`).
            let by_value = ffi::PyTuple_Check(rv) != 0
                && crate::py_compat::tuple_size(rv) >= 1
                && self.by_value_callable(crate::py_compat::tuple_item(rv, 0));
            self.canonical_scope(by_value, |engine| engine.save_reduce_tuple(rv, obj))
        }
    }

    /// # Safety
    /// `rv` must be alive for the whole call, and so must `obj` when given.
    unsafe fn save_reduce_tuple(
        &mut self,
        rv: *mut ffi::PyObject,
        obj: Option<*mut ffi::PyObject>,
    ) -> PyResult<()> {
        // SAFETY: `rv` and `obj` are alive (contract); every part of the
        // reduction is held by a `Bound` while it is saved.
        unsafe {
            let py = self.py;
            let rv = borrowed(py, rv).cast_into::<PyTuple>()?;
            let size = rv.len();
            if !(2..=6).contains(&size) {
                return Err(self.pickling_error(
                    "tuple returned by __reduce__ must contain 2 through 6 elements",
                ));
            }
            let item = |i: usize| -> PyResult<Option<Bound<'py, PyAny>>> {
                if i < size {
                    let v = rv.get_item(i)?;
                    Ok((!v.is_none()).then_some(v))
                } else {
                    Ok(None)
                }
            };
            let callable = rv.get_item(0)?;
            let args = rv.get_item(1)?;
            let state = item(2)?;
            let listitems = item(3)?;
            let dictitems = item(4)?;
            let state_setter = item(5)?;

            if !callable.is_callable() {
                return Err(self.pickling_error(
                    "first item of the tuple returned by __reduce__ must be callable",
                ));
            }
            let Ok(args) = args.cast_into::<PyTuple>() else {
                return Err(self.pickling_error(
                    "second item of the tuple returned by __reduce__ must be a tuple",
                ));
            };
            if let Some(li) = &listitems {
                if ffi::PyIter_Check(li.as_ptr()) == 0 {
                    return Err(self.pickling_error(format!(
                    "fourth element of the tuple returned by __reduce__ must be an iterator, not {}",
                    type_name(li)
                )));
                }
            }
            if let Some(di) = &dictitems {
                if ffi::PyIter_Check(di.as_ptr()) == 0 {
                    return Err(self.pickling_error(format!(
                    "fifth element of the tuple returned by __reduce__ must be an iterator, not {}",
                    type_name(di)
                )));
                }
            }
            if let Some(ss) = &state_setter {
                if !ss.is_callable() {
                    return Err(self.pickling_error(format!(
                    "sixth element of the tuple returned by __reduce__ must be a function, not {}",
                    type_name(ss)
                )));
                }
            }

            let (use_newobj, use_newobj_ex) = if self.proto >= 2 {
                self.newobj_kind(&callable)?
            } else {
                (false, false)
            };

            if use_newobj_ex {
                self.save_newobj_ex(&args, obj)?;
            } else if use_newobj {
                if args.is_empty() {
                    return Err(self.pickling_error("__newobj__ arglist is empty"));
                }
                let cls = args.get_item(0)?;
                if ffi::PyType_Check(cls.as_ptr()) == 0 {
                    return Err(self.pickling_error("args[0] from __newobj__ args is not a type"));
                }
                if let Some(o) = obj {
                    self.check_class(o, &cls, "args[0] from __newobj__ args has the wrong class")?;
                }
                self.save(cls.as_ptr(), false)
                    .map_err(|e| self.failed_at(Step::Callable, cls.as_ptr(), e))?;
                let rest = args.get_slice(1, args.len());
                self.save(rest.as_ptr(), false)
                    .map_err(|e| self.failed_at(Step::Args(1), rest.as_ptr(), e))?;
                self.out.byte(NEWOBJ);
            } else {
                self.save(callable.as_ptr(), false)
                    .map_err(|e| self.failed_at(Step::Callable, callable.as_ptr(), e))?;
                self.save(args.as_ptr(), false)
                    .map_err(|e| self.failed_at(Step::Args(0), args.as_ptr(), e))?;
                self.out.byte(REDUCE);
            }

            if let Some(o) = obj {
                if self.memoize_reduced(o)? {
                    return Ok(());
                }
            }
            if let Some(li) = listitems {
                self.batch_list_iter(&li)
                    .map_err(|e| self.failed_at(Step::ListItems, std::ptr::null_mut(), e))?;
            }
            if let Some(di) = dictitems {
                self.batch_dict_iter(&di)
                    .map_err(|e| self.failed_at(Step::DictItems, std::ptr::null_mut(), e))?;
            }
            if let Some(state) = state {
                match state_setter {
                    None => {
                        self.save(state.as_ptr(), false)
                            .map_err(|e| self.failed_at(Step::State, state.as_ptr(), e))?;
                        self.out.byte(BUILD);
                    }
                    Some(setter) => {
                        // state_setter(obj, state), its result discarded.
                        let o = obj.unwrap_or(ffi::Py_None());
                        self.save(setter.as_ptr(), false)?;
                        self.save(o, false)?;
                        self.save(state.as_ptr(), false)
                            .map_err(|e| self.failed_at(Step::State, state.as_ptr(), e))?;
                        self.out.bytes(&[TUPLE2, REDUCE, POP]);
                    }
                }
            }
            Ok(())
        }
    }

    /// Memoizes `obj`, just rebuilt on the stack from its reduction. When
    /// saving the reduction's arguments memoized it already (a recursive
    /// object), drops the new one and fetches the memoized one instead, and
    /// answers true: nothing more is to be written for it.
    ///
    /// # Safety
    /// `obj` must be alive.
    pub(super) unsafe fn memoize_reduced(&mut self, obj: *mut ffi::PyObject) -> PyResult<bool> {
        // SAFETY: `obj` is alive (contract), as `memo_put` requires.
        unsafe {
            if let Some(idx) = self.memo.get(obj) {
                self.out.byte(POP);
                self.memo_get(idx)?;
                return Ok(true);
            }
            self.memo_put(obj, false)?;
            Ok(false)
        }
    }

    /// Whether `callable` is named `__newobj__` or `__newobj_ex__`.
    fn newobj_kind(&mut self, callable: &Bound<'py, PyAny>) -> PyResult<(bool, bool)> {
        // SAFETY: each struct is read after its exact type was checked: a function
        // holds its `str` name, a builtin function's `m_ml` is null or its static
        // method definition (a C string name), a heap type holds its `ht_name`, a
        // static type's `tp_name` is a C string.
        unsafe {
            // Functions and builtin functions: their `__name__` is read from
            // the object itself (what the attribute getters return).
            let tp = ffi::Py_TYPE(callable.as_ptr());
            let direct: Option<Bound<'py, PyAny>> =
                if tp == std::ptr::addr_of_mut!(ffi::PyFunction_Type) {
                    py_compat::function_slot(callable.as_ptr(), FuncSlot::Name)
                        .map(|name| borrowed(self.py, name))
                } else if tp == std::ptr::addr_of_mut!(ffi::PyCFunction_Type) {
                    match py_compat::cfunction_fields(callable.as_ptr()) {
                        None => None,
                        Some((name, _)) if name.is_null() => None,
                        Some((name, _)) => {
                            let name = std::ffi::CStr::from_ptr(name);
                            let name = name.to_bytes();
                            return Ok((name == b"__newobj__", name == b"__newobj_ex__"));
                        }
                    }
                } else {
                    None
                };
            if tp == std::ptr::addr_of_mut!(ffi::PyType_Type) && py_compat::LAYOUT_READS {
                // A class whose metaclass is `type`: `__name__` is the heap
                // type's name object, or the last component of `tp_name`.
                let t = callable.as_ptr() as *mut ffi::PyTypeObject;
                if ((*t).tp_flags & ffi::Py_TPFLAGS_HEAPTYPE) != 0 {
                    let name = py_compat::heap_type_name(t).unwrap_or(std::ptr::null_mut());
                    if !name.is_null() && ffi::PyUnicode_CheckExact(name) != 0 {
                        let name = borrowed(self.py, name).cast_into::<PyString>()?;
                        let name = name.to_cow()?;
                        return Ok((name == "__newobj__", name == "__newobj_ex__"));
                    }
                } else if !(*t).tp_name.is_null() {
                    let full = std::ffi::CStr::from_ptr((*t).tp_name).to_bytes();
                    let short = match full.iter().rposition(|&b| b == b'.') {
                        Some(i) => &full[i + 1..],
                        None => full,
                    };
                    return Ok((short == b"__newobj__", short == b"__newobj_ex__"));
                }
            }
            if let Some(name) = direct {
                let name = name.cast_into::<PyString>()?;
                let name = name.to_cow()?;
                return Ok((name == "__newobj__", name == "__newobj_ex__"));
            }
            let name = callable.getattr_opt(super::name(self.py, self.c.s_name))?;
            let Some(name) = name else {
                return Ok((false, false));
            };
            let Ok(name) = name.cast_into::<PyString>() else {
                return Ok((false, false));
            };
            let name = name.to_cow()?;
            if name == "__newobj_ex__" {
                Ok((false, true))
            } else if name == "__newobj__" {
                Ok((true, false))
            } else {
                Ok((false, false))
            }
        }
    }

    /// `obj.__class__ is cls`, or a PicklingError with `msg`.
    ///
    /// # Safety
    /// `obj` must be alive.
    unsafe fn check_class(
        &mut self,
        obj: *mut ffi::PyObject,
        cls: &Bound<'py, PyAny>,
        msg: &str,
    ) -> PyResult<()> {
        // SAFETY: `obj` is alive (contract): `borrowed` takes a reference.
        unsafe {
            let actual = borrowed(self.py, obj).getattr(super::name(self.py, self.c.s_class))?;
            if !actual.is(cls) {
                return Err(self.pickling_error(msg));
            }
            Ok(())
        }
    }

    /// # Safety
    /// `obj`, when given, must be alive for the whole call.
    unsafe fn save_newobj_ex(
        &mut self,
        args: &Bound<'py, PyTuple>,
        obj: Option<*mut ffi::PyObject>,
    ) -> PyResult<()> {
        // SAFETY: `obj` is alive when given (contract); the other objects saved are
        // held by `args` and its items.
        unsafe {
            let py = self.py;
            if args.len() != 3 {
                return Err(self.pickling_error(format!(
                    "length of the NEWOBJ_EX argument tuple must be exactly 3, not {}",
                    args.len()
                )));
            }
            let cls = args.get_item(0)?;
            if ffi::PyType_Check(cls.as_ptr()) == 0 {
                return Err(self.pickling_error(format!(
                    "first item from NEWOBJ_EX argument tuple must be a class, not {}",
                    type_name(&cls)
                )));
            }
            if let Some(o) = obj {
                self.check_class(
                    o,
                    &cls,
                    "args[0] from __newobj_ex__ args has the wrong class",
                )?;
            }
            let cargs = args.get_item(1)?;
            if !cargs.is_instance_of::<PyTuple>() {
                return Err(self.pickling_error(format!(
                    "second item from NEWOBJ_EX argument tuple must be a tuple, not {}",
                    type_name(&cargs)
                )));
            }
            let kwargs = args.get_item(2)?;
            if !kwargs.is_instance_of::<PyDict>() {
                return Err(self.pickling_error(format!(
                    "third item from NEWOBJ_EX argument tuple must be a dict, not {}",
                    type_name(&kwargs)
                )));
            }
            if self.proto >= 4 {
                self.save(cls.as_ptr(), false)
                    .map_err(|e| self.failed_at(Step::Callable, cls.as_ptr(), e))?;
                self.save(cargs.as_ptr(), false)
                    .map_err(|e| self.failed_at(Step::Args(0), cargs.as_ptr(), e))?;
                self.save(kwargs.as_ptr(), false)
                    .map_err(|e| self.failed_at(Step::Args(0), kwargs.as_ptr(), e))?;
                self.out.byte(NEWOBJ_EX);
            } else {
                // functools.partial(cls.__new__, cls, *args, **kwargs)()
                let new = cls.getattr(super::name(py, self.c.s_new))?;
                let mut items: Vec<Bound<'py, PyAny>> = vec![new, cls.clone()];
                items.extend(cargs.cast::<PyTuple>()?.iter());
                let pargs = PyTuple::new(py, items)?;
                let partial =
                    borrowed(py, self.c.partial).call(pargs, Some(kwargs.cast::<PyDict>()?))?;
                self.save(partial.as_ptr(), false)?;
                self.save(self.c.empty_tuple, false)?;
                self.out.byte(REDUCE);
            }
            Ok(())
        }
    }

    /// Items of a reduction's listitems iterator: APPEND / MARK..APPENDS.
    fn batch_list_iter(&mut self, iter: &Bound<'py, PyAny>) -> PyResult<()> {
        // SAFETY: the items come from the iterator as new references, held while
        // they are saved.
        unsafe {
            let next = |engine: &mut Self| -> PyResult<Option<Bound<'py, PyAny>>> {
                let item = ffi::PyIter_Next(iter.as_ptr());
                if item.is_null() {
                    if !ffi::PyErr_Occurred().is_null() {
                        return Err(fetch(engine.py));
                    }
                    return Ok(None);
                }
                Ok(Some(Bound::from_owned_ptr(engine.py, item)))
            };
            if !self.bin {
                while let Some(item) = next(self)? {
                    self.save(item.as_ptr(), false)?;
                    self.out.byte(APPEND);
                }
                return Ok(());
            }
            loop {
                let Some(first) = next(self)? else { break };
                let Some(mut item) = next(self)? else {
                    self.save(first.as_ptr(), false)?;
                    self.out.byte(APPEND);
                    break;
                };
                self.out.byte(MARK);
                self.save(first.as_ptr(), false)?;
                let mut n = 1;
                loop {
                    self.save(item.as_ptr(), false)?;
                    n += 1;
                    if n == BATCHSIZE {
                        break;
                    }
                    match next(self)? {
                        Some(i) => item = i,
                        None => break,
                    }
                }
                self.out.byte(APPENDS);
                if n != BATCHSIZE {
                    break;
                }
            }
            Ok(())
        }
    }

    /// Items of a reduction's dictitems iterator (2-tuples): SETITEM /
    /// MARK..SETITEMS.
    fn batch_dict_iter(&mut self, iter: &Bound<'py, PyAny>) -> PyResult<()> {
        // SAFETY: the pairs come from the iterator as new references, and each key
        // and value is held by a `Bound` while it is saved.
        unsafe {
            let next = |engine: &mut Self| -> PyResult<Option<Bound<'py, PyTuple>>> {
                let item = ffi::PyIter_Next(iter.as_ptr());
                if item.is_null() {
                    if !ffi::PyErr_Occurred().is_null() {
                        return Err(fetch(engine.py));
                    }
                    return Ok(None);
                }
                let item = Bound::from_owned_ptr(engine.py, item);
                match item.cast_into::<PyTuple>() {
                    Ok(t) if t.len() == 2 => Ok(Some(t)),
                    _ => Err(PyTypeError::new_err(
                        "dict items iterator must return 2-tuples",
                    )),
                }
            };
            let save_pair = |engine: &mut Self, pair: &Bound<'py, PyTuple>| -> PyResult<()> {
                engine.save(pair.get_item(0)?.as_ptr(), false)?;
                engine.save(pair.get_item(1)?.as_ptr(), false)
            };
            if !self.bin {
                while let Some(pair) = next(self)? {
                    save_pair(self, &pair)?;
                    self.out.byte(SETITEM);
                }
                return Ok(());
            }
            loop {
                let Some(first) = next(self)? else { break };
                let Some(mut pair) = next(self)? else {
                    save_pair(self, &first)?;
                    self.out.byte(SETITEM);
                    break;
                };
                self.out.byte(MARK);
                save_pair(self, &first)?;
                let mut n = 1;
                loop {
                    save_pair(self, &pair)?;
                    n += 1;
                    if n == BATCHSIZE {
                        break;
                    }
                    match next(self)? {
                        Some(p) => pair = p,
                        None => break,
                    }
                }
                self.out.byte(SETITEMS);
                if n != BATCHSIZE {
                    break;
                }
            }
            Ok(())
        }
    }
}
