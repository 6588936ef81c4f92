#!/usr/bin/env bash
# Coverage-guided fuzzing of the engine's entry points (see fuzz_dumps.py).
#
#   bash fuzz/run.sh [seconds] [libFuzzer flags...]    build, then fuzz
#   bash fuzz/run.sh replay FILE...                     rerun saved inputs
#
# e.g. `FUZZ_VENV=/tmp/fuzz-venv bash fuzz/run.sh 900` from anywhere.
#
# Builds the extension with LLVM's coverage instrumentation for libFuzzer
# (the flags cargo-fuzz passes, minus a sanitizer, which needs a nightly
# compiler) into target/fuzz, installs it into its own virtual environment
# with atheris, then fuzzes for the given time (default 600 s). Environment:
# FUZZ_VENV, the venv (default .fuzz-venv in the repository; created if
# missing, and holding the instrumented build, not a normal one); PYTHON, the
# interpreter that creates it (default python3).
#
# New inputs that reach new code are kept in fuzz/corpus (reused by the next
# run). A failing input is written to crash-* (or oom-*, timeout-*) in the
# repository root, and the run stops there. Replay it with
# `bash fuzz/run.sh replay crash-...`: the instrumented extension only imports
# with libFuzzer preloaded, so plain `python fuzz/fuzz_dumps.py crash-...` in
# that venv fails with an undefined __sanitizer_cov_* symbol.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${FUZZ_VENV:-.fuzz-venv}
python=${PYTHON:-python3}
fuzzer_lib() {
    # libFuzzer has to be in the process before the instrumented extension is
    # imported: the extension registers its coverage counters with it.
    "$venv/bin/python" -c \
        'import atheris, os; print(os.path.join(atheris.path(), "ubsan_with_fuzzer.so"))'
}
if [ "${1:-}" = replay ]; then
    shift
    # Relative paths are taken from the caller's directory.
    files=()
    for f in "$@"; do files+=("$(cd "$OLDPWD" && realpath "$f")"); done
    exec env LD_PRELOAD="$(fuzzer_lib)" "$venv/bin/python" fuzz/fuzz_dumps.py "${files[@]}"
fi
seconds=${1:-600}
shift || true
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/pip" install -q atheris maturin
# With an explicit --target, RUSTFLAGS reach the crates of the extension
# only, not build scripts (which have no libFuzzer to link with).
host=$(rustc -vV | sed -n 's/^host: //p')
# A wheel of an earlier version would match the install glob below too.
rm -f target/fuzz/wheels/cloudpickle-*.whl
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=3 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares" \
CARGO_TARGET_DIR=target/fuzz \
    "$venv/bin/maturin" build --release --target "$host" -o target/fuzz/wheels \
    -i "$venv/bin/python"
"$venv/bin/pip" install -q --force-reinstall --no-deps target/fuzz/wheels/cloudpickle-*.whl
mkdir -p fuzz/corpus
LD_PRELOAD="$(fuzzer_lib)" "$venv/bin/python" fuzz/fuzz_dumps.py fuzz/corpus \
    -max_total_time="$seconds" -rss_limit_mb=4096 "$@"
