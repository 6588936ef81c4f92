"""``python -m cloudpickle inspect FILE``: what a payload will import and
carry, read without loading it (see :mod:`cloudpickle._inspection`).

Exit status: 0 when the payload was read (and, with ``--allow``, imports
nothing else); 1 when it imports a module outside the allow-list; 2 when
the file cannot be read as a pickle.
"""

import argparse
import json
import sys

from ._inspection import PayloadError, inspect_pickle


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m cloudpickle",
        description="Tools for cloudpickle payloads.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser(
        "inspect",
        help="list what a payload imports and carries by value, without loading it",
    )
    inspect.add_argument("file", help="a file holding one pickle ('-' for standard input)")
    inspect.add_argument(
        "--allow",
        action="append",
        default=None,
        metavar="MODULE",
        help="a module the payload may import (its submodules too); repeatable. "
        "With at least one --allow, any other import is reported and the exit "
        "status is 1.",
    )
    inspect.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    try:
        if args.file == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as f:
                data = f.read()
    except OSError as exc:
        print(f"cloudpickle inspect: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        report = inspect_pickle(data)
    except PayloadError as exc:
        print(f"cloudpickle inspect: {args.file}: {exc}", file=sys.stderr)
        return 2

    disallowed = report.disallowed(args.allow) if args.allow is not None else []
    if args.json:
        out = report.as_dict()
        out["disallowed_imports"] = disallowed
        print(json.dumps(out, indent=2))
    else:
        print(report)
        if disallowed:
            print("WARNING: imports outside the allow-list: " + ", ".join(disallowed))
    return 1 if disallowed else 0


if __name__ == "__main__":
    sys.exit(main())
