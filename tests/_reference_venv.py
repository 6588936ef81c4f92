"""Virtual environments holding a release of the pure-Python cloudpickle, for
the tests that compare with it (not a test module).

Each environment lives in the temporary directory, named after the release,
the interpreter's cache tag and a hash of its base prefix
(``cloudpickle-reference-<version>-<tag>-<hash>``); it is created on first use
and reused afterwards, by later sessions too. An environment is built next to
its final place and renamed into it when complete, so that concurrent or
interrupted runs never see half of one.

Creating one costs a few seconds: the environment gets no pip of its own
when the running interpreter's pip can install into it (``pip --python``);
otherwise it is a regular environment with pip. Tests are skipped only when
the package index cannot be reached.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

import pytest

# Enough for pip to download and install a small pure-Python package.
_PIP_TIMEOUT = 900


def venv_python(venv_dir):
    """The interpreter of the environment ``venv_dir``."""
    if os.name == "nt":
        return os.path.join(venv_dir, "Scripts", "python.exe")
    return os.path.join(venv_dir, "bin", "python")


def reference_info(python):
    """``(cloudpickle version, python version)`` seen by ``python``, or None
    when it cannot import cloudpickle or imports this package instead."""
    script = (
        "import sys, cloudpickle\n"
        "print(cloudpickle.__version__)\n"
        "print('{}.{}'.format(*sys.version_info[:2]))\n"
        "print(hasattr(cloudpickle.cloudpickle, '_engine'))\n"
    )
    proc = subprocess.run(
        [python, "-I", "-c", script],
        check=False,
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        timeout=120,
    )
    if proc.returncode != 0:
        return None
    version, python_version, has_engine = proc.stdout.split()
    if has_engine == "True":
        return None
    return version, python_version


def index_reachable():
    """Whether the package index answers for cloudpickle."""
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    try:
        with urllib.request.urlopen(f"{index}/cloudpickle/", timeout=20) as response:
            return response.status < 400
    except Exception:  # noqa: BLE001 - any failure means "cannot reach it"
        return False


def _run(command):
    return subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=_PIP_TIMEOUT
    )


def _outer_pip_can_target():
    """Whether this interpreter's pip installs into other environments
    (``pip --python``, pip 22.3 and later)."""
    proc = _run([sys.executable, "-m", "pip", "--version"])
    if proc.returncode != 0:
        return False
    try:
        major, minor = (int(part) for part in proc.stdout.split()[1].split(".")[:2])
    except (IndexError, ValueError):
        return False
    return (major, minor) >= (22, 3)


def _pip_install_args(requirement):
    return ["install", "--disable-pip-version-check", "--no-input", "-q", requirement]


def _install(staging, requirement):
    """Create the environment ``staging`` with ``requirement`` installed;
    return the failed process, or None on success."""
    if _outer_pip_can_target():
        proc = _run([sys.executable, "-m", "venv", "--without-pip", staging])
        if proc.returncode != 0:
            return proc
        python = venv_python(staging)
        proc = _run(
            [sys.executable, "-m", "pip", "--python", python, *_pip_install_args(requirement)]
        )
        if proc.returncode == 0:
            return None
        shutil.rmtree(staging, ignore_errors=True)
    # A regular environment, with its own pip.
    proc = _run([sys.executable, "-m", "venv", staging])
    if proc.returncode != 0:
        return proc
    proc = _run([venv_python(staging), "-m", "pip", *_pip_install_args(requirement)])
    return None if proc.returncode == 0 else proc


def create_reference_venv(venv_dir, version, skip_hint=""):
    """Create ``venv_dir`` with ``cloudpickle==version`` installed; skip the
    test when the package index is unreachable (saying ``skip_hint``), fail it
    on any other error."""
    staging = f"{venv_dir}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        failed = _install(staging, f"cloudpickle=={version}")
        if failed is not None:
            if not index_reachable():
                pytest.skip(
                    f"cannot install cloudpickle=={version}: the package index is "
                    f"unreachable{skip_hint}"
                )
            pytest.fail(
                f"cannot create an environment with cloudpickle=={version}:\n"
                f"{failed.args}\n{failed.stdout}\n{failed.stderr}"
            )
        try:
            os.rename(staging, venv_dir)
        except OSError:
            # Another run finished first: use its environment.
            if not os.path.isdir(venv_dir):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def reference_python(version, override_var=None):
    """The interpreter of a cached environment where cloudpickle is the
    pure-Python release ``version``, for the running Python version.

    When the environment variable ``override_var`` is set, it names the
    interpreter to use instead (it must have that release).
    """
    ours = "{}.{}".format(*sys.version_info[:2])
    override = os.environ.get(override_var) if override_var else None
    if override:
        info = reference_info(override)
        if info != (version, ours):
            pytest.fail(
                f"{override_var}={override} must be a Python {ours} with the "
                f"pure-Python cloudpickle {version}; it reports {info}"
            )
        return override
    hint = f" (set {override_var} to an interpreter that has it)" if override_var else ""
    # One environment per release and base interpreter.
    tag = hashlib.sha256(sys.base_prefix.encode()).hexdigest()[:10]
    name = f"cloudpickle-reference-{version}-{sys.implementation.cache_tag}-{tag}"
    venv_dir = os.path.join(tempfile.gettempdir(), name)
    python = venv_python(venv_dir)
    if not (os.path.exists(python) and reference_info(python) == (version, ours)):
        if os.path.exists(python):
            skip_if_unimportable_here(python, version)
        shutil.rmtree(venv_dir, ignore_errors=True)
        create_reference_venv(venv_dir, version, hint)
    info = reference_info(python)
    if info is None:
        skip_if_unimportable_here(python, version)
    assert info == (version, ours), info
    return python


def skip_if_unimportable_here(python, version):
    """Skip on PyPy when the release installed for ``python`` cannot be
    imported there: cloudpickle 3.x's ``Pickler`` reads
    ``pickle.Pickler.dispatch``, which PyPy's C-accelerated pickle lacks."""
    if sys.implementation.name != "pypy":
        return
    proc = subprocess.run(
        [python, "-I", "-c", "import cloudpickle"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        timeout=120,
    )
    if proc.returncode != 0:
        error = (proc.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"the reference cloudpickle {version} does not import on PyPy: {error}")
