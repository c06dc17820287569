"""Command line: ``refvpng verify`` and ``refvpng reproduce NAME``."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> module with a ``main(argv) -> int`` entry point
EXPERIMENTS = {
    "toy": "refvpng.experiments.toy",
    "blr": "refvpng.experiments.blr",
    "vae": "refvpng.experiments.vae",
    "ppca": "refvpng.experiments.ppca",
}


def _verify(args) -> int:
    from refvpng.verify import format_table, run_checks, write_json

    rows = run_checks(args.only)
    print(format_table(rows))
    if args.json:
        write_json(rows, args.json)
        print(f"wrote {args.json}")
    return 0 if all(r.passed for r in rows) else 1


def _reproduce(args, rest) -> int:
    try:
        mod = importlib.import_module(EXPERIMENTS[args.name])
    except ModuleNotFoundError as exc:
        print(f"experiment {args.name!r} is not available: {exc}", file=sys.stderr)
        return 2
    return int(mod.main(rest) or 0)


def main(argv=None) -> int:
    """Entry point of the ``refvpng`` console script."""
    parser = argparse.ArgumentParser(prog="refvpng", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("verify", help="run every analytic check and print the report")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.add_argument("--only", nargs="+", metavar="GROUP", help="run only these check groups")
    p = sub.add_parser(
        "reproduce",
        help="run one experiment of the paper (options after NAME go to it; see NAME -h)",
    )
    p.add_argument("name", choices=sorted(EXPERIMENTS))
    args, rest = parser.parse_known_args(argv)
    if args.cmd == "verify":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return _verify(args)
    return _reproduce(args, rest)


if __name__ == "__main__":
    sys.exit(main())
