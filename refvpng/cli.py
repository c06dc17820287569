"""Command line: ``refvpng verify``, ``check PATH``, ``fixtures`` and ``reproduce NAME``.

Exit codes: 0 success (every check passed), 1 a check failed, 2 unusable input or arguments.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["EXPERIMENTS", "main"]

# name -> module with a ``main(argv) -> int`` entry point
EXPERIMENTS = {
    "toy": "refvpng.experiments.toy",
    "blr": "refvpng.experiments.blr",
    "vae": "refvpng.experiments.vae",
    "vmf": "refvpng.experiments.vmf",
    "ppca": "refvpng.experiments.ppca",
}


def _verify(args) -> int:
    from refvpng.verify import CHECKS, format_table, run_checks, write_json

    unknown = [g for g in (args.only or []) if g not in CHECKS]
    if unknown:
        print(
            f"refvpng verify: unknown group(s) {', '.join(unknown)}; choose from {', '.join(CHECKS)}",
            file=sys.stderr,
        )
        return 2
    rows = run_checks(args.only)
    print(format_table(rows))
    if args.json:
        write_json(rows, args.json)
        print(f"wrote {args.json}")
    return 0 if all(r.passed for r in rows) else 1


def _check(args) -> int:
    from refvpng.conformance import check

    report = check(args.path, args.fixtures)
    out = report.format()
    print(out, file=sys.stderr if report.exit_code == 2 and not report.rows else sys.stdout)
    return report.exit_code


def _fixtures(args) -> int:
    from refvpng.conformance import export_fixtures, list_fixtures

    if args.action == "list":
        print("\n".join(list_fixtures()))
        return 0
    try:
        names = export_fixtures(args.dir)
    except OSError as exc:
        print(f"refvpng fixtures export: cannot write {args.dir}: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(names)} fixtures (.npz + .json) and INDEX.json to {args.dir}")
    return 0


def _reproduce(args, rest) -> int:
    try:
        mod = importlib.import_module(EXPERIMENTS[args.name])
    except ModuleNotFoundError as exc:
        print(f"experiment {args.name!r} is not available: {exc}", file=sys.stderr)
        return 2
    return int(mod.main(rest) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``refvpng`` console script."""
    parser = argparse.ArgumentParser(prog="refvpng", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("verify", help="run every analytic check and print the report")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    from refvpng.verify import CHECKS

    p.add_argument(
        "--only",
        nargs="+",
        metavar="GROUP",
        help="run only these check groups: " + ", ".join(CHECKS),
    )
    p = sub.add_parser(
        "check",
        help="check your implementation's outputs (NAME.npz files, or a folder of them) against the fixtures",
        description="Compare NAME.npz files holding outputs of fixture NAME with refvpng's answers. "
        "Exit 0 if all pass, 1 if a check fails, 2 if the input cannot be read.",
    )
    p.add_argument("path", help="a NAME.npz file or a directory of them")
    p.add_argument(
        "--fixtures", metavar="DIR", help="fixture folder (default: the fixtures shipped with refvpng)"
    )
    p = sub.add_parser("fixtures", help="list the golden fixtures or export them to a folder")
    fsub = p.add_subparsers(dest="action", required=True)
    fsub.add_parser("list", help="print the fixture names")
    pe = fsub.add_parser("export", help="write every fixture (.npz + .json manifest) into DIR")
    pe.add_argument("dir", metavar="DIR")
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
    if args.cmd == "check":
        return _check(args)
    if args.cmd == "fixtures":
        return _fixtures(args)
    return _reproduce(args, args.rest)


if __name__ == "__main__":
    sys.exit(main())
