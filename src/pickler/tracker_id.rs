//! Tracker ids of classes (and type variables) pickled by value.
//!
//! A class pickled by value carries an id under which the loading process
//! remembers the class it rebuilt (`_reconstructors`' tracker), so that
//! several payloads carrying one class load as one class. The id is
//! derived from the definition: the BLAKE2b digest (16 bytes, in hex) of
//! the class's canonical pickle (sets in sorted order, its own id replaced
//! by a placeholder), so the same definition gets the same id in every
//! process and under every `PYTHONHASHSEED`, and payloads are
//! deterministic. Distinct live classes with identical pickles (a class
//! factory called twice with the same values) get distinct ids: the n-th
//! such class, in the order they are first pickled, gets the digest of
//! `"{digest}:{n}"`. A definition that only a custom pickler can pickle
//! (its own dispatch table or persistent_id) gets a random id, as a
//! `uuid.uuid4().hex`.
//!
//! The ids are recorded in the tracker's two weak mappings (held by the
//! bridge), under the tracker's lock, through their Python methods, as
//! the loading side's `_lookup_class_or_track` does.
//!
//! This module sits under `pickler` because minting runs a (canonical)
//! pickle, and the class reduction (`reduce::class_reduction`), which the
//! pickler calls, needs the ids: the pickler hands this module's
//! `get_or_create_tracker_id` to the reduction as a function pointer
//! (`reduce::ReduceContext::mint_tracker_id`), so `reduce` never names the
//! pickler and the modules depend one way (`pickler` -> `reduce`). Beside
//! the pickler's other parts, this module may use `canonical` directly.

use std::cell::RefCell;
use std::collections::HashSet;

use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;
use pyo3::exceptions::{PyException, PyOSError, PySystemError};
use pyo3::prelude::*;
use pyo3::types::{PyModule, PyString};

use super::canonical::canonical_dumps;
use crate::bridge::bridge;

/// The id a class stands under in its own canonical pickle (and in those
/// of classes it refers to while its digest is computed).
pub const PLACEHOLDER_TRACKER_ID: &str = "00000000000000000000000000000000";

/// The protocol of the canonical pickles digested.
const DIGEST_PROTOCOL: u8 = 5;

thread_local! {
    /// Classes (by address, alive while listed: their caller holds them)
    /// whose digest this thread is computing: they refer to themselves or
    /// to each other through the placeholder meanwhile.
    static PENDING: RefCell<HashSet<usize>> = RefCell::new(HashSet::new());
}

/// A class listed in `PENDING` while it is alive.
struct Pending(usize);

impl Pending {
    /// Lists `key`; None when this thread is computing its digest already.
    fn enter(key: usize) -> Option<Pending> {
        // Built only when listed: dropping a `Pending` unlists its key.
        PENDING
            .with(|pending| pending.borrow_mut().insert(key))
            .then(|| Pending(key))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // `try_with`: nothing to remove once the thread's set is gone.
        let _ = PENDING.try_with(|pending| pending.borrow_mut().remove(&self.0));
    }
}

/// The tracker's lock, held while alive (released on every path out, as
/// Python's `with` would).
struct TrackerLock<'py>(Bound<'py, PyAny>);

impl<'py> TrackerLock<'py> {
    fn acquire(lock: &Bound<'py, PyAny>) -> PyResult<Self> {
        // `threading.Lock.acquire` lets other threads run while it waits.
        lock.call_method0(pyo3::intern!(lock.py(), "acquire"))?;
        Ok(TrackerLock(lock.clone()))
    }
}

impl Drop for TrackerLock<'_> {
    fn drop(&mut self) {
        let py = self.0.py();
        if let Err(err) = self.0.call_method0(pyo3::intern!(py, "release")) {
            err.write_unraisable(py, Some(&self.0));
        }
    }
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(2 * bytes.len());
    for b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    text
}

/// `hashlib.blake2b(data, digest_size=16).hexdigest()`.
fn blake2b_16_hex(data: &[u8]) -> PyResult<String> {
    let mut out = [0u8; 16];
    let mut hasher = Blake2bVar::new(out.len())
        .map_err(|_| PySystemError::new_err("BLAKE2b refused a 16-byte digest"))?;
    hasher.update(data);
    hasher
        .finalize_variable(&mut out)
        .map_err(|_| PySystemError::new_err("BLAKE2b refused a 16-byte buffer"))?;
    Ok(hex(&out))
}

/// `uuid.uuid4().hex`: 16 random bytes with the version (4) and variant
/// (RFC 4122) bits set.
fn random_uuid_hex() -> PyResult<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| PyOSError::new_err(format!("no random bytes for a tracker id: {e}")))?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Ok(hex(&bytes))
}

/// The hex digest of the canonical pickle of `class_def` (a random id
/// when the default pickler cannot pickle it; exceptions that are not
/// errors, KeyboardInterrupt..., propagate).
pub fn definition_digest(class_def: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = class_def.py();
    match canonical_dumps(py, class_def, DIGEST_PROTOCOL) {
        Ok(data) => blake2b_16_hex(&data),
        Err(err) if err.is_instance_of::<PyException>(py) => random_uuid_hex(),
        Err(err) => Err(err),
    }
}

/// The tracker id of `class_def`, minted from its definition (see the
/// module docs) and recorded in both directions if it has none yet.
pub fn get_or_create_tracker_id<'py>(class_def: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = class_def.py();
    let b = bridge(py)?;
    let lock = b.tracker_lock.bind(py);
    let by_class = b.tracker_by_class.bind(py);
    let get = pyo3::intern!(py, "get");
    {
        let _locked = TrackerLock::acquire(lock)?;
        let known = by_class.call_method1(get, (class_def,))?;
        if !known.is_none() {
            return Ok(known);
        }
    }
    let digest = {
        let Some(_pending) = Pending::enter(class_def.as_ptr() as usize) else {
            // One string object, so that a payload memoizes it as the
            // Python constant was.
            return Ok(pyo3::intern!(py, PLACEHOLDER_TRACKER_ID).clone().into_any());
        };
        definition_digest(class_def)?
    };
    let _locked = TrackerLock::acquire(lock)?;
    let known = by_class.call_method1(get, (class_def,))?;
    if !known.is_none() {
        // Minted meanwhile (another thread, or a nested pickle).
        return Ok(known);
    }
    let by_id = b.tracker_by_id.bind(py);
    let mut tracker_id = PyString::new(py, &digest);
    let mut n: u64 = 0;
    loop {
        let known = by_id.call_method1(get, (&tracker_id,))?;
        if known.is_none() || known.is(class_def) {
            break;
        }
        n += 1;
        tracker_id = PyString::new(py, &blake2b_16_hex(format!("{digest}:{n}").as_bytes())?);
    }
    by_class.set_item(class_def, &tracker_id)?;
    by_id.set_item(&tracker_id, class_def)?;
    Ok(tracker_id.into_any())
}

/// `_get_or_create_tracker_id(class_def)`: the tracker id of the class or
/// type variable `class_def`, minted from its definition if it has none.
#[pyfunction]
#[pyo3(name = "_get_or_create_tracker_id")]
fn get_or_create_tracker_id_py<'py>(class_def: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    get_or_create_tracker_id(class_def)
}

/// `_definition_digest(class_def)`: the hex digest of the canonical pickle
/// of `class_def` (a random hex id when the default pickler cannot pickle
/// it).
#[pyfunction]
#[pyo3(name = "_definition_digest")]
fn definition_digest_py(class_def: &Bound<'_, PyAny>) -> PyResult<String> {
    definition_digest(class_def)
}

/// Adds these functions, and `_PLACEHOLDER_TRACKER_ID`, to the `_engine`
/// module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_function(wrap_pyfunction!(get_or_create_tracker_id_py, m)?)?;
    m.add_function(wrap_pyfunction!(definition_digest_py, m)?)?;
    m.add(
        "_PLACEHOLDER_TRACKER_ID",
        pyo3::intern!(py, PLACEHOLDER_TRACKER_ID),
    )?;
    Ok(())
}
