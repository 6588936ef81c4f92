#!/usr/bin/env bash
# Wheel smoke test, run by .ci/run:
#
#   bash .ci/wheel_smoke.sh PYTHON WORKDIR
#
# Builds the wheel for the interpreter PYTHON with scripts/build-wheels.sh,
# installs it into a fresh virtual environment whose PATH has no cargo and no
# rustc (pip may not build anything, and may not reach an index), then checks
# in a process started from outside the repository that the package imports,
# that its engine is the compiled extension installed in site-packages, and
# that a closure pickled there comes back working in another process.
# WORKDIR holds the wheel, the venv and the build tools (reused across runs).
set -euo pipefail

if [ $# -ne 2 ] || [ -z "$1" ]; then
    echo "usage: bash .ci/wheel_smoke.sh PYTHON WORKDIR" >&2
    exit 2
fi
PY=$1
mkdir -p "$2"
WORK=$(cd "$2" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

rm -rf "$WORK/wheels" "$WORK/venv"
WHEEL_INTERPRETERS="$PY" WHEEL_NO_SDIST=1 WHEEL_TOOLS_VENV="${WHEEL_TOOLS_VENV:-$WORK/tools}" \
    bash "$ROOT/scripts/build-wheels.sh" "$WORK/wheels"
wheels=("$WORK"/wheels/cloudpickle-*.whl)
if [ ${#wheels[@]} -ne 1 ] || [ ! -f "${wheels[0]}" ]; then
    echo "expected one wheel in $WORK/wheels, found: ${wheels[*]}" >&2
    exit 1
fi

# PATH without any directory that holds cargo or rustc.
clean_path=
IFS=: read -r -a dirs <<< "$PATH"
for d in "${dirs[@]}"; do
    if [ -z "$d" ] || [ -e "$d/cargo" ] || [ -e "$d/rustc" ]; then
        continue
    fi
    clean_path=${clean_path:+$clean_path:}$d
done

"$PY" -m venv "$WORK/venv"
export PATH="$WORK/venv/bin:$clean_path"
export VIRTUAL_ENV="$WORK/venv"
unset PYTHONPATH PYTHONHOME
hash -r
for tool in cargo rustc; do
    if command -v "$tool" > /dev/null 2>&1; then
        echo "$tool is still on PATH: $(command -v "$tool")" >&2
        exit 1
    fi
done
echo "no cargo or rustc on PATH"

pip install --no-index --no-deps --only-binary=:all: "${wheels[0]}"

cd "$WORK" # not the repository: its python/ directory must not be importable
python - "$ROOT" << 'EOF'
import importlib.metadata
import os
import pickle
import subprocess
import sys
import sysconfig

import cloudpickle
import cloudpickle._engine as engine

source = os.path.realpath(os.path.join(sys.argv[1], "python"))
site = os.path.realpath(sysconfig.get_paths()["platlib"])
engine_file = os.path.realpath(engine.__file__)
ext = sysconfig.get_config_var("EXT_SUFFIX")
print("engine:", engine_file)
assert engine_file.endswith(ext), f"not a compiled {ext} extension: {engine_file}"
assert engine_file.startswith(site + os.sep), f"not in site-packages {site}"
assert not engine_file.startswith(source + os.sep), "loaded from the source tree"
assert os.path.realpath(cloudpickle.__file__).startswith(site + os.sep)
assert cloudpickle.__version__ == importlib.metadata.version("cloudpickle")
wheel_info = importlib.metadata.distribution("cloudpickle").read_text("WHEEL")
assert "Root-Is-Purelib: false" in wheel_info and "manylinux" in wheel_info, wheel_info


def make_adder(n):
    def add(x):
        return x + n

    return add


payload = cloudpickle.dumps(make_adder(5))
assert b"_make_function" in payload, "the closure was not pickled by value"
loader = "import pickle, sys; f = pickle.loads(sys.stdin.buffer.read()); print(f(10))"
out = subprocess.run(
    [sys.executable, "-c", loader], input=payload, capture_output=True, check=True
)
assert out.stdout.strip() == b"15", out
assert pickle.loads(payload)(1) == 6
print(f"cloudpickle {cloudpickle.__version__} from the wheel: closure round trip ok")
EOF
