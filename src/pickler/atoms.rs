//! Atoms and strings: None/bool/int/float (never memoized), str and bytes.

use pyo3::ffi;
use pyo3::prelude::*;

use super::opcodes::*;
use super::output::{DEFER_MIN, FRAME_SIZE_TARGET};
use super::Engine;
use crate::errors::{fetch, owned};
use crate::reduce::reduction;

/// The contents of a bytes-like object, as an address and a length: a
/// slice is made of it only for the moment it is read. A mutable buffer (a
/// bytearray, a PickleBuffer) can be resized or released by Python code
/// (`file.write`) while the engine still has its address, and a Rust
/// reference must not outlive its memory, even unread.
#[derive(Clone, Copy)]
pub(super) struct RawBytes {
    ptr: *const u8,
    len: usize,
}

impl RawBytes {
    /// `len` bytes at `ptr` (which may be null when `len` is 0).
    pub(super) fn new(ptr: *const u8, len: usize) -> Self {
        RawBytes { ptr, len }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The bytes, for reading right now.
    ///
    /// # Safety
    /// The `len` bytes at `ptr` must be valid and must not change while the
    /// slice is used: either no Python code has run since the address was
    /// read, or it belongs to an immutable object that is still alive (a
    /// bytes object, a str's UTF-8 form).
    pub(super) unsafe fn slice(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `len` valid, unchanging bytes at a non-null `ptr` (this
        // fn's contract).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<'s, 'py> Engine<'s, 'py> {
    pub(super) fn save_bool(&mut self, obj: *mut ffi::PyObject) {
        // SAFETY: `Py_True` only returns the address of the `True` singleton.
        unsafe {
            let is_true = obj == ffi::Py_True();
            if self.proto >= 2 {
                self.out.byte(if is_true { NEWTRUE } else { NEWFALSE });
            } else {
                self.out.bytes(if is_true { b"I01\n" } else { b"I00\n" });
            }
        }
    }

    /// # Safety
    /// `obj` must be an alive exact int.
    pub(super) unsafe fn save_long(&mut self, obj: *mut ffi::PyObject) -> PyResult<()> {
        // SAFETY: `obj` is an alive exact int (contract), as both callees require.
        unsafe {
            if self.save_i64_long(obj) {
                return Ok(());
            }
            self.save_big_long(obj)
        }
    }

    /// Writes `obj`, an exact int, if it fits in a C long, and answers
    /// whether it did. Runs no Python code and allocates no object.
    ///
    /// # Safety
    /// GIL held; `obj` an alive exact int.
    #[inline(always)]
    pub(super) unsafe fn save_i64_long(&mut self, obj: *mut ffi::PyObject) -> bool {
        // SAFETY: `obj` is an alive exact int (contract): its first digit may be
        // read, and `PyLong_AsLongAndOverflow` runs no Python code on it.
        unsafe {
            let value = match compact_long(obj, self.c.py_minor) {
                Some(v) => v,
                None => {
                    let mut overflow = 0;
                    let value = ffi::PyLong_AsLongAndOverflow(obj, &mut overflow);
                    if overflow != 0 || (value == -1 && !ffi::PyErr_Occurred().is_null()) {
                        return false;
                    }
                    value as i64
                }
            };
            self.write_i64(value);
            true
        }
    }

    /// The opcodes of an int that fits in 64 bits.
    #[inline(always)]
    fn write_i64(&mut self, value: i64) {
        if (i32::MIN as i64..=i32::MAX as i64).contains(&value) {
            if self.bin {
                if (0..=0xff).contains(&value) {
                    self.out.op_u8(BININT1, value as u8);
                } else if (0..=0xffff).contains(&value) {
                    let v = (value as u16).to_le_bytes();
                    self.out.array([BININT2, v[0], v[1]]);
                } else {
                    self.out.op_u32(BININT, value as i32 as u32);
                }
            } else {
                self.out.byte(INT);
                self.out.bytes(itoa(value).as_bytes());
                self.out.byte(b'\n');
            }
        } else if self.proto >= 2 {
            let (bytes, n) = encode_i64(value);
            self.write_long_bytes(&bytes[..n]);
        } else {
            self.out.byte(LONG);
            self.out.bytes(itoa(value).as_bytes());
            self.out.bytes(b"L\n");
        }
    }

    /// An int beyond a C long (or the error reading it raised).
    ///
    /// # Safety
    /// GIL held; `obj` an alive exact int.
    #[cold]
    #[inline(never)]
    unsafe fn save_big_long(&mut self, obj: *mut ffi::PyObject) -> PyResult<()> {
        // SAFETY: `obj` is an alive exact int (contract); `encode_big_long` and
        // `PyObject_Repr` only call int's own C methods on it.
        unsafe {
            let mut overflow = 0;
            let value = ffi::PyLong_AsLongAndOverflow(obj, &mut overflow);
            if overflow == 0 {
                if value == -1 && !ffi::PyErr_Occurred().is_null() {
                    return Err(fetch(self.py));
                }
                self.write_i64(value as i64);
                return Ok(());
            }
            // Calls int methods and builds a kwargs dict (or a repr).
            self.leave_pure();
            if self.proto >= 2 {
                let encoded = self.encode_big_long(obj)?;
                self.write_long_bytes(&encoded);
            } else {
                let text = owned(self.py, ffi::PyObject_Repr(obj))?;
                let text = text.cast_into::<pyo3::types::PyString>()?;
                self.out.byte(LONG);
                self.out.bytes(text.to_str()?.as_bytes());
                self.out.bytes(b"L\n");
            }
            Ok(())
        }
    }

    fn write_long_bytes(&mut self, data: &[u8]) {
        if data.len() < 256 {
            self.out.op_u8(LONG1, data.len() as u8);
        } else {
            self.out.op_u32(LONG4, data.len() as u32);
        }
        self.out.bytes(data);
    }

    /// Little-endian two's complement of an int beyond 64 bits, as short as
    /// pickle's `encode_long` makes it. Uses `int` methods (C code only, the
    /// object being an exact int).
    ///
    /// # Safety
    /// `obj` must be an alive exact int.
    unsafe fn encode_big_long(&mut self, obj: *mut ffi::PyObject) -> PyResult<Vec<u8>> {
        // SAFETY: `obj` is alive (contract); `borrowed` takes a reference for the
        // method calls.
        unsafe {
            let int = super::borrowed(self.py, obj);
            let nbits: usize = int.call_method0("bit_length")?.extract()?;
            let nbytes = (nbits >> 3) + 1;
            let kwargs = pyo3::types::PyDict::new(self.py);
            kwargs.set_item("signed", true)?;
            let bytes = int.call_method("to_bytes", (nbytes, "little"), Some(&kwargs))?;
            let mut data: Vec<u8> = bytes.extract()?;
            let negative = data.last().is_some_and(|b| b & 0x80 != 0);
            if negative
                && data.len() > 1
                && data[data.len() - 1] == 0xff
                && data[data.len() - 2] & 0x80 != 0
            {
                data.pop();
            }
            Ok(data)
        }
    }

    /// # Safety
    /// `obj` must be an alive exact float.
    pub(super) unsafe fn save_float(&mut self, obj: *mut ffi::PyObject) {
        // SAFETY: `obj` is an alive exact float (contract); the repr returned by
        // `PyOS_double_to_string` is ours until `PyMem_Free`.
        unsafe {
            let x = ffi::PyFloat_AS_DOUBLE(obj);
            if self.bin {
                let b = x.to_be_bytes();
                self.out
                    .array([BINFLOAT, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            } else {
                self.out.byte(FLOAT);
                // The repr CPython writes: shortest round-trip, with ".0" added.
                let text = ffi::PyOS_double_to_string(
                    x,
                    b'r' as std::os::raw::c_char,
                    0,
                    ffi::Py_DTSF_ADD_DOT_0,
                    std::ptr::null_mut(),
                );
                if !text.is_null() {
                    self.out.bytes(std::ffi::CStr::from_ptr(text).to_bytes());
                    ffi::PyMem_Free(text as *mut std::ffi::c_void);
                }
                self.out.byte(b'\n');
            }
        }
    }

    /// # Safety
    /// `obj` must be an alive exact str.
    pub(super) unsafe fn save_str(
        &mut self,
        obj: *mut ffi::PyObject,
        transient: bool,
    ) -> PyResult<()> {
        // SAFETY: `obj` is an alive exact str (contract), as `write_str` and
        // `memo_put` require.
        unsafe {
            self.write_str(obj)?;
            self.memo_put(obj, transient)
        }
    }

    /// The opcode and content of the string `obj` (no memo index).
    ///
    /// The common case (a short string with a UTF-8 form, protocol 4 and
    /// above) is inlined into the callers on the per-object path; the rest
    /// is `write_str_general`.
    ///
    /// # Safety
    /// `obj` must be an alive exact str.
    #[inline(always)]
    pub(super) unsafe fn write_str(&mut self, obj: *mut ffi::PyObject) -> PyResult<()> {
        // SAFETY: `obj` is an alive exact str (contract); the UTF-8 form
        // `PyUnicode_AsUTF8AndSize` returns is cached in it, alive as long as it is.
        unsafe {
            // Encoding a string with lone surrogates to UTF-8 fails, and the
            // failure allocates an exception object, which can start a
            // collection: such strings leave the pure region first. Only
            // 2- and 4-byte strings can hold surrogates (see `may_fail_utf8`).
            if self.transient_memo && may_fail_utf8(obj) {
                self.leave_pure();
            }
            if self.proto >= 4 && self.fast_paths {
                // An ASCII str is its own UTF-8 form (and holds no surrogate).
                if let Some(ascii) = crate::py_compat::str_ascii(obj).filter(|a| a.len() <= 0xff) {
                    self.out.short_string(SHORT_BINUNICODE, ascii);
                    return Ok(());
                }
            }
            if self.proto >= 4 {
                let mut size: ffi::Py_ssize_t = 0;
                let data = ffi::PyUnicode_AsUTF8AndSize(obj, &mut size);
                if !data.is_null() && size <= 0xff {
                    // SAFETY: `data` points at the `size` bytes of the UTF-8
                    // form cached in `obj`, alive while `obj` is.
                    let slice = std::slice::from_raw_parts(data as *const u8, size as usize);
                    self.out.short_string(SHORT_BINUNICODE, slice);
                    return Ok(());
                }
                if data.is_null() {
                    // Lone surrogates: the general path encodes them again,
                    // with "surrogatepass".
                    ffi::PyErr_Clear();
                }
            }
            self.write_str_general(obj)
        }
    }

    /// # Safety
    /// `obj` must be an alive exact str.
    #[inline(never)]
    unsafe fn write_str_general(&mut self, obj: *mut ffi::PyObject) -> PyResult<()> {
        // SAFETY: `obj` is an alive exact str (contract). The bytes borrowed below
        // belong to `obj` (its cached UTF-8 form) or to `encoded`, both alive until
        // the end of the function.
        unsafe {
            if self.bin {
                let mut size: ffi::Py_ssize_t = 0;
                let data = ffi::PyUnicode_AsUTF8AndSize(obj, &mut size);
                // Lone surrogates cannot be UTF-8 encoded strictly: pickle falls
                // back on "surrogatepass".
                let (encoded, data, size) = if data.is_null() {
                    ffi::PyErr_Clear();
                    let encoded = owned(
                        self.py,
                        ffi::PyUnicode_AsEncodedString(
                            obj,
                            c"utf-8".as_ptr(),
                            c"surrogatepass".as_ptr(),
                        ),
                    )?;
                    let data = ffi::PyBytes_AsString(encoded.as_ptr()) as *const u8;
                    let size = ffi::PyBytes_Size(encoded.as_ptr());
                    (Some(encoded), data, size)
                } else {
                    (None, data as *const u8, size)
                };
                let size = size as usize;
                // `data` points at `size` bytes owned by `obj` (its cached
                // UTF-8) or by `encoded`: immutable, alive until the end of
                // this function.
                let data = RawBytes::new(data, size);
                if size <= 0xff && self.proto >= 4 {
                    self.out.short_string(SHORT_BINUNICODE, data.slice());
                } else if size <= u32::MAX as usize {
                    let payload = encoded.as_ref().map(|e| e.as_ptr());
                    self.write_bytes_like(&header_u32(BINUNICODE, size as u32), data, payload)?;
                } else if self.proto >= 4 {
                    let payload = encoded.as_ref().map(|e| e.as_ptr());
                    self.write_bytes_like(&header_u64(BINUNICODE8, size as u64), data, payload)?;
                } else {
                    return Err(pyo3::exceptions::PyOverflowError::new_err(
                    "serializing a string larger than 4 GiB requires pickle protocol 4 or higher",
                ));
                }
            } else {
                self.leave_pure();
                self.out.byte(UNICODE);
                let escaped = raw_unicode_escape(self.py, obj)?;
                self.out.bytes(&escaped);
                self.out.byte(b'\n');
            }
            Ok(())
        }
    }

    /// # Safety
    /// `obj` must be an alive exact bytes object.
    pub(super) unsafe fn save_bytes(
        &mut self,
        obj: *mut ffi::PyObject,
        transient: bool,
    ) -> PyResult<()> {
        // SAFETY: `obj` is an alive exact bytes object (contract): immutable, it
        // owns `size` bytes at `PyBytes_AsString`.
        unsafe {
            let size = ffi::PyBytes_Size(obj) as usize;
            if self.proto < 3 {
                self.leave_pure();
                // No bytes opcode: pickle reduces to codecs.encode(latin1 str)
                // (or bytes() when empty), which Python 2 can load too.
                let rv = if size == 0 {
                    let bytes_type =
                        super::borrowed(self.py, std::ptr::addr_of_mut!(ffi::PyBytes_Type).cast());
                    reduction(&bytes_type, ())?
                } else {
                    let text = owned(
                        self.py,
                        ffi::PyUnicode_DecodeLatin1(
                            ffi::PyBytes_AsString(obj),
                            size as ffi::Py_ssize_t,
                            std::ptr::null(),
                        ),
                    )?;
                    let latin1 = super::borrowed(self.py, self.c.s_latin1);
                    reduction(
                        &super::borrowed(self.py, self.c.codecs_encode),
                        (text, latin1),
                    )?
                };
                return self.save_reduce(rv.as_ptr(), Some(obj));
            }
            // The bytes object owns `size` bytes at this address, immutable,
            // and is kept alive by the caller.
            let data = RawBytes::new(ffi::PyBytes_AsString(obj) as *const u8, size);
            self.save_bytes_data(obj, data, transient)
        }
    }

    /// The bytes opcodes for `data`, then memoizes `obj` (a bytes object or
    /// the PickleBuffer it came from).
    ///
    /// # Safety
    /// `obj` must be alive: the bytes object or PickleBuffer whose contents
    /// `data` are, valid as `write_bytes_like` requires.
    pub(super) unsafe fn save_bytes_data(
        &mut self,
        obj: *mut ffi::PyObject,
        data: RawBytes,
        transient: bool,
    ) -> PyResult<()> {
        // SAFETY: `obj` is alive and `data` its contents, valid until Python
        // code runs (contract): read at once for a short string, otherwise
        // handed to `write_bytes_like` with `obj` as the payload.
        unsafe {
            let size = data.len();
            if size <= 0xff {
                self.out.short_string(SHORT_BINBYTES, data.slice());
            } else if size <= u32::MAX as usize {
                self.write_bytes_like(&header_u32(BINBYTES, size as u32), data, Some(obj))?;
            } else if self.proto >= 4 {
                self.write_bytes_like(&header_u64(BINBYTES8, size as u64), data, Some(obj))?;
            } else {
                return Err(pyo3::exceptions::PyOverflowError::new_err(
                "serializing a bytes object larger than 4 GiB requires pickle protocol 4 or higher",
            ));
            }
            self.memo_put(obj, transient)
        }
    }

    /// Writes a header and a payload; payloads of 64 KiB or more bypass
    /// framing (and the buffer, when writing to a file), as in `_pickle.c`.
    /// `payload` is the object handed to `file.write` in that case.
    ///
    /// # Safety
    /// `data` must be valid until the first Python code run here
    /// (`file.write`), and for the whole call when there is no `payload`.
    /// `payload`, when given, must be alive and hold those bytes.
    pub(super) unsafe fn write_bytes_like(
        &mut self,
        header: &[u8],
        data: RawBytes,
        payload: Option<*mut ffi::PyObject>,
    ) -> PyResult<()> {
        // SAFETY: `data` is read before `file.write` runs, or after it only
        // when there is no payload, and `payload` is alive when given
        // (contract).
        unsafe {
            let bypass = data.len() >= FRAME_SIZE_TARGET;
            let framing = self.out.framing();
            if bypass {
                self.out.commit_frame();
                self.out.set_framing(false);
            }
            self.out.bytes(header);
            if bypass && self.write.is_some() {
                self.flush_to_file()?;
                let write = self.write.clone().expect("checked above");
                let chunk = match payload {
                    Some(p) => super::borrowed(self.py, p),
                    None => pyo3::types::PyBytes::new(self.py, data.slice()).into_any(),
                };
                write.call1((chunk,))?;
            } else if self.out.allow_external
                && self.fast_paths
                && data.len() >= DEFER_MIN
                && payload.is_some_and(|p| ffi::PyBytes_CheckExact(p) != 0)
            {
                // An exact bytes object, immutable and held by the output
                // until the result is assembled: copied once, then.
                self.out
                    .defer(payload.expect("checked above"), data.slice());
            } else if bypass && self.out.allow_external {
                // Straight into the final bytes object: one copy, not two.
                self.out.append_large(self.py, data.slice())?;
            } else {
                self.out.bytes(data.slice());
            }
            self.out.set_framing(framing);
            Ok(())
        }
    }
}

/// The value of an exact int of at most one 30-bit digit, read from the
/// object itself; None for larger ones (and on other layouts). Up to 3.11
/// an int is a variable-size object whose signed size counts its digits;
/// from 3.12 on, `PyUnstable_Long_IsCompact` and
/// `PyUnstable_Long_CompactValue` (inline in CPython's headers) define the
/// layout read here: a tag holding the digit count above 3 bits and the
/// sign (0 positive, 1 zero, 2 negative) in the low 2, then the digits.
///
/// # Safety
/// `obj` an alive exact int; GIL held.
#[inline(always)]
unsafe fn compact_long(obj: *mut ffi::PyObject, py_minor: u8) -> Option<i64> {
    // SAFETY: `obj` is an alive exact int (contract), read only where
    // `compact_layout_checked` verified the layout.
    unsafe {
        if !compact_layout_checked(py_minor) {
            return None;
        }
        read_compact(obj, py_minor)
    }
}

/// Whether `read_compact` reads ints right on this interpreter (30-bit
/// digits, a known version): checked once on a few values.
#[inline(always)]
pub(super) fn compact_layout_checked(py_minor: u8) -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        (9..=15).contains(&py_minor)
            && [0i64, 1, -1, 5, -7, 1 << 20, -(1 << 29), (1 << 30) - 1]
                .iter()
                .all(|&v| {
                    // SAFETY: GIL held (callers); a new int, released below.
                    // Ints are not tracked by the garbage collector.
                    unsafe {
                        let obj = ffi::PyLong_FromLongLong(v);
                        if obj.is_null() {
                            ffi::PyErr_Clear();
                            return false;
                        }
                        let ok = read_compact(obj, py_minor) == Some(v);
                        let big = ffi::PyLong_FromLongLong(1 << 40);
                        let ok = ok && !big.is_null() && read_compact(big, py_minor).is_none();
                        ffi::Py_XDECREF(big);
                        ffi::Py_DECREF(obj);
                        ok
                    }
                })
    })
}

/// # Safety
/// `obj` must be an alive exact int. The value is only right on
/// interpreters whose layout `compact_layout_checked` verified.
#[inline(always)]
pub(super) unsafe fn read_compact(obj: *mut ffi::PyObject, py_minor: u8) -> Option<i64> {
    // SAFETY: `obj` is an alive int (contract): every int object has its header,
    // its size or tag word and at least one digit.
    unsafe {
        // Both layouts: the header (refcount, type), one word (size or tag),
        // then 32-bit digits.
        let word = *(obj as *const isize).add(2);
        let digit = *((obj as *const u8).add(3 * std::mem::size_of::<isize>()) as *const u32);
        if py_minor <= 11 {
            match word {
                0 => Some(0),
                1 => Some(i64::from(digit)),
                -1 => Some(-i64::from(digit)),
                _ => None,
            }
        } else if py_minor <= 15 {
            // 3.14 keeps the layout, with bit 2 of the tag marking the
            // immortal small ints (outside the sign and the digit count).
            let tag = word as usize;
            if tag < (2 << 3) {
                Some((1 - (tag & 3) as i64) * i64::from(digit))
            } else {
                None
            }
        } else {
            None
        }
    }
}

/// Whether encoding `obj` (an exact str) to UTF-8 may fail, which it does
/// only on lone surrogates: never for a 1-byte (Latin-1) string; for the
/// others the code units are scanned (as encoding them does anyway).
///
/// # Safety
/// GIL held; `obj` an exact, alive str.
#[inline(always)]
unsafe fn may_fail_utf8(obj: *mut ffi::PyObject) -> bool {
    // SAFETY: `obj` is an alive exact str (contract).
    unsafe {
        let kind = ffi::PyUnicode_KIND(obj);
        if kind == ffi::PyUnicode_1BYTE_KIND {
            return false;
        }
        has_surrogates(obj, kind)
    }
}

/// # Safety
/// `obj` must be an alive exact str of `kind`, 2 or 4 bytes per unit.
#[cold]
#[inline(never)]
unsafe fn has_surrogates(obj: *mut ffi::PyObject, kind: std::os::raw::c_uint) -> bool {
    // SAFETY: `obj` is an alive exact str of `kind` (contract).
    unsafe { crate::py_compat::str_has_surrogates(obj, kind) }
}

pub(super) fn header_u32(op: u8, n: u32) -> [u8; 5] {
    let b = n.to_le_bytes();
    [op, b[0], b[1], b[2], b[3]]
}

pub(super) fn header_u64(op: u8, n: u64) -> [u8; 9] {
    let mut h = [0u8; 9];
    h[0] = op;
    h[1..].copy_from_slice(&n.to_le_bytes());
    h
}

fn itoa(v: i64) -> String {
    v.to_string()
}

/// Minimal little-endian two's complement bytes of `v`, as pickle's
/// `encode_long` (0 encodes as no bytes).
pub fn encode_i64(v: i64) -> ([u8; 16], usize) {
    let bytes = (v as i128).to_le_bytes();
    if v == 0 {
        return (bytes, 0);
    }
    let nbits = 64 - v.unsigned_abs().leading_zeros() as usize;
    let mut n = (nbits >> 3) + 1;
    if v < 0 && n > 1 && bytes[n - 1] == 0xff && bytes[n - 2] & 0x80 != 0 {
        n -= 1;
    }
    (bytes, n)
}

/// Protocol 0's text encoding of a str: Latin-1 bytes as they are, other
/// characters and the ones that would break the line-based format as
/// `\u` + 4 or `\U` + 8 hex-digit escapes (same as `_pickle.c`).
///
/// # Safety
/// `obj` must be an alive str.
unsafe fn raw_unicode_escape(py: Python<'_>, obj: *mut ffi::PyObject) -> PyResult<Vec<u8>> {
    // SAFETY: `obj` is an alive str (contract); `PyUnicode_AsUCS4Copy`
    // returns `len` code points (plus a NUL) that we own until `PyMem_Free`.
    unsafe {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let len = ffi::PyUnicode_GetLength(obj);
        if len < 0 {
            return Err(fetch(py));
        }
        let chars = ffi::PyUnicode_AsUCS4Copy(obj);
        if chars.is_null() {
            return Err(fetch(py));
        }
        // SAFETY: PyUnicode_AsUCS4Copy returns `len` code points plus a NUL,
        // allocated with PyMem_Malloc and owned by us until freed below.
        let code_points = std::slice::from_raw_parts(chars, len as usize);
        let mut out = Vec::with_capacity(code_points.len());
        for &ch in code_points {
            if ch >= 0x10000 {
                out.extend_from_slice(b"\\U");
                for shift in (0..8).rev() {
                    out.push(HEX[((ch >> (shift * 4)) & 0xf) as usize]);
                }
            } else if ch >= 256
                || ch == b'\\' as u32
                || ch == 0
                || ch == b'\n' as u32
                || ch == b'\r' as u32
                || ch == 0x1a
            {
                out.extend_from_slice(b"\\u");
                for shift in (0..4).rev() {
                    out.push(HEX[((ch >> (shift * 4)) & 0xf) as usize]);
                }
            } else {
                out.push(ch as u8);
            }
        }
        ffi::PyMem_Free(chars as *mut std::ffi::c_void);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::encode_i64;

    fn enc(v: i64) -> Vec<u8> {
        let (b, n) = encode_i64(v);
        b[..n].to_vec()
    }

    #[test]
    fn encode_long_matches_pickle() {
        assert_eq!(enc(0), b"");
        assert_eq!(enc(255), vec![0xff, 0x00]);
        assert_eq!(enc(-1), vec![0xff]);
        assert_eq!(enc(-128), vec![0x80]);
        assert_eq!(enc(-129), vec![0x7f, 0xff]);
        assert_eq!(enc(1 << 31), vec![0, 0, 0, 0x80, 0]);
        assert_eq!(
            enc(i64::MAX),
            vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]
        );
        assert_eq!(enc(i64::MIN), vec![0, 0, 0, 0, 0, 0, 0, 0x80]);
    }
}
