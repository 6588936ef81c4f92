//! Passes PyO3's interpreter cfgs (`PyPy`, `Py_3_x`, ...) to this crate, so
//! `src/py_compat.rs` can pick the CPython or the PyPy accessors.

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
