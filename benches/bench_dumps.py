"""pyperf benchmark of one implementation's ``dumps`` on one workload.

Usage (normally run by ``benches/run.py``):

    python benches/bench_dumps.py --impl {pickle,project,reference} \\
        --workload NAME [pyperf options, e.g. --fast -o out.json]

The benchmark is named after the workload, so the JSON files of different
implementations can be compared with ``python -m pyperf compare_to``.
"""

import impls
import pyperf
import workloads


def add_cmdline_args(cmd, args):
    cmd.extend(("--impl", args.impl, "--workload", args.workload))


def main():
    runner = pyperf.Runner(add_cmdline_args=add_cmdline_args)
    runner.argparser.add_argument("--impl", required=True, choices=impls.IMPLS)
    runner.argparser.add_argument("--workload", required=True, choices=sorted(workloads.WORKLOADS))
    args = runner.parse_args()

    w = workloads.WORKLOADS[args.workload]
    dumps, info = impls.load(args.impl)
    timer = w.timer or workloads.time_dumps
    built = []

    def time_func(loops):
        # Build the object lazily: only the worker processes need it, the
        # pyperf manager process does not.
        if not built:
            built.append(w.make())
        return timer(loops, dumps, built[0], impls.PROTOCOL)

    metadata = {"description": f"{args.impl}: {w.doc}"}
    metadata.update({f"bench_{k}": v for k, v in info.items()})
    runner.bench_time_func(w.name, time_func, metadata=metadata)


if __name__ == "__main__":
    main()
