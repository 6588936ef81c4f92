//! The switch that turns the engine's fast paths off, and the per-thread
//! record of the memo's pure region, which tests read.
//!
//! Every fast path must write the same bytes as the general path it
//! shortcuts. With the switch off (`CLOUDPICKLE_FAST_PATHS=0` in the
//! environment at import, or `cloudpickle._engine._set_fast_paths(False)`),
//! the engine takes the general path everywhere: every object memoized and
//! looked up (no parking, see `memo`), reductions built as tuples and
//! walked (functions, `functools.partial`), code objects' arguments
//! written afresh (no recorded fragments), instances reduced by
//! `__reduce_ex__`. Tests compare the two outputs byte for byte.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(true);

thread_local! {
    /// Whether a dump on this thread is inside its pure region now.
    static PURE: Cell<bool> = const { Cell::new(false) };
}

/// Whether fast paths are on.
#[inline(always)]
pub fn enabled() -> bool {
    // Off where they would read CPython's object layouts (PyPy).
    crate::py_compat::LAYOUT_READS && ENABLED.load(Ordering::Relaxed)
}

/// Turns fast paths on or off; returns the previous setting.
pub fn set_enabled(on: bool) -> bool {
    ENABLED.swap(on, Ordering::Relaxed)
}

/// Reads `CLOUDPICKLE_FAST_PATHS` once, at import.
pub fn init_from_env() {
    if let Ok(v) = std::env::var("CLOUDPICKLE_FAST_PATHS") {
        set_enabled(!matches!(v.trim(), "0" | "false" | "no" | "off"));
    }
}

/// A dump starts, in its pure region if `pure`; returns the state to give
/// back to `exit_pure` (a dump nested in Python code run by another one
/// finds that one outside its pure region).
#[inline(always)]
pub fn enter_pure(pure: bool) -> bool {
    PURE.with(|p| p.replace(pure))
}

/// The dump on this thread left its pure region.
#[inline(always)]
pub fn left_pure() {
    PURE.with(|p| p.set(false));
}

/// A dump ends; `outer` is what `enter_pure` returned.
#[inline(always)]
pub fn exit_pure(outer: bool) {
    PURE.with(|p| p.set(outer));
}

/// Whether a dump on this thread is in its pure region: Python code that
/// runs while this is true (a finalizer, a `gc.callbacks` entry, a profile
/// hook) shows a hole in the engine's proof that none can.
pub fn in_pure_region() -> bool {
    PURE.with(|p| p.get())
}
