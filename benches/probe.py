"""Check one implementation on one workload before timing it.

Usage: python benches/probe.py --impl {pickle,project,reference} --workload NAME

Prints one JSON object: whether ``dumps`` works on the workload, the payload
size, whether ``pickle.loads`` gives back an equivalent object, and whether the
payload is byte-identical to ``pickle.dumps``. The driver runs this in a
separate process per (implementation, workload) so that an implementation that
fails, or crashes, on one workload only loses that workload.
"""

import argparse
import json
import pickle
import sys
import traceback

import impls
import workloads


def probe(impl, name):
    w = workloads.WORKLOADS[name]
    result = {"impl": impl, "workload": name, "status": "ok"}
    try:
        dumps, info = impls.load(impl)
    except impls.WrongImplementation as exc:
        result.update(status="setup-error", error=str(exc))
        return result
    result["info"] = info
    if impl == "pickle" and not w.pickle_ok:
        result["status"] = "n/a"
        return result

    obj = w.make()
    try:
        payload = dumps(obj, impls.PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        result.update(status="error", error=_describe(exc))
        return result
    result["size"] = len(payload)

    try:
        loaded = pickle.loads(payload)
        same = w.same(obj, loaded) if w.same is not None else obj == loaded
    except Exception as exc:  # noqa: BLE001
        result.update(status="error", error="loading the payload: " + _describe(exc))
        return result
    if not same:
        result.update(status="error", error="pickle.loads(payload) differs from the original")
        return result

    if w.pickle_ok and impl != "pickle":
        try:
            result["same_bytes_as_pickle"] = payload == pickle.dumps(obj, impls.PROTOCOL)
        except Exception:  # noqa: BLE001
            result["same_bytes_as_pickle"] = None
    return result


def _describe(exc):
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", required=True, choices=impls.IMPLS)
    parser.add_argument("--workload", required=True, choices=sorted(workloads.WORKLOADS))
    args = parser.parse_args()
    try:
        result = probe(args.impl, args.workload)
    except Exception:  # noqa: BLE001
        result = {
            "impl": args.impl,
            "workload": args.workload,
            "status": "error",
            "error": traceback.format_exc(limit=3).strip().splitlines()[-1],
        }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
