#!/usr/bin/env bash
# Runs the reference cloudpickle's own public test suite, unmodified, against the
# cloudpickle installed in the active environment (this package).
#
#   bash scripts/reference-suite.sh CHECKOUT [PYTEST ARGS...]
#
# CHECKOUT is a clone of https://github.com/cloudpipe/cloudpickle (its tests are not in
# the sdist on PyPI, and are never copied into this repository). Its `tests/` folder is
# copied to a temporary directory, so that only the installed package can be imported
# as `cloudpickle` (the checkout's own package must not shadow it). The suite's helper
# package `tests/cloudpickle_testpkg` and `psutil` are installed into the environment.
#
# pytest runs with `-s`, as the reference's own CI does: under output capture,
# `sys.stdout` is pytest's EncodedFile, which neither implementation pickles, so
# test_pickling_file_handles and test_pickling_special_file_handles fail there with
# either one.
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: $0 CHECKOUT [PYTEST ARGS...]" >&2; exit 2; }
CHECKOUT="$(cd "$1" && pwd)"
shift
[ -f "$CHECKOUT/tests/cloudpickle_test.py" ] || {
    echo "$CHECKOUT has no tests/cloudpickle_test.py (not a cloudpickle checkout?)" >&2
    exit 2
}

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cp -r "$CHECKOUT/tests" "$WORK/tests"

python -m pip install -q psutil "$WORK/tests/cloudpickle_testpkg"
# The suite must exercise this package, not another cloudpickle.
python - << 'EOF'
import cloudpickle
import cloudpickle.cloudpickle as cp

assert hasattr(cp, "_engine"), f"{cloudpickle.__file__} is not the cloudpickle with the Rust engine"
print(f"testing {cloudpickle.__file__} (cloudpickle {cloudpickle.__version__})")
EOF

cd "$WORK"
PYTHONPATH="$WORK:$WORK/tests" python -m pytest -r s -s -q -p no:cacheprovider \
    tests/cloudpickle_test.py tests/cloudpickle_file_test.py tests/test_backward_compat.py "$@"
