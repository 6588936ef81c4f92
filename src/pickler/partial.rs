//! `functools.partial` objects (the exact type), written without calling
//! their `__reduce__`: the same opcodes and memo indices as `save_reduce`
//! writes for `(partial, (func,), (func, args, keywords, __dict__ or None))`,
//! without building those tuples when nobody can see them.

use pyo3::ffi;
use pyo3::prelude::*;

use super::opcodes::*;
use super::{borrowed, trail, Engine};

impl<'s, 'py> Engine<'s, 'py> {
    /// `functools.partial` (the exact type): the value its C `__reduce__`
    /// returns, `(partial, (func,), (func, args, keywords, __dict__ or
    /// None))`, built without calling it.
    ///
    /// # Safety
    /// `obj` must be an alive exact `functools.partial`, and `dictoffset`
    /// its type's (positive) `tp_dictoffset`.
    pub(super) unsafe fn save_partial(
        &mut self,
        obj: *mut ffi::PyObject,
        dictoffset: ffi::Py_ssize_t,
        transient: bool,
    ) -> PyResult<()> {
        // SAFETY: `obj` is an alive exact `functools.partial` and `dictoffset` its
        // type's dict offset (contract): the member and dict offsets are inside the
        // instance, and each pointer read there becomes a reference at once.
        unsafe {
            let py = self.py;
            let (func, args, keywords) = match partial_member_offsets((*obj).ob_type) {
                // SAFETY: offsets of object members (T_OBJECT, never null for a
                // constructed partial) declared by the type itself, read from
                // an instance of that exact type.
                Some([f, a, k]) => {
                    let at = |offset: isize| {
                        let p = *((obj as *mut u8).offset(offset) as *mut *mut ffi::PyObject);
                        if p.is_null() {
                            py.None().into_bound(py)
                        } else {
                            borrowed(py, p)
                        }
                    };
                    (at(f), at(a), at(k))
                }
                None => {
                    let object = borrowed(py, obj);
                    (
                        object.getattr(pyo3::intern!(py, "func"))?,
                        object.getattr(pyo3::intern!(py, "args"))?,
                        object.getattr(pyo3::intern!(py, "keywords"))?,
                    )
                }
            };
            // The instance dict slot as partial_reduce reads it: None when it
            // was never created (reading `__dict__` would create it).
            // SAFETY: a positive tp_dictoffset is the offset of the dict
            // pointer inside every instance of this (exact) type.
            let slot = *((obj as *mut u8).offset(dictoffset) as *mut *mut ffi::PyObject);
            let dict = if slot.is_null() {
                py.None().into_bound(py)
            } else {
                borrowed(py, slot)
            };
            if self.proto < 2 || !self.private_temporaries || self.persistent_id.is_some() {
                let tp = borrowed(py, self.c.partial);
                let args1 = pyo3::types::PyTuple::new(py, [&func])?;
                let state = pyo3::types::PyTuple::new(py, [func, args, keywords, dict])?;
                crate::py::untrack(&args1);
                crate::py::untrack(&state);
                let rv = pyo3::types::PyTuple::new(py, [tp, args1.into_any(), state.into_any()])?;
                crate::py::untrack(&rv);
                return self.save_reduce(rv.as_ptr(), Some(obj));
            }
            self.enter()?;
            let r = self.write_partial(obj, [&func, &args, &keywords, &dict], transient);
            self.leave();
            r
        }
    }

    /// What `save_reduce` writes for the reduction of `save_partial`, with
    /// the two tuples it would have built (`(func,)` and the state) only
    /// written: the same opcodes, and the same memo indices, but no tuple
    /// objects and no memo entries for them (no one else can refer to
    /// tuples that do not exist). Protocol 2 and later.
    ///
    /// # Safety
    /// `obj` must be the alive partial whose state is `state`.
    unsafe fn write_partial(
        &mut self,
        obj: *mut ffi::PyObject,
        state: [&Bound<'py, PyAny>; 4],
        transient: bool,
    ) -> PyResult<()> {
        // SAFETY: `obj` is alive (contract); everything else saved is held by
        // `state` or the cache.
        unsafe {
            let py = self.py;
            let func = state[0];
            let tp: *mut ffi::PyObject = self.c.partial.cast();
            self.save(tp, false)
                .map_err(|e| self.failed_at(trail::Step::Callable, tp, e))?;
            // The arguments, (func,).
            self.boundary()?;
            if let Err(e) = self.save(func.as_ptr(), false) {
                let e = self.failed_at(trail::Step::Item(0), func.as_ptr(), e);
                let args1 = pyo3::types::PyTuple::new(py, [func])?;
                return Err(self.failed_at(trail::Step::Args(0), args1.as_ptr(), e));
            }
            self.out.byte(TUPLE1);
            self.memo_skip()?;
            self.out.byte(REDUCE);
            if let Some(idx) = self.memo.get(obj) {
                // Recursive: saving func memoized the partial already.
                self.out.byte(POP);
                return self.memo_get(idx);
            }
            self.memo_put(obj, transient)?;
            // The state, (func, args, keywords, __dict__ or None). An args
            // tuple or keywords dict that only the partial holds is not in the
            // memo table.
            self.boundary()?;
            self.out.byte(MARK);
            for (i, item) in state.iter().enumerate() {
                let t = (i == 1 || i == 2) && ffi::Py_REFCNT(item.as_ptr()) == 1;
                if let Err(e) = self.save(item.as_ptr(), t) {
                    let e = self.failed_at(trail::Step::Item(i as isize), item.as_ptr(), e);
                    let whole = pyo3::types::PyTuple::new(py, state)?;
                    return Err(self.failed_at(trail::Step::State, whole.as_ptr(), e));
                }
            }
            self.out.byte(TUPLE);
            self.memo_skip()?;
            self.out.byte(BUILD);
            Ok(())
        }
    }
}

/// Offsets of the `func`, `args` and `keywords` members of
/// `functools.partial` instances, from the type's own member table (looked
/// up once; None if the type does not declare them as object members).
///
/// # Safety
/// GIL held; `tp` is the `functools.partial` type.
unsafe fn partial_member_offsets(tp: *mut ffi::PyTypeObject) -> Option<[isize; 3]> {
    // SAFETY: `tp` is the partial type (contract): its member table is a static
    // array ended by an entry with a null name, whose names are C strings.
    unsafe {
        static OFFSETS: std::sync::OnceLock<Option<[isize; 3]>> = std::sync::OnceLock::new();
        *OFFSETS.get_or_init(|| {
            let mut found = [None; 3];
            let mut member = (*tp).tp_members;
            while !member.is_null() && !(*member).name.is_null() {
                let name = std::ffi::CStr::from_ptr((*member).name).to_bytes();
                let slot = match name {
                    b"func" => 0,
                    b"args" => 1,
                    b"keywords" => 2,
                    _ => {
                        member = member.add(1);
                        continue;
                    }
                };
                // T_OBJECT (6, null reads as None) or T_OBJECT_EX.
                const T_OBJECT: std::os::raw::c_int = 6;
                if (*member).type_code == T_OBJECT || (*member).type_code == ffi::Py_T_OBJECT_EX {
                    found[slot] = Some((*member).offset);
                }
                member = member.add(1);
            }
            Some([found[0]?, found[1]?, found[2]?])
        })
    }
}
