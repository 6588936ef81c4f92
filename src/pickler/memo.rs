//! The memo: which objects were already written, and under which index.
//!
//! Keyed by object address, like CPython's `PyMemoTable`. The table holds a
//! strong reference to every object in it, so an address cannot be reused by
//! another object while its entry exists (a freed temporary returned by a
//! reducer would otherwise alias a new object).
//!
//! Objects with a reference count of 1 reached from a list or dict that is
//! itself traversed once cannot be reached again while no Python code runs.
//! During a dump's pure region (see `Engine::leave_pure`), which by
//! construction runs no Python code and starts no garbage collection, those
//! are not inserted: they only get an index (the MEMOIZE/PUT opcode is
//! still written, so indices match pickle's) and are parked in `pending`,
//! without a reference. The region ends before the first object that could
//! run Python code is handled; `flush_pending` then inserts the parked
//! objects for real, all still alive, and from then on every memoized
//! object is held until the memo is cleared, as `_pickle.c` does. A parked
//! object that was freed can therefore never be looked up, and an address
//! in the table always belongs to the object written under that index.

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

/// Tables above this many slots (8 MiB) are released when cleared; smaller
/// ones are kept for the next dump, which then neither regrows nor clears
/// them (a dump of 150,000 objects spent a third of its memo time there).
const KEEP_SLOTS: usize = 1 << 19;
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
    /// Objects standing for others of the same identity (PyPy's value
    /// identity of str and bytes; nothing on CPython).
    ids: crate::py_compat::ValueIdentity,
}

// SAFETY: the raw pointers are only dereferenced (incref/decref) by methods
// that require the caller to hold the GIL; a Memo moves between threads only
// inside the thread-local pool or a PyO3 object, both GIL-protected.
unsafe impl Send for Memo {}
// SAFETY: a shared `&Memo` only allows `get`, which reads addresses without
// dereferencing them (on PyPy it also looks str and bytes up in `ids`, which
// the engine only does with the GIL held); everything touching objects
// takes `&mut self`.
unsafe impl Sync for Memo {}

impl Default for Memo {
    fn default() -> Self {
        Memo {
            slots: empty_slots(MIN_SLOTS),
            bits: MIN_SLOTS.trailing_zeros(),
            used: 0,
            generation: 1,
            owned: Vec::new(),
            pending: Vec::new(),
            next_index: 0,
            ids: Default::default(),
        }
    }
}

/// A table of `n` empty slots, from zeroed memory: `EMPTY` is all zero
/// bits, and a large zeroed allocation comes from fresh pages that need no
/// clearing, where `vec![EMPTY; n]` would write every slot (measured: a
/// quarter of the memo's cost on a dump of 150,000 objects).
fn empty_slots(n: usize) -> Vec<Slot> {
    let zeroed: Vec<[u64; 2]> = vec![[0; 2]; n];
    let mut zeroed = std::mem::ManuallyDrop::new(zeroed);
    let (ptr, len, cap) = (zeroed.as_mut_ptr(), zeroed.len(), zeroed.capacity());
    // SAFETY: `Slot` has the size and alignment of `[u64; 2]` (checked at
    // compile time below) and every field is an integer, so zero bits are a
    // valid `Slot` (`EMPTY`); the allocation is handed over whole, with its
    // length and capacity.
    unsafe { Vec::from_raw_parts(ptr.cast::<Slot>(), len, cap) }
}

const _: () = {
    assert!(std::mem::size_of::<Slot>() == std::mem::size_of::<[u64; 2]>());
    assert!(std::mem::align_of::<Slot>() == std::mem::align_of::<[u64; 2]>());
    assert!(EMPTY.key == 0 && EMPTY.index == 0 && EMPTY.generation == 0);
};

/// Bits of the slot index that come straight from the address in large
/// tables (see `hash`).
const LOCAL_BITS: u32 = 12;

#[inline(always)]
fn hash(key: usize, bits: u32) -> usize {
    const FIB: usize = 0x9E37_79B9_7F4A_7C15;
    // Object addresses are 16-byte aligned: drop the always-zero low bits.
    if bits <= LOCAL_BITS {
        // Fibonacci hashing spreads the rest over the table.
        return (key >> 4).wrapping_mul(FIB) >> (64 - bits);
    }
    // A large table does not fit in the cache: objects allocated one after
    // the other (the usual order of a graph being pickled) should land in
    // neighbouring slots. Within each 64 KiB block of addresses the slot
    // follows the address; the blocks themselves are spread by Fibonacci
    // hashing. (Measured on 50,000 instances: a third less wall time than
    // scattering every object.)
    let block = (key >> 16).wrapping_mul(FIB) >> (64 - (bits - LOCAL_BITS));
    (block << LOCAL_BITS) | ((key >> 4) & ((1 << LOCAL_BITS) - 1))
}

impl Memo {
    #[inline]
    pub fn len(&self) -> usize {
        self.next_index
    }

    /// The memo index of `obj`, if it is in the table.
    #[inline]
    pub fn get(&self, obj: *mut ffi::PyObject) -> Option<usize> {
        // SAFETY: the engine calls this with the GIL held and `obj` alive.
        let key = unsafe { self.ids.lookup(obj) } as usize;
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
        // SAFETY: GIL held and `obj` alive (contract), as `insert` requires.
        unsafe {
            let index = self.next_index;
            self.next_index += 1;
            if transient {
                self.pending.push((obj, index));
            } else {
                self.insert(obj, index);
            }
            index
        }
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
    #[inline(always)]
    unsafe fn insert(&mut self, obj: *mut ffi::PyObject, index: usize) {
        // SAFETY: GIL held and `obj` alive (contract): the table takes its own
        // reference, released by `clear`. Slot indices are masked by
        // `slots.len() - 1`, and the length is a power of two.
        unsafe {
            // Indices beyond u32 cannot be written by any opcode but MEMOIZE;
            // the engine refuses them before getting here.
            let index = index as u32;
            let obj = self.ids.record(obj);
            if (self.used + 1) * 2 > self.slots.len() {
                self.grow();
            }
            let key = obj as usize;
            let generation = self.generation;
            let mask = self.slots.len() - 1;
            let mut i = hash(key, self.bits);
            loop {
                let s = self.slots.get_unchecked_mut(i);
                if s.generation != generation {
                    *s = Slot {
                        key,
                        index,
                        generation,
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
    }

    /// Enters `objects`, none of which is in the table and no two the
    /// same, under the next indices, in order (what `put` does for each,
    /// with the table grown once beforehand and no key compared).
    ///
    /// # Safety
    /// The GIL must be held and the objects alive; none of them in the
    /// table, none twice.
    pub unsafe fn put_absent(&mut self, objects: &[*mut ffi::PyObject]) {
        // SAFETY: GIL held and the objects alive (contract): the table takes
        // a reference to each, released by `clear`. Slot indices are masked by
        // `slots.len() - 1`, and the length is a power of two.
        unsafe {
            while (self.used + objects.len()) * 2 > self.slots.len() {
                self.grow();
            }
            let generation = self.generation;
            let mask = self.slots.len() - 1;
            self.owned.reserve(objects.len());
            for &obj in objects {
                let obj = self.ids.record(obj);
                let key = obj as usize;
                let mut i = hash(key, self.bits);
                while self.slots.get_unchecked(i).generation == generation {
                    debug_assert!(self.slots.get_unchecked(i).key != key);
                    i = (i + 1) & mask;
                }
                *self.slots.get_unchecked_mut(i) = Slot {
                    key,
                    index: self.next_index as u32,
                    generation,
                };
                self.next_index += 1;
                ffi::Py_INCREF(obj);
                self.owned.push(obj);
            }
            self.used += objects.len();
        }
    }

    /// How many objects the table has taken a reference to (see
    /// `entered_since`).
    pub fn entered(&self) -> usize {
        self.owned.len()
    }

    /// The objects entered in the table since `entered()` was `start`, in
    /// order (objects memoized again are not counted twice).
    pub fn entered_since(&self, start: usize) -> &[*mut ffi::PyObject] {
        self.owned.get(start..).unwrap_or(&[])
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        let generation = self.generation;
        self.bits += 1;
        self.slots = empty_slots(1 << self.bits);
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
        // SAFETY: GIL held and the objects alive (contract), as `insert` requires.
        unsafe {
            self.clear();
            for &(obj, idx) in entries {
                self.insert(obj, idx);
            }
            self.next_index = self.used;
        }
    }

    /// Inserts the parked transient objects into the table.
    ///
    /// # Safety
    /// The GIL must be held, and no Python code may have run since the
    /// pending objects were parked (so they are all still alive).
    pub unsafe fn flush_pending(&mut self) {
        // SAFETY: GIL held, and every parked object still alive (contract).
        unsafe {
            let pending = std::mem::take(&mut self.pending);
            for &(obj, index) in &pending {
                self.insert(obj, index);
            }
            self.pending = pending;
            self.pending.clear();
        }
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
        // SAFETY: GIL held (contract); each pointer of `owned` (and of the
        // identity table's) is a reference the table took in `insert`,
        // released once here.
        unsafe {
            self.ids.clear();
            let owned = std::mem::take(&mut self.owned);
            self.pending.clear();
            self.next_index = 0;
            self.used = 0;
            if self.slots.len() > KEEP_SLOTS {
                self.slots = empty_slots(MIN_SLOTS);
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
}

impl Drop for Memo {
    fn drop(&mut self) {
        if self.owned.is_empty() {
            return;
        }
        // A Memo is only dropped with the GIL held (inside the thread-local
        // pool at thread exit it may not be: then leak rather than crash).
        // SAFETY: `Py_IsInitialized` may be called at any time, without the
        // GIL.
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
    fn large_tables_keep_neighbours_together() {
        let bits = 19;
        let a = hash(0x7f00_1234_0000, bits);
        let b = hash(0x7f00_1234_0010, bits);
        assert_eq!(b, a + 1);
        assert!(a < 1 << bits && b < 1 << bits);
        // Different blocks spread over the table.
        let slots: std::collections::HashSet<usize> = (0..64)
            .map(|i| hash(0x7f00_0000_0000 + (i << 16), bits) >> LOCAL_BITS)
            .collect();
        assert!(slots.len() > 32);
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
