//! The output buffer and the protocol-4 framer.
//!
//! Framing follows CPython's `_pickle.c` exactly, since the output must be
//! byte-identical to `pickle.dumps`: a frame is opened lazily by the first
//! write after the previous one was committed, committed at the start of a
//! `save` once it holds at least `FRAME_SIZE_TARGET` bytes, and a frame of
//! fewer than `FRAME_SIZE_MIN` bytes is written without its header. Large
//! bytes-like payloads bypass framing altogether.
//!
//! When the payload becomes one `bytes` object (`dumps`), exact `bytes`
//! objects of `DEFER_MIN` bytes or more are not copied into the buffer: the
//! buffer records where they go (holding a reference to each) and they are
//! copied once, into the result, when it is assembled (`take_pybytes`). The
//! buffer then holds only opcodes and small data, and the payload's bytes
//! are copied once, as `_pickle.c` copies them, instead of twice (into the
//! buffer, then into the result). Frame lengths count the deferred bytes.

use pyo3::ffi;

use super::opcodes::FRAME;

pub const FRAME_SIZE_TARGET: usize = 64 * 1024;
const FRAME_SIZE_MIN: usize = 4;
const FRAME_HEADER_SIZE: usize = 9;
const NO_FRAME: usize = usize::MAX;

/// Scratch buffers above this capacity are released after a call instead of
/// being kept for the next one. Kept up to 32 MiB (one per thread that
/// dumps): a buffer released and grown again for each payload of several
/// MiB faults all its pages in anew each time, and its freed block changes
/// the allocator's thresholds so that the result bytes object is mapped
/// fresh too (measured with 10,000 1 KiB bytes, 10 MiB: 2,550 page faults
/// per dumps with a 1 MiB limit, about 10 with this one).
const KEEP_CAPACITY: usize = 1 << 25;

/// Exact `bytes` objects at least this long are deferred (see the module
/// documentation) when the output is assembled into a bytes object. Below
/// it, recording a piece costs more than copying the data twice.
pub const DEFER_MIN: usize = 512;

/// The deferred pieces' table is released after a dump that needed more
/// room than this (about 2 MiB), as `buf` is past `KEEP_CAPACITY`.
const KEEP_PIECES: usize = 1 << 16;

/// A deferred `bytes` object: its `len` bytes at `ptr` go before `buf[at]`
/// (after any earlier piece with the same `at`).
#[derive(Debug)]
struct Piece {
    at: usize,
    /// A strong reference, released by `gather_into` or `release_pieces`:
    /// it keeps `ptr` valid (bytes are immutable) whatever Python code runs
    /// mid-dump.
    obj: *mut ffi::PyObject,
    ptr: *const u8,
    len: usize,
}

/// A point in the output, to copy what was written after it (`copy_since`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    buf: usize,
    pieces: usize,
}

#[derive(Debug)]
pub struct Output {
    pub buf: Vec<u8>,
    /// Offset of the open frame's header in `buf`, or `NO_FRAME`.
    frame_start: usize,
    /// `deferred` when the open frame was opened.
    frame_deferred: usize,
    /// The tail length (`buf.len() + deferred`) at which the open frame is
    /// full; `usize::MAX` when no frame is open.
    frame_limit: usize,
    /// Deferred bytes objects, in output order, and their total length.
    pieces: Vec<Piece>,
    deferred: usize,
    /// Whether frames are being written (protocol >= 4, outside bypasses).
    framing: bool,
    /// The part of the payload already moved into its final bytes object
    /// (see `append_large`): `head_len` bytes of `head`, which has room for
    /// more. Null until a large payload is written.
    head: *mut pyo3::ffi::PyObject,
    head_len: usize,
    /// The size of `head` (its room).
    head_cap: usize,
    /// Whether `head` may be used (a dump into a bytes object).
    pub allow_external: bool,
    /// Frames committed so far (see `frame_mark`).
    commits: u64,
}

// SAFETY: `head` and the pieces' objects are only dereferenced (data
// written or read, resized, released) by methods that require the GIL; an
// Output moves between threads only inside the GIL-protected thread-local
// pool or a PyO3 object.
unsafe impl Send for Output {}
// SAFETY: a shared `&Output` never dereferences `head` (only `&mut self`
// methods do).
unsafe impl Sync for Output {}

impl Default for Output {
    fn default() -> Self {
        Output {
            buf: Vec::with_capacity(256),
            frame_start: NO_FRAME,
            frame_deferred: 0,
            frame_limit: usize::MAX,
            pieces: Vec::new(),
            deferred: 0,
            framing: false,
            head: std::ptr::null_mut(),
            head_len: 0,
            head_cap: 0,
            allow_external: false,
            commits: 0,
        }
    }
}

impl Output {
    /// Prepares for a new pickle. Must run with the GIL held when
    /// `append_large` or `defer` was used (it releases the head and the
    /// pieces).
    pub fn reset(&mut self) {
        self.release_pieces();
        if !self.head.is_null() {
            // SAFETY: our own reference (see `append_large`); callers hold
            // the GIL.
            unsafe { pyo3::ffi::Py_DECREF(self.head) };
            self.head = std::ptr::null_mut();
        }
        self.head_len = 0;
        self.head_cap = 0;
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::with_capacity(256);
        } else {
            self.buf.clear();
        }
        self.frame_start = NO_FRAME;
        self.frame_limit = usize::MAX;
        self.framing = false;
    }

    /// Releases the deferred pieces (their data must have been copied, or
    /// be no longer wanted). GIL held when there are any.
    fn release_pieces(&mut self) {
        for piece in self.pieces.drain(..) {
            // SAFETY: our own reference (see `defer`); callers hold the GIL
            // when `defer` was used. An exact bytes object's deallocation
            // runs no Python code.
            unsafe { ffi::Py_DECREF(piece.obj) };
        }
        self.deferred = 0;
        if self.pieces.capacity() > KEEP_PIECES {
            self.pieces = Vec::new();
        }
    }

    /// Length of what `buf` and the pieces hold.
    #[inline(always)]
    fn tail_len(&self) -> usize {
        self.buf.len() + self.deferred
    }

    /// Copies the tail (`buf` with the pieces in their places) to `dst`
    /// and releases each piece right after copying it (its object's header
    /// is then still in the cache); returns the number of bytes written
    /// (the `tail_len()` from before). `buf` is left as it was.
    ///
    /// # Safety
    /// `dst` must have room for `tail_len()` bytes and not overlap `buf` or
    /// the pieces' data; the GIL must be held.
    unsafe fn gather_into(&mut self, dst: *mut u8) -> usize {
        // SAFETY: every piece's `at` is at most `buf.len()` and they are in
        // order; each piece's data is held by its object until the
        // reference is released, after the copy; `dst` has room and the GIL
        // is held (contract). An exact bytes object's deallocation runs no
        // Python code.
        unsafe {
            let src = self.buf.as_ptr();
            let mut from = 0;
            let mut written = 0;
            for piece in self.pieces.drain(..) {
                let n = piece.at - from;
                std::ptr::copy_nonoverlapping(src.add(from), dst.add(written), n);
                written += n;
                from = piece.at;
                std::ptr::copy_nonoverlapping(piece.ptr, dst.add(written), piece.len);
                written += piece.len;
                ffi::Py_DECREF(piece.obj);
            }
            let n = self.buf.len() - from;
            copy_out(src.add(from), dst.add(written), n);
            self.release_pieces();
            written + n
        }
    }

    /// Records `data`, the contents of `obj`, to be copied when the output
    /// is assembled, and takes a reference to `obj`.
    ///
    /// # Safety
    /// `obj` must be an alive exact bytes object whose contents are `data`;
    /// the GIL must be held; the output must end in `take_pybytes` or
    /// `reset` (not `take_committed` or a read of `buf`).
    #[inline]
    pub unsafe fn defer(&mut self, obj: *mut ffi::PyObject, data: &[u8]) {
        self.open_frame_if_needed(0);
        // SAFETY: `obj` is alive and the GIL held (contract); the reference
        // taken is released by `gather_into` or `release_pieces`.
        unsafe { ffi::Py_INCREF(obj) };
        self.pieces.push(Piece {
            at: self.buf.len(),
            obj,
            ptr: data.as_ptr(),
            len: data.len(),
        });
        self.deferred += data.len();
    }

    /// The current end of the output, for `copy_since`.
    #[inline]
    pub fn position(&self) -> Position {
        Position {
            buf: self.buf.len(),
            pieces: self.pieces.len(),
        }
    }

    /// What was written since `pos`, with the deferred pieces in their
    /// places; None if `buf` was emptied or shortened since (a frame
    /// header removed, a flush, a move into the head).
    pub fn copy_since(&self, pos: Position) -> Option<Box<[u8]>> {
        if self.buf.len() < pos.buf || self.pieces.len() < pos.pieces {
            return None;
        }
        let pieces = &self.pieces[pos.pieces..];
        if pieces.first().is_some_and(|p| p.at < pos.buf) {
            return None;
        }
        let mut v = Vec::with_capacity(
            self.buf.len() - pos.buf + pieces.iter().map(|p| p.len).sum::<usize>(),
        );
        let mut from = pos.buf;
        for piece in pieces {
            v.extend_from_slice(&self.buf[from..piece.at]);
            from = piece.at;
            // SAFETY: the piece's object, still held, owns these bytes.
            v.extend_from_slice(unsafe { std::slice::from_raw_parts(piece.ptr, piece.len) });
        }
        v.extend_from_slice(&self.buf[from..]);
        Some(v.into_boxed_slice())
    }

    pub fn set_framing(&mut self, on: bool) {
        self.framing = on;
    }

    pub fn framing(&self) -> bool {
        self.framing
    }

    #[inline(always)]
    pub fn open_frame_if_needed(&mut self, extra: usize) {
        if self.framing && self.frame_start == NO_FRAME {
            self.buf.reserve(FRAME_HEADER_SIZE + extra);
            self.frame_start = self.buf.len();
            self.frame_deferred = self.deferred;
            self.buf.extend_from_slice(&[0xFE; FRAME_HEADER_SIZE]);
            self.frame_limit = self.tail_len() + FRAME_SIZE_TARGET;
        }
    }

    #[inline(always)]
    pub fn byte(&mut self, b: u8) {
        self.array([b]);
    }

    #[inline(always)]
    pub fn bytes(&mut self, data: &[u8]) {
        self.open_frame_if_needed(data.len());
        self.buf.extend_from_slice(data);
    }

    /// Writes a few bytes known at compile time in size: no call to
    /// memcpy, one capacity check.
    #[inline(always)]
    pub fn array<const N: usize>(&mut self, data: [u8; N]) {
        self.open_frame_if_needed(N);
        self.buf.reserve(N);
        let len = self.buf.len();
        // SAFETY: `reserve` guaranteed room for N more bytes, which are
        // initialised by the write before the length is extended.
        unsafe {
            std::ptr::write_unaligned(self.buf.as_mut_ptr().add(len) as *mut [u8; N], data);
            self.buf.set_len(len + N);
        }
    }

    /// Writes `op`, a 1-byte length and `data` (at most 255 bytes).
    #[inline(always)]
    pub fn short_string(&mut self, op: u8, data: &[u8]) {
        debug_assert!(data.len() <= 0xff);
        let n = data.len();
        self.open_frame_if_needed(n + 2);
        self.buf.reserve(n + 2);
        let len = self.buf.len();
        // SAFETY: room for n + 2 bytes was reserved; all of them are
        // written before the length is extended; `data` cannot overlap the
        // spare capacity of our own buffer.
        unsafe {
            let p = self.buf.as_mut_ptr().add(len);
            *p = op;
            *p.add(1) = n as u8;
            if n <= 16 {
                for i in 0..n {
                    *p.add(2 + i) = *data.get_unchecked(i);
                }
            } else {
                std::ptr::copy_nonoverlapping(data.as_ptr(), p.add(2), n);
            }
            self.buf.set_len(len + n + 2);
        }
    }

    /// Writes an opcode followed by a 1-byte argument.
    #[inline(always)]
    pub fn op_u8(&mut self, op: u8, arg: u8) {
        self.array([op, arg]);
    }

    /// Writes an opcode followed by a little-endian u32 argument.
    #[inline(always)]
    pub fn op_u32(&mut self, op: u8, arg: u32) {
        let a = arg.to_le_bytes();
        self.array([op, a[0], a[1], a[2], a[3]]);
    }

    /// Whether a frame is open (its header written, not yet committed).
    #[inline]
    pub fn frame_is_open(&self) -> bool {
        self.framing && self.frame_start != NO_FRAME
    }

    /// Bytes in the open frame so far (0 when none is open).
    #[inline]
    pub fn open_frame_len(&self) -> usize {
        if self.frame_start == NO_FRAME {
            0
        } else {
            self.buf.len() - self.frame_start - FRAME_HEADER_SIZE
                + (self.deferred - self.frame_deferred)
        }
    }

    /// Identifies the open frame and what was moved out of `buf`: equal
    /// marks before and after some writes mean those writes sit, unsplit,
    /// at the end of `buf` inside one frame.
    #[inline]
    pub fn frame_mark(&self) -> (u64, usize, usize, *mut pyo3::ffi::PyObject) {
        (self.commits, self.frame_start, self.head_len, self.head)
    }

    /// True when the open frame is large enough to be committed at this
    /// opcode boundary.
    #[inline(always)]
    pub fn frame_full(&self) -> bool {
        self.tail_len() >= self.frame_limit
    }

    /// The length of `buf` at which the open frame becomes full
    /// (`frame_full`), as long as nothing is deferred meanwhile;
    /// `usize::MAX` when no frame is open.
    #[inline(always)]
    pub fn full_at_len(&self) -> usize {
        self.frame_limit.saturating_sub(self.deferred)
    }

    /// Closes the open frame, if any: fills in its header, or removes the
    /// header when the frame is too small to be worth one.
    pub fn commit_frame(&mut self) {
        if !self.framing || self.frame_start == NO_FRAME {
            return;
        }
        self.commits += 1;
        let start = self.frame_start;
        let frame_len = self.open_frame_len();
        if frame_len >= FRAME_SIZE_MIN {
            self.buf[start] = FRAME;
            self.buf[start + 1..start + FRAME_HEADER_SIZE]
                .copy_from_slice(&(frame_len as u64).to_le_bytes());
        } else {
            self.buf.drain(start..start + FRAME_HEADER_SIZE);
            // (No piece can be in so small a frame; were one there, it
            // would move with the bytes after the header.)
            for piece in self.pieces.iter_mut().rev() {
                if piece.at <= start {
                    break;
                }
                piece.at -= FRAME_HEADER_SIZE;
            }
        }
        self.frame_start = NO_FRAME;
        self.frame_limit = usize::MAX;
    }

    /// Bytes that are complete (outside any open frame) and may be handed to
    /// a file. Only valid right after `commit_frame` or when not framing.
    pub fn take_committed(&mut self) -> Vec<u8> {
        debug_assert!(self.frame_start == NO_FRAME);
        debug_assert!(self.pieces.is_empty());
        std::mem::take(&mut self.buf)
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.pieces.is_empty()
    }

    /// Appends `data`, a large payload, to the final bytes object directly:
    /// what `buf` holds goes first, then `data`, and `buf` starts again
    /// empty. The final object grows geometrically by `realloc`, which for
    /// large blocks remaps pages instead of copying them, so a large payload
    /// is copied once (into the result), not twice (into this buffer, then
    /// into the result). The copy is taken now, so a mutable buffer changed
    /// later during the same dump does not change the payload.
    ///
    /// # Safety
    /// `data` must not be empty. (No frame may be open either: the bytes
    /// would land outside it.)
    pub unsafe fn append_large(&mut self, py: pyo3::Python<'_>, data: &[u8]) -> pyo3::PyResult<()> {
        // SAFETY: `resize_head` made `head` a bytes object of at least `needed`
        // bytes (`needed` > 0: `data` is not empty, see the contract), ours alone;
        // `buf`, the pieces and `data` cannot overlap it.
        unsafe {
            debug_assert!(self.frame_start == NO_FRAME);
            let needed = self.head_len + self.tail_len() + data.len();
            if needed > self.head_cap {
                let size = needed.max(self.head_cap.saturating_mul(2));
                self.resize_head(py, size)?;
            }
            let dst = pyo3::ffi::PyBytes_AsString(self.head) as *mut u8;
            self.head_len += self.gather_into(dst.add(self.head_len));
            std::ptr::copy_nonoverlapping(data.as_ptr(), dst.add(self.head_len), data.len());
            self.head_len += data.len();
            self.buf.clear();
            Ok(())
        }
    }

    /// Makes `head` a bytes object of `size` bytes, keeping its first
    /// `head_len` bytes.
    fn resize_head(&mut self, py: pyo3::Python<'_>, size: usize) -> pyo3::PyResult<()> {
        // SAFETY: GIL held (`py`). `head` is null or our only reference to a
        // bytes object nobody else has seen (it is handed out only by
        // `take_pybytes`), so it may be resized.
        unsafe {
            let size =
                isize::try_from(size).map_err(|_| pyo3::exceptions::PyMemoryError::new_err(()))?;
            if self.head.is_null() {
                let raw = pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), size);
                if raw.is_null() {
                    return Err(crate::errors::fetch(py));
                }
                self.head = raw;
            } else if crate::py::_PyBytes_Resize(&mut self.head, size) != 0 {
                // On failure the object was released and the pointer cleared.
                self.head = std::ptr::null_mut();
                self.head_len = 0;
                self.head_cap = 0;
                return Err(crate::errors::fetch(py));
            }
            self.head_cap = size as usize;
            Ok(())
        }
    }

    /// The payload as a bytes object. The pieces are released.
    pub fn take_pybytes<'py>(
        &mut self,
        py: pyo3::Python<'py>,
    ) -> pyo3::PyResult<pyo3::Bound<'py, pyo3::types::PyBytes>> {
        if self.head.is_null() && self.pieces.is_empty() && self.buf.len() < STREAM_MIN {
            return Ok(pyo3::types::PyBytes::new(py, &self.buf));
        }
        // SAFETY: GIL held (we have `py`). `head` is null or our reference
        // to a bytes object no one else has seen, so it may be resized and
        // written; made or resized to hold the tail, it is handed over (and
        // the field cleared) at the end.
        unsafe {
            let total = self.head_len + self.tail_len();
            if self.head.is_null() {
                let size = isize::try_from(total)
                    .map_err(|_| pyo3::exceptions::PyMemoryError::new_err(()))?;
                let raw = ffi::PyBytes_FromStringAndSize(std::ptr::null(), size);
                if raw.is_null() {
                    return Err(crate::errors::fetch(py));
                }
                self.head = raw;
            } else {
                self.resize_head(py, total)?;
            }
            let dst = ffi::PyBytes_AsString(self.head) as *mut u8;
            self.gather_into(dst.add(self.head_len));
            let raw = std::mem::replace(&mut self.head, std::ptr::null_mut());
            self.head_len = 0;
            self.head_cap = 0;
            crate::errors::owned(py, raw)?
                .cast_into::<pyo3::types::PyBytes>()
                .map_err(Into::into)
        }
    }
}

/// Copies of the buffer into the result at or above this size go around
/// the cache (see `copy_out`): beyond the caches' reach, where the result
/// would not stay cached anyway.
const STREAM_MIN: usize = 1 << 22;

/// Copies `n` bytes from `src` to `dst`, as `copy_nonoverlapping` does; a
/// large copy (the buffer into the result at the end of a large dump) is
/// written with non-temporal stores, which do not read the destination's
/// lines into the cache first (`list_of_ints_floats`, 6.9 MB: about 0.4 ms
/// of 4 saved; reading the result afterwards measured no slower).
///
/// # Safety
/// As for `std::ptr::copy_nonoverlapping`.
#[inline]
unsafe fn copy_out(src: *const u8, dst: *mut u8, n: usize) {
    #[cfg(target_arch = "x86_64")]
    if n >= STREAM_MIN {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};
        // SAFETY: `n` bytes are readable at `src` and writable at `dst`, not
        // overlapping (contract). The head up to 16-byte alignment of `dst`
        // and the tail are copied plainly; in between, each 16-byte store
        // goes to an aligned address inside `dst[..n]`, each load reads
        // inside `src[..n]`. SSE2 is part of x86-64. The fence orders the
        // streamed stores before any later store.
        unsafe {
            let head = dst.align_offset(16).min(n);
            std::ptr::copy_nonoverlapping(src, dst, head);
            let mut i = head;
            while i + 64 <= n {
                let s = src.add(i) as *const __m128i;
                let d = dst.add(i) as *mut __m128i;
                let a = _mm_loadu_si128(s);
                let b = _mm_loadu_si128(s.add(1));
                let c = _mm_loadu_si128(s.add(2));
                let e = _mm_loadu_si128(s.add(3));
                _mm_stream_si128(d, a);
                _mm_stream_si128(d.add(1), b);
                _mm_stream_si128(d.add(2), c);
                _mm_stream_si128(d.add(3), e);
                i += 64;
            }
            _mm_sfence();
            std::ptr::copy_nonoverlapping(src.add(i), dst.add(i), n - i);
        }
        return;
    }
    // SAFETY: the caller's contract is `copy_nonoverlapping`'s.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, n) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_frame_loses_its_header() {
        let mut o = Output::default();
        o.set_framing(true);
        o.bytes(b"ab");
        o.commit_frame();
        assert_eq!(o.buf, b"ab");
    }

    #[test]
    fn frame_header_holds_length() {
        let mut o = Output::default();
        o.set_framing(true);
        o.bytes(b"abcdef");
        o.commit_frame();
        assert_eq!(o.buf[0], FRAME);
        assert_eq!(&o.buf[1..9], &6u64.to_le_bytes());
        assert_eq!(&o.buf[9..], b"abcdef");
    }

    #[test]
    fn frame_full_after_target() {
        let mut o = Output::default();
        o.set_framing(true);
        o.bytes(&vec![0u8; FRAME_SIZE_TARGET - 1]);
        assert!(!o.frame_full());
        o.byte(0);
        assert!(o.frame_full());
        o.commit_frame();
        // The next write opens a new frame.
        o.byte(1);
        assert!(!o.frame_full());
        o.commit_frame();
        assert_eq!(o.buf.len(), 9 + FRAME_SIZE_TARGET + 1);
    }

    #[test]
    fn frame_mark_changes_with_each_commit() {
        let mut o = Output::default();
        o.set_framing(true);
        assert!(!o.frame_is_open());
        assert_eq!(o.open_frame_len(), 0);
        o.bytes(b"abc");
        assert!(o.frame_is_open());
        assert_eq!(o.open_frame_len(), 3);
        let mark = o.frame_mark();
        o.bytes(b"de");
        assert_eq!(o.frame_mark(), mark);
        o.commit_frame();
        o.bytes(b"f");
        // Same offset for the new frame (after a file flush it can be), but
        // not the same frame.
        assert_ne!(o.frame_mark(), mark);
        assert_eq!(o.open_frame_len(), 1);
    }

    #[test]
    fn large_copies_at_every_alignment() {
        let n = STREAM_MIN + 200;
        let src: Vec<u8> = (0..n + 64).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut dst = vec![0u8; n + 64];
        for (s, d, len) in [
            (0, 0, n),
            (1, 0, n),
            (0, 3, n - 5),
            (5, 17, n - 33),
            (15, 1, STREAM_MIN),
        ] {
            dst.fill(0);
            // SAFETY: both ranges are inside their vectors, which are distinct.
            unsafe { copy_out(src.as_ptr().add(s), dst.as_mut_ptr().add(d), len) };
            assert_eq!(&dst[d..d + len], &src[s..s + len]);
            assert!(dst[..d].iter().all(|&b| b == 0));
            assert!(dst[d + len..].iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn no_frames_when_not_framing() {
        let mut o = Output::default();
        o.bytes(b"abcdef");
        o.commit_frame();
        assert_eq!(o.buf, b"abcdef");
    }
}
