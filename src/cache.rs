//! `ObjectCache`: the one kind of cache the engine keeps across calls.
//!
//! Each entry is keyed by the address of a Python object and holds a strong
//! reference to that object, so the address cannot be reused by another
//! object while the entry exists. The number of entries is bounded: when
//! the cache is full it is emptied at once (the entries are cheap to
//! recompute, and this keeps the cost of a lookup flat). Every reference the
//! cache lets go of is released after its lock is: releasing a reference can
//! run a finalizer, which could call back into the engine and take the lock
//! again.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, TryLockError};

use pyo3::prelude::*;

struct Entry<V> {
    /// Keeps the key's address from being reused.
    _object: Py<PyAny>,
    value: V,
}

type Map<V> = HashMap<usize, Entry<V>>;

pub struct ObjectCache<V> {
    max: usize,
    map: Mutex<Option<Map<V>>>,
}

impl<V> ObjectCache<V> {
    /// A cache of at most `max` entries.
    pub const fn new(max: usize) -> Self {
        ObjectCache {
            max,
            map: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Map<V>>> {
        // A panic while the lock was held leaves a map that is still
        // consistent (entries are inserted whole): keep using it.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `read(value)` for the entry of `obj`, if there is one. `read` runs
    /// under the lock: it may take new references (`Py::clone_ref`,
    /// `bind(..).clone()`) but must not run Python code or drop any.
    pub fn get<R>(&self, obj: *mut pyo3::ffi::PyObject, read: impl FnOnce(&V) -> R) -> Option<R> {
        let guard = self.lock();
        guard.as_ref()?.get(&(obj as usize)).map(|e| read(&e.value))
    }

    /// Enters `value` for `obj`, replacing any entry it had; empties the
    /// cache first when it is full.
    pub fn insert(&self, obj: &Bound<'_, PyAny>, value: V) {
        let entry = Entry {
            _object: obj.clone().unbind(),
            value,
        };
        let released = {
            let mut guard = self.lock();
            let map = guard.get_or_insert_with(HashMap::new);
            let full = (map.len() >= self.max).then(|| std::mem::take(map));
            let previous = map.insert(obj.as_ptr() as usize, entry);
            (full, previous)
        };
        drop(released);
    }

    /// Applies `update` to the entry of `obj`, if there is one, and
    /// returns what it returns, which is dropped by the caller after the
    /// lock is released (a value replaced in the entry, say).
    pub fn update<R>(
        &self,
        obj: *mut pyo3::ffi::PyObject,
        update: impl FnOnce(&mut V) -> R,
    ) -> Option<R> {
        let mut guard = self.lock();
        guard
            .as_mut()?
            .get_mut(&(obj as usize))
            .map(|e| update(&mut e.value))
    }

    /// Empties the cache unless another thread is using it (then nothing
    /// happens); never waits. Returns whether it was emptied.
    pub fn try_clear(&self) -> bool {
        let released = match self.map.try_lock() {
            Ok(mut guard) => guard.take(),
            Err(TryLockError::Poisoned(e)) => e.into_inner().take(),
            Err(TryLockError::WouldBlock) => return false,
        };
        drop(released);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_releases_outside_the_lock() {
        Python::initialize();
        Python::attach(|py| {
            let cache: ObjectCache<u32> = ObjectCache::new(2);
            let objs: Vec<_> = (0..3)
                .map(|_| pyo3::types::PyList::empty(py).into_any())
                .collect();
            cache.insert(&objs[0], 0);
            cache.insert(&objs[1], 1);
            assert_eq!(cache.get(objs[1].as_ptr(), |v| *v), Some(1));
            // Full: emptied, then the new entry goes in.
            cache.insert(&objs[2], 2);
            assert_eq!(cache.get(objs[0].as_ptr(), |v| *v), None);
            assert_eq!(cache.get(objs[2].as_ptr(), |v| *v), Some(2));
            assert_eq!(
                cache.update(objs[2].as_ptr(), |v| std::mem::replace(v, 7)),
                Some(2)
            );
            assert_eq!(cache.get(objs[2].as_ptr(), |v| *v), Some(7));
            // The cache holds its keys.
            let before = objs[2].get_refcnt();
            assert!(cache.try_clear());
            assert_eq!(objs[2].get_refcnt(), before - 1);
        });
    }
}
