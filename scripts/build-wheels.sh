#!/usr/bin/env bash
# Build binary wheels and a source distribution of this package.
#
#   bash scripts/build-wheels.sh OUTDIR
#
# Writes into OUTDIR one manylinux wheel per Python interpreter found (tag
# manylinux_2_17, i.e. glibc 2.17 or newer, for the machine's architecture,
# x86-64 here) and the sdist, cloudpickle-VERSION.tar.gz, which builds from
# source with `pip install` where a Rust toolchain is present. Needs cargo
# (rustup) and network access to PyPI the first time; everything else it
# installs itself into a private virtual environment (maturin, ziglang for a
# C toolchain that links against an old glibc, auditwheel).
#
# Interpreters: by default every CPython at least as new as `requires-python`
# (pyproject.toml) found in `$(pyenv root)/versions/*` and as `python3.N` on
# PATH, one per minor version (free-threaded builds are left out). Environment:
#   WHEEL_PYTHONS="3.11 3.12"   only these versions ("pypy3.11" for PyPy,
#                               which is never built unless named here);
#   WHEEL_INTERPRETERS="/path/python3.14 ..."
#                               exactly these interpreters, no search;
#   WHEEL_MANYLINUX=2_28        the glibc baseline (default 2014 = 2_17);
#   WHEEL_TOOLS_VENV=DIR        the private venv (default .wheel-tools);
#   WHEEL_TOOLS_PYTHON=PY       its interpreter, 3.10+ (default: the newest found);
#   WHEEL_NO_SDIST=1            wheels only;
#   CARGO_TARGET_DIR            as for cargo (default target/ in the repository).
#
# Each wheel is checked before it counts as built: `auditwheel show` must
# report the manylinux tag, and no file in it may contain a path of this
# machine (the repository, $HOME, cargo's and rustup's directories, the
# target directory). The compiler embeds source paths of the crates it builds
# (in panic messages); they are rewritten with --remap-path-prefix.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}
if [ $# -ne 1 ] || [ -z "$1" ]; then usage; fi
case $1 in -h | --help) usage ;; esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)
cd "$ROOT"

# Versions of the build tools, pinned: with the same Rust toolchain, two runs give
# the same extension module, byte for byte (whatever the target directory).
TOOLS_REQS=(maturin==1.16.0 ziglang==0.17.1 auditwheel==6.8.2)
TOOLS_VENV=${WHEEL_TOOLS_VENV:-$ROOT/.wheel-tools}
MANYLINUX=${WHEEL_MANYLINUX:-2014}
case $MANYLINUX in
    2014) PLATFORM_TAG=manylinux_2_17 ;;
    2_*) PLATFORM_TAG=manylinux_$MANYLINUX ;;
    *)
        echo "WHEEL_MANYLINUX must be 2014 or 2_N (e.g. 2_28), not: $MANYLINUX" >&2
        exit 2
        ;;
esac
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export PIP_DISABLE_PIP_VERSION_CHECK=1

log() { printf '[build-wheels] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

command -v cargo > /dev/null 2>&1 \
    || die "cargo is not on PATH: building wheels needs a Rust toolchain (https://rustup.rs)"

# The oldest supported minor version of Python 3, from requires-python = ">=3.N".
MIN_MINOR=$(sed -n 's/^requires-python *= *">= *3\.\([0-9][0-9]*\)".*/\1/p' pyproject.toml)
[ -n "$MIN_MINOR" ] || die "cannot read requires-python = \">=3.N\" from pyproject.toml"

# ---------------------------------------------------------------------------
# Interpreters
# ---------------------------------------------------------------------------

# probe PY: prints "KEY GIL" for a working interpreter, where KEY is 3.N for
# CPython and pypyN.M for PyPy (N.M the Python version), GIL 1 or 0.
probe() {
    "$1" -c '
import platform, sys, sysconfig
impl = platform.python_implementation()
ver = "%d.%d" % sys.version_info[:2]
key = ver if impl == "CPython" else impl.lower() + ver
print(key, 0 if sysconfig.get_config_var("Py_GIL_DISABLED") else 1)
' 2> /dev/null
}

pyenv_root() {
    if command -v pyenv > /dev/null 2>&1; then
        pyenv root 2> /dev/null || true
    else
        echo "${PYENV_ROOT:-$HOME/.pyenv}"
    fi
}

# Candidates in order of preference, as "KEY PATH" with the KEY their name
# promises: pyenv's newest patch release of each version first, then
# python3.N / pypy3.N on PATH, in PATH order.
candidates() {
    local root dir f name
    root=$(pyenv_root)
    if [ -n "$root" ] && [ -d "$root/versions" ]; then
        find "$root/versions" -mindepth 1 -maxdepth 1 -printf '%f\n' 2> /dev/null \
            | grep -E '^(pypy)?3\.[0-9]+' | sort -rV \
            | while read -r dir; do
                for f in "$root/versions/$dir/bin/python" "$root/versions/$dir/bin/pypy3"; do
                    if [ -x "$f" ]; then
                        [[ $dir =~ ^((pypy)?3\.[0-9]+) ]] && echo "${BASH_REMATCH[1]} $f"
                        break
                    fi
                done
            done
    fi
    local IFS=:
    for dir in $PATH; do
        if [ -z "$dir" ] || [ ! -d "$dir" ]; then continue; fi
        for f in "$dir"/python3.* "$dir"/pypy3.*; do
            name=${f##*/}
            if [[ $name =~ ^(python|pypy)(3\.[0-9]+)$ ]] && [ -x "$f" ]; then
                echo "${BASH_REMATCH[1]/python/}${BASH_REMATCH[2]} $f"
            fi
        done
    done
}

supported() { # supported KEY: CPython 3.N with N >= MIN_MINOR, or PyPy
    if [[ $1 =~ ^3\.([0-9]+)$ ]]; then
        [ "${BASH_REMATCH[1]}" -ge "$MIN_MINOR" ]
    else
        [[ $1 =~ ^pypy3\.[0-9]+$ ]]
    fi
}

wanted() { # wanted KEY: is KEY in WHEEL_PYTHONS (or, if unset, a supported CPython)?
    local key=$1 w
    if [ -n "${WHEEL_PYTHONS:-}" ]; then
        for w in $WHEEL_PYTHONS; do
            [ "$w" = "$key" ] && return 0
        done
        return 1
    fi
    [[ $key != pypy* ]] && supported "$key"
}

for w in ${WHEEL_PYTHONS:-}; do
    supported "$w" || die "WHEEL_PYTHONS: $w is not a supported version (3.N with N >= $MIN_MINOR, or pypy3.N)"
done

KEYS=()
PYS=()
if [ -n "${WHEEL_INTERPRETERS:-}" ]; then
    for py in $WHEEL_INTERPRETERS; do
        info=$(probe "$py") || die "interpreter does not run: $py"
        KEYS+=("${info%% *}")
        PYS+=("$py")
    done
else
    declare -A seen=()
    while read -r key py; do
        # Only probe (run) an interpreter whose name promises a version still wanted.
        if [ -n "${seen[$key]:-}" ] || ! wanted "$key"; then
            continue
        fi
        info=$(probe "$py") || continue # e.g. a pyenv shim of a version not selected
        key=${info%% *}
        [ "${info##* }" = 1 ] || continue # free-threaded: not declared safe without the GIL
        if [ -n "${seen[$key]:-}" ] || ! wanted "$key"; then
            continue
        fi
        seen[$key]=1
        KEYS+=("$key")
        PYS+=("$py")
    done < <(candidates)
    for w in ${WHEEL_PYTHONS:-}; do
        [ -n "${seen[$w]:-}" ] || die "WHEEL_PYTHONS asks for $w: no such interpreter found"
    done
fi
[ ${#PYS[@]} -gt 0 ] || die "no Python interpreter found to build for"

# Build in version order.
mapfile -t ORDER < <(for i in "${!KEYS[@]}"; do echo "${KEYS[$i]} $i"; done | sort -V | cut -d' ' -f2)

log "interpreters:"
for i in "${ORDER[@]}"; do log "  ${KEYS[$i]}: ${PYS[$i]}"; done

# ---------------------------------------------------------------------------
# Build tools
# ---------------------------------------------------------------------------

# tools_python: the interpreter of the tools' venv: WHEEL_TOOLS_PYTHON, else the
# newest CPython found (auditwheel 6.5+ needs 3.10 or newer).
tools_python() {
    local key py info
    if [ -n "${WHEEL_TOOLS_PYTHON:-}" ]; then
        echo "$WHEEL_TOOLS_PYTHON"
        return
    fi
    while read -r key py; do
        if ! [[ $key =~ ^3\.([0-9]+)$ ]] || [ "${BASH_REMATCH[1]}" -lt 10 ]; then
            continue
        fi
        info=$(probe "$py") || continue
        if [[ ${info%% *} =~ ^3\.([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" -ge 10 ]; then
            echo "$py"
            return
        fi
    done < <(candidates)
    die "no CPython 3.10 or newer found for the build tools (set WHEEL_TOOLS_PYTHON)"
}

stamp="${TOOLS_REQS[*]}"
if [ ! -x "$TOOLS_VENV/bin/python" ] || [ "$(cat "$TOOLS_VENV/.requirements" 2> /dev/null)" != "$stamp" ]; then
    log "installing ${stamp} into $TOOLS_VENV"
    rm -rf "$TOOLS_VENV"
    tools_py=$(tools_python)
    "$tools_py" -m venv "$TOOLS_VENV"
    "$TOOLS_VENV/bin/python" -m pip install -q "${TOOLS_REQS[@]}"
    echo "$stamp" > "$TOOLS_VENV/.requirements"
fi
# maturin --zig runs `python3 -m ziglang` when no `zig` is on PATH: put the
# venv first so that this python3 is the one with ziglang.
export PATH="$TOOLS_VENV/bin:$PATH"
hash -r

# ---------------------------------------------------------------------------
# Paths that must not end up in a wheel
# ---------------------------------------------------------------------------

CARGO_HOME_DIR=${CARGO_HOME:-$HOME/.cargo}
RUSTUP_HOME_DIR=${RUSTUP_HOME:-$HOME/.rustup}
# rustc applies the last matching --remap-path-prefix: the most specific last.
# Crates from the registry become /cargo/registry/src/index.crates.io-.../NAME-VERSION/...,
# this crate's files src/..., generated files target/....
REMAPS=(
    "$HOME=/home"
    "$RUSTUP_HOME_DIR=/rustup"
    "$CARGO_HOME_DIR=/cargo"
    "$ROOT=."
    "$CARGO_TARGET_DIR=target"
)
# Added to the caller's flags (cargo reads CARGO_ENCODED_RUSTFLAGS before RUSTFLAGS).
flags=()
if [ -n "${CARGO_ENCODED_RUSTFLAGS:-}" ]; then
    IFS=$'\x1f' read -r -a flags <<< "$CARGO_ENCODED_RUSTFLAGS"
elif [ -n "${RUSTFLAGS:-}" ]; then
    read -r -a flags <<< "$RUSTFLAGS"
fi
for r in "${REMAPS[@]}"; do flags+=("--remap-path-prefix=$r"); done
# Unit separator between flags: paths with spaces survive.
CARGO_ENCODED_RUSTFLAGS=$(
    IFS=$'\x1f'
    echo "${flags[*]}"
)
export CARGO_ENCODED_RUSTFLAGS
unset RUSTFLAGS

# check_no_paths FILE: no member of the wheel or sdist FILE contains a local path.
check_no_paths() {
    python - "$1" "$HOME" "$ROOT" "$CARGO_HOME_DIR" "$RUSTUP_HOME_DIR" "$CARGO_TARGET_DIR" "$OUTDIR" << 'EOF'
import re, sys, tarfile, zipfile
archive, paths = sys.argv[1], {p.rstrip("/") for p in sys.argv[2:] if len(p.rstrip("/")) > 1}
# A path as a whole, not the same letters inside other text (an XML closing tag).
pattern = re.compile(
    b"(?<![<\\w])(" + b"|".join(re.escape(p.encode()) for p in paths) + b")(?![\\w.-])"
)
if archive.endswith(".whl"):
    with zipfile.ZipFile(archive) as z:
        members = [(n, z.read(n)) for n in z.namelist()]
else:
    with tarfile.open(archive) as t:
        members = [(m.name, t.extractfile(m).read()) for m in t.getmembers() if m.isfile()]
bad = sorted({(name, m.group(1).decode()) for name, data in members for m in pattern.finditer(data)})
for name, path in bad:
    print(f"  {name} contains {path}", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
}

# ---------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
REPORT=()
FAILED=()

build_one() { # build_one KEY PY
    local key=$1 py=$2 out="$STAGE/$1" whl tags size t0=$SECONDS
    mkdir -p "$out"
    log "building the wheel for $key ($py)"
    maturin build --release --strip --zig --compatibility "manylinux$MANYLINUX" \
        --interpreter "$py" --out "$out" || return 1
    whl=$(find "$out" -name '*.whl' -print -quit)
    [ -n "$whl" ] || {
        log "maturin wrote no wheel for $key"
        return 1
    }
    tags=$(auditwheel show "$whl" 2>&1) || {
        echo "$tags" >&2
        return 1
    }
    if ! grep -q "\"${PLATFORM_TAG}_" <<< "$tags"; then
        echo "$tags" >&2
        log "auditwheel does not give $whl the tag ${PLATFORM_TAG}"
        return 1
    fi
    check_no_paths "$whl" || {
        log "$whl holds paths of this machine (listed above)"
        return 1
    }
    mv -f "$whl" "$OUTDIR/"
    whl="$OUTDIR/${whl##*/}"
    size=$(stat -c %s "$whl")
    REPORT+=("$(printf '%-8s %7d KiB  %4ds  %s' "$key" $((size / 1024)) $((SECONDS - t0)) "${whl##*/}")")
}

for i in "${ORDER[@]}"; do
    if ! build_one "${KEYS[$i]}" "${PYS[$i]}"; then
        FAILED+=("${KEYS[$i]}")
    fi
done

if [ -z "${WHEEL_NO_SDIST:-}" ]; then
    log "building the sdist"
    mkdir -p "$STAGE/sdist"
    if maturin sdist --out "$STAGE/sdist"; then
        sdist=$(find "$STAGE/sdist" -name '*.tar.gz' -print -quit)
        if [ -n "$sdist" ] && check_no_paths "$sdist"; then
            mv -f "$sdist" "$OUTDIR/"
            sdist="$OUTDIR/${sdist##*/}"
            REPORT+=("$(printf '%-8s %7d KiB  %4s   %s' sdist $(($(stat -c %s "$sdist") / 1024)) - "${sdist##*/}")")
        else
            FAILED+=(sdist)
        fi
    else
        FAILED+=(sdist)
    fi
fi

echo
echo "Built in $OUTDIR:"
printf '  %s\n' "${REPORT[@]}"
if [ ${#FAILED[@]} -gt 0 ]; then
    echo "FAILED: ${FAILED[*]}"
    exit 1
fi
