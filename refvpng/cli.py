"""Command line: ``refvpng verify`` and ``refvpng reproduce NAME``."""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["EXPERIMENTS", "main"]

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
        help="run one experiment of the paper (options after NAME go to it: NAME --help)",
        add_help=False,
    )
    p.add_argument("name", choices=sorted(EXPERIMENTS), help="experiment")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="options of the experiment")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["reproduce"] and (len(argv) == 1 or argv[1] in ("-h", "--help")):
        print("usage: refvpng reproduce NAME [options]; NAME in " + ", ".join(sorted(EXPERIMENTS)))
        print("options of one experiment: refvpng reproduce NAME --help")
        return 0
    args = parser.parse_args(argv)
    if args.cmd == "verify":
        return _verify(args)
    return _reproduce(args, args.rest)


if __name__ == "__main__":
    sys.exit(main())
