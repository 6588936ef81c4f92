//! The Rust engine of the `cloudpickle` package, exposed to Python as
//! `cloudpickle._engine`.
//!
//! Unsafe code is marked and justified: every unsafe operation sits in an
//! `unsafe` block (also inside an `unsafe fn`) whose `SAFETY:` comment says
//! why it is sound there, and every `unsafe fn` has a `# Safety` section
//! saying what its callers must guarantee.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(clippy::missing_safety_doc)]

mod api;
mod bridge;
mod by_value;
mod cache;
mod errors;
mod lookup;
mod pickler;
mod py;
mod py_compat;
mod reconstruct;
mod reconstruct_class;
mod reduce;
mod rules_api;
mod typevar_reduction;
mod which_module;

use pyo3::prelude::*;

#[pymodule]
#[pyo3(name = "_engine")]
fn engine_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    py::init(m.py())?;
    pickler::fast_paths::init_from_env();
    m.add_function(wrap_pyfunction!(api::dumps, m)?)?;
    m.add_function(wrap_pyfunction!(api::dump, m)?)?;
    m.add_function(wrap_pyfunction!(api::pickler_dump, m)?)?;
    m.add_function(wrap_pyfunction!(api::reducer_override, m)?)?;
    m.add_function(wrap_pyfunction!(bridge::install_bridge, m)?)?;
    m.add_function(wrap_pyfunction!(api::set_large_payload_threshold, m)?)?;
    m.add_function(wrap_pyfunction!(api::set_fast_paths, m)?)?;
    m.add_function(wrap_pyfunction!(api::in_pure_region, m)?)?;
    m.add_function(wrap_pyfunction!(pickler::canonical::canonical_dumps_py, m)?)?;
    m.add_function(wrap_pyfunction!(reconstruct::make_function, m)?)?;
    m.add_function(wrap_pyfunction!(reconstruct::function_setstate, m)?)?;
    m.add_function(wrap_pyfunction!(reconstruct::make_cell, m)?)?;
    m.add_function(wrap_pyfunction!(reconstruct::make_empty_cell, m)?)?;
    m.add_function(wrap_pyfunction!(reconstruct_class::make_skeleton_class, m)?)?;
    m.add_function(wrap_pyfunction!(reconstruct_class::class_setstate, m)?)?;
    m.add_function(wrap_pyfunction!(
        reconstruct_class::keeps_lazy_annotations,
        m
    )?)?;
    m.add_function(wrap_pyfunction!(reduce::release_class_cache, m)?)?;
    rules_api::register(m)?;
    reduce::code_reduction::register(m)?;
    reduce::type_reducers::register(m)?;
    pickler::tracker_id::register(m)?;
    typevar_reduction::register(m)?;
    m.add_class::<api::PicklerState>()?;
    Ok(())
}
