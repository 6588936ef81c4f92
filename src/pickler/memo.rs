//! The memo: which objects were already written, and under which index.
//!
//! Keyed by object address, like CPython's `PyMemoTable`. The table holds a
//! strong reference to every object in it, so an address cannot be reused by
//! another object while its entry exists (a freed temporary returned by a
//! reducer would otherwise alias a new object).
//!
//! Objects with a reference count of 1 reached from a list or dict that is
//! itself traversed once cannot be reached again while no Python code runs.
//! Those are not inserted: they only get an index (the MEMOIZE/PUT opcode is
//! still written, so indices match pickle's) and are parked in `pending`.
//! Before the engine runs any Python code, `flush_pending` inserts them for
//! real, because from then on anything may happen.

use pyo3::ffi;

#[derive(Clone, Copy)]
struct Slot {
    key: usize,
    index: u32,
    generation: u32,
}

const EMPTY: Slot = Slot {
    key: 0,
    index: 0,
    generation: 0,
};

/// Tables above this many slots are released when cleared.
const KEEP_SLOTS: usize = 1 << 18;
const MIN_SLOTS: usize = 64;

pub struct Memo {
    slots: Vec<Slot>,
    /// log2 of `slots.len()`.
    bits: u32,
    /// Entries inserted in the current generation.
    used: usize,
    /// Slots whose `generation` differs from this one are empty, which
    /// makes clearing O(1) for the table itself.
    generation: u32,
    /// Strong references held for the table's entries.
    owned: Vec<*mut ffi::PyObject>,
    /// Transient objects: indexed but not in the table (see module docs).
    pending: Vec<(*mut ffi::PyObject, usize)>,
    /// Next memo index to hand out.
    next_index: usize,
}

// SAFETY: the raw pointers are only dereferenced (incref/decref) by methods
// that require the caller to hold the GIL; a Memo moves between threads only
// inside the thread-local pool or a PyO3 object, both GIL-protected.
unsafe impl Send for Memo {}
// SAFETY: a shared `&Memo` only allows `get`, which reads addresses without
// dereferencing them; everything touching objects takes `&mut self`.
unsafe impl Sync for Memo {}

impl Default for Memo {
    fn default() -> Self {
        Memo {
            slots: vec![EMPTY; MIN_SLOTS],
            bits: MIN_SLOTS.trailing_zeros(),
            used: 0,
            generation: 1,
            owned: Vec::new(),
            pending: Vec::new(),
            next_index: 0,
        }
    }
}

#[inline(always)]
fn hash(key: usize, bits: u32) -> usize {
    // Object addresses are 16-byte aligned: drop the always-zero low bits,
    // then Fibonacci hashing spreads the rest over the table.
    (key >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)
}

impl Memo {
    #[inline]
    pub fn len(&self) -> usize {
        self.next_index
    }

    /// The memo index of `obj`, if it is in the table.
    #[inline]
    pub fn get(&self, obj: *mut ffi::PyObject) -> Option<usize> {
        let key = obj as usize;
        let mask = self.slots.len() - 1;
        let mut i = hash(key, self.bits);
        loop {
            let s = &self.slots[i];
            if s.generation != self.generation {
                return None;
            }
            if s.key == key {
                return Some(s.index as usize);
            }
            i = (i + 1) & mask;
        }
    }

    /// Hands out the next index for `obj`. When `transient` is set the
    /// object is parked instead of inserted (see module docs).
    ///
    /// # Safety
    /// The GIL must be held and `obj` must be a live object.
    #[inline]
    pub unsafe fn put(&mut self, obj: *mut ffi::PyObject, transient: bool) -> usize {
        let index = self.next_index;
        self.next_index += 1;
        if transient {
            self.pending.push((obj, index));
        } else {
            self.insert(obj, index);
        }
        index
    }

    /// Hands out the next index without recording any object (see
    /// `Engine::memo_skip`).
    #[inline]
    pub fn skip(&mut self) -> usize {
        let index = self.next_index;
        self.next_index += 1;
        index
    }

    /// # Safety
    /// The GIL must be held and `obj` must be a live object.
    unsafe fn insert(&mut self, obj: *mut ffi::PyObject, index: usize) {
        // Indices beyond u32 cannot be written by any opcode but MEMOIZE;
        // the engine refuses them before getting here.
        let index = index as u32;
        if (self.used + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let key = obj as usize;
        let mask = self.slots.len() - 1;
        let mut i = hash(key, self.bits);
        loop {
            let s = &mut self.slots[i];
            if s.generation != self.generation {
                *s = Slot {
                    key,
                    index,
                    generation: self.generation,
                };
                break;
            }
            if s.key == key {
                // Re-memoizing an object (possible through the persistent
                // memo of a Pickler): keep the newer index, as pickle does.
                s.index = index;
                return;
            }
            i = (i + 1) & mask;
        }
        self.used += 1;
        ffi::Py_INCREF(obj);
        self.owned.push(obj);
    }

    fn grow(&mut self) {
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; 0]);
        let generation = self.generation;
        self.bits += 1;
        self.slots = vec![EMPTY; 1 << self.bits];
        let mask = self.slots.len() - 1;
        for s in old.into_iter().filter(|s| s.generation == generation) {
            let mut i = hash(s.key, self.bits);
            while self.slots[i].generation == generation {
                i = (i + 1) & mask;
            }
            self.slots[i] = s;
        }
    }

    /// The table's entries as (object, index), in insertion order.
    pub fn entries(&self) -> Vec<(*mut ffi::PyObject, usize)> {
        self.owned
            .iter()
            .filter_map(|&obj| self.get(obj).map(|idx| (obj, idx)))
            .collect()
    }

    /// Replaces the contents with `entries`, as assigning a pickler's
    /// `memo` does: the next index handed out is the number of entries.
    ///
    /// # Safety
    /// The GIL must be held and the objects alive.
    pub unsafe fn set_entries(&mut self, entries: &[(*mut ffi::PyObject, usize)]) {
        self.clear();
        for &(obj, idx) in entries {
            self.insert(obj, idx);
        }
        self.next_index = self.used;
    }

    /// Inserts the parked transient objects into the table.
    ///
    /// # Safety
    /// The GIL must be held, and no Python code may have run since the
    /// pending objects were parked (so they are all still alive).
    pub unsafe fn flush_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        for &(obj, index) in &pending {
            self.insert(obj, index);
        }
        self.pending = pending;
        self.pending.clear();
    }

    /// Forgets parked objects without inserting them (end of a one-shot
    /// dump: they can never be looked up).
    pub fn drop_pending(&mut self) {
        self.pending.clear();
    }

    /// Empties the memo, releasing its references.
    ///
    /// # Safety
    /// The GIL must be held. Decrefs may run arbitrary finalizers, so the
    /// caller must not rely on other engine state being borrowed.
    pub unsafe fn clear(&mut self) {
        let owned = std::mem::take(&mut self.owned);
        self.pending.clear();
        self.next_index = 0;
        self.used = 0;
        if self.slots.len() > KEEP_SLOTS {
            self.slots = vec![EMPTY; MIN_SLOTS];
            self.bits = MIN_SLOTS.trailing_zeros();
            self.generation = 1;
        } else if self.generation == u32::MAX {
            self.slots.fill(EMPTY);
            self.generation = 1;
        } else {
            self.generation += 1;
        }
        for obj in &owned {
            ffi::Py_DECREF(*obj);
        }
        // Keep the allocation for the next call.
        let mut owned = owned;
        owned.clear();
        if self.owned.is_empty() {
            self.owned = owned;
        }
    }
}

impl Drop for Memo {
    fn drop(&mut self) {
        if self.owned.is_empty() {
            return;
        }
        // A Memo is only dropped with the GIL held (inside the thread-local
        // pool at thread exit it may not be: then leak rather than crash).
        if unsafe { ffi::Py_IsInitialized() } != 0 && pyo3_gil_held() {
            // SAFETY: the GIL is held (checked above).
            unsafe { self.clear() };
        }
    }
}

fn pyo3_gil_held() -> bool {
    // SAFETY: PyGILState_Check only reads the thread state.
    unsafe { ffi::PyGILState_Check() != 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(i: usize) -> *mut ffi::PyObject {
        (0x10000 + i * 16) as *mut ffi::PyObject
    }

    #[test]
    fn hash_uses_high_bits() {
        let a = hash(0x7f00_0000_1000, 6);
        let b = hash(0x7f00_0000_1010, 6);
        assert_ne!(a, b);
        assert!(a < 64 && b < 64);
    }

    #[test]
    fn pending_entries_are_not_found_but_take_indices() {
        let mut m = Memo::default();
        // SAFETY: transient puts never touch the (fake) objects.
        unsafe {
            assert_eq!(m.put(fake(1), true), 0);
            assert_eq!(m.put(fake(2), true), 1);
        }
        assert_eq!(m.get(fake(1)), None);
        assert_eq!(m.len(), 2);
        m.drop_pending();
        assert_eq!(m.len(), 2);
    }
}
