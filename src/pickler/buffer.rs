//! Protocol 5 out-of-band buffers (`pickle.PickleBuffer`).

use pyo3::ffi;
use pyo3::prelude::*;

use super::opcodes::*;
use super::Engine;
use crate::errors::fetch;
use crate::py_compat::PickleBufferView;

impl<'s, 'py> Engine<'s, 'py> {
    pub(super) unsafe fn save_picklebuffer(&mut self, obj: *mut ffi::PyObject) -> PyResult<()> {
        if self.proto < 5 {
            return Err(self.pickling_error("PickleBuffer can only pickled with protocol >= 5"));
        }
        {
            // Dropped before the callback runs (on PyPy the view is an
            // export of its own, which would stop the callback releasing the
            // buffer).
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
            let data = if len == 0 {
                &[][..]
            } else {
                // SAFETY: the PickleBuffer holds the exporter's buffer (and
                // thus keeps `len` bytes at `buf` valid) while it is alive,
                // and no Python code runs while the slice is in use (file
                // writes receive the PickleBuffer object, not the slice).
                std::slice::from_raw_parts((*view_ref).buf as *const u8, len)
            };
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

    unsafe fn picklebuffer_view(&mut self, obj: *mut ffi::PyObject) -> PyResult<PickleBufferView> {
        PickleBufferView::new(obj).ok_or_else(|| fetch(self.py))
    }
}
