//! Protocol 5 out-of-band buffers (`pickle.PickleBuffer`).

use pyo3::ffi;
use pyo3::prelude::*;

use super::opcodes::*;
use super::Engine;
use crate::errors::fetch;
use crate::py_compat::PickleBufferView;

impl<'s, 'py> Engine<'s, 'py> {
    /// # Safety
    /// `obj` must be an alive `pickle.PickleBuffer`.
    pub(super) unsafe fn save_picklebuffer(&mut self, obj: *mut ffi::PyObject) -> PyResult<()> {
        // SAFETY: `obj` is an alive PickleBuffer (contract). Its view is looked up
        // again after the buffer callback, and its memory is not read once
        // `file.write` has run (which gets `obj` itself).
        unsafe {
            if self.proto < 5 {
                return Err(self.pickling_error("PickleBuffer can only pickled with protocol >= 5"));
            }
            {
                // Dropped before the callback runs (on PyPy the view is an
                // export of its own, which would stop the callback releasing
                // the buffer).
                let view = self.picklebuffer_view(obj)?;
                if ffi::PyBuffer_IsContiguous(view.as_ptr(), b'A' as std::os::raw::c_char) == 0 {
                    return Err(self.pickling_error(
                        "PickleBuffer can not be pickled when pointing to a non-contiguous buffer",
                    ));
                }
            }
            let mut in_band = true;
            if let Some(callback) = self.buffer_callback.clone() {
                in_band = callback
                    .call1((super::borrowed(self.py, obj),))?
                    .is_truthy()?;
            }
            // The callback may have released the buffer: look the view up again.
            let view = self.picklebuffer_view(obj)?;
            let view_ref = view.as_ptr();
            let readonly = (*view_ref).readonly != 0;
            if in_band {
                let len = (*view_ref).len as usize;
                // The PickleBuffer (and `view`, alive to the end of this
                // block) keeps `len` bytes at `buf` valid until Python code
                // runs (`file.write`, which receives the PickleBuffer itself,
                // could release it).
                let data = super::atoms::RawBytes::new((*view_ref).buf as *const u8, len);
                if readonly {
                    self.save_bytes_data(obj, data, false)
                } else {
                    self.write_bytes_like(
                        &super::atoms::header_u64(BYTEARRAY8, len as u64),
                        data,
                        Some(obj),
                    )?;
                    self.memo_put(obj, false)
                }
            } else {
                self.out.byte(NEXT_BUFFER);
                if readonly {
                    self.out.byte(READONLY_BUFFER);
                }
                Ok(())
            }
        }
    }

    /// # Safety
    /// `obj` must be an alive `pickle.PickleBuffer`.
    unsafe fn picklebuffer_view(&mut self, obj: *mut ffi::PyObject) -> PyResult<PickleBufferView> {
        // SAFETY: `obj` is an alive PickleBuffer (contract).
        unsafe { PickleBufferView::new(obj) }.ok_or_else(|| fetch(self.py))
    }
}
