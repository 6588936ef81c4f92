/work/main/target39/release/deps/psm-1939c5d2ffe64fac.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/psm-0.1.32/src/lib.rs

/work/main/target39/release/deps/libpsm-1939c5d2ffe64fac.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/psm-0.1.32/src/lib.rs

/work/main/target39/release/deps/libpsm-1939c5d2ffe64fac.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/psm-0.1.32/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/psm-0.1.32/src/lib.rs:
