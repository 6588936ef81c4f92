/work/main/target39/release/deps/cloudpickle_engine.d: src/lib.rs src/api.rs src/bridge.rs src/by_value.rs src/cache.rs src/errors.rs src/lookup.rs src/pickler/mod.rs src/pickler/fast_paths.rs src/pickler/memo.rs src/pickler/opcodes.rs src/pickler/output.rs src/pickler/atoms.rs src/pickler/buffer.rs src/pickler/canonical.rs src/pickler/containers.rs src/pickler/dispatch.rs src/pickler/fragment.rs src/pickler/function_writer.rs src/pickler/global.rs src/pickler/instance.rs src/pickler/partial.rs src/pickler/reduce.rs src/pickler/trail.rs src/py.rs src/reconstruct.rs src/reconstruct_class.rs src/reduce/mod.rs src/reduce/function_reduction.rs

/work/main/target39/release/deps/libcloudpickle_engine.so: src/lib.rs src/api.rs src/bridge.rs src/by_value.rs src/cache.rs src/errors.rs src/lookup.rs src/pickler/mod.rs src/pickler/fast_paths.rs src/pickler/memo.rs src/pickler/opcodes.rs src/pickler/output.rs src/pickler/atoms.rs src/pickler/buffer.rs src/pickler/canonical.rs src/pickler/containers.rs src/pickler/dispatch.rs src/pickler/fragment.rs src/pickler/function_writer.rs src/pickler/global.rs src/pickler/instance.rs src/pickler/partial.rs src/pickler/reduce.rs src/pickler/trail.rs src/py.rs src/reconstruct.rs src/reconstruct_class.rs src/reduce/mod.rs src/reduce/function_reduction.rs

src/lib.rs:
src/api.rs:
src/bridge.rs:
src/by_value.rs:
src/cache.rs:
src/errors.rs:
src/lookup.rs:
src/pickler/mod.rs:
src/pickler/fast_paths.rs:
src/pickler/memo.rs:
src/pickler/opcodes.rs:
src/pickler/output.rs:
src/pickler/atoms.rs:
src/pickler/buffer.rs:
src/pickler/canonical.rs:
src/pickler/containers.rs:
src/pickler/dispatch.rs:
src/pickler/fragment.rs:
src/pickler/function_writer.rs:
src/pickler/global.rs:
src/pickler/instance.rs:
src/pickler/partial.rs:
src/pickler/reduce.rs:
src/pickler/trail.rs:
src/py.rs:
src/reconstruct.rs:
src/reconstruct_class.rs:
src/reduce/mod.rs:
src/reduce/function_reduction.rs:
