"""Command line: ``python -m laefast demo`` and ``python -m laefast bench``."""

import argparse
import sys

__all__ = ["main"]

from ._validation import METHODS as _METHODS

# The bench command's problems (laefast._bench.PROBLEMS, which imports
# more than a parser needs).
_PROBLEMS = ("paper", "spiked", "digits")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m laefast",
        description="PCA by regularized linear autoencoders.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="fit all six methods on the paper's default problem and "
                     "compare with laefast.reference")
    demo.add_argument("--methods", nargs="+", default=None,
                      help="methods to run (default: all six)")
    demo.add_argument("--no-reference", action="store_true",
                      help="skip the (slow) NumPy reference runs")
    bench = sub.add_parser(
        "bench", help="error per second of the six methods against "
                      "laefast.reference and against eigh / scikit-learn "
                      "peers, as a table (the asv suite's comparison)",
        description="Time laefast's six methods, laefast.reference and the "
                    "peers (numpy/scipy eigh, scikit-learn PCA) on the chosen "
                    "problems; print one table per problem with the machine, "
                    "BLAS and thread counts that produced it.  Progress goes "
                    "to stderr.")
    bench.add_argument("--problems", nargs="+", choices=_PROBLEMS,
                       default=list(_PROBLEMS), metavar="PROBLEM",
                       help="problems to run, from %(choices)s (default: all; "
                            "digits needs scikit-learn)")
    bench.add_argument("--methods", nargs="+", choices=_METHODS,
                       default=list(_METHODS), metavar="METHOD",
                       help="methods to run (default: all six)")
    bench.add_argument("--repeats", type=int, default=3,
                       help="best of this many runs per row (default 3)")
    bench.add_argument("--budget", type=float, default=0.5,
                       help="stop repeating a row once it has spent this many "
                            "seconds (default 0.5)")
    bench.add_argument("--no-reference", action="store_true",
                       help="skip the NumPy reference runs")
    bench.add_argument("--no-peers", action="store_true",
                       help="skip the eigh / scikit-learn peers")
    bench.add_argument("--json", metavar="PATH", default=None,
                       help="also write every number to PATH as JSON "
                            "('-': JSON on stdout, the table on stderr)")
    bench.add_argument("--quiet", action="store_true",
                       help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo
        return run_demo(methods=args.methods, with_reference=not args.no_reference)
    if args.command == "bench":
        if args.repeats < 1:
            parser.error("--repeats must be >= 1")
        if not args.budget >= 0:
            parser.error("--budget must be >= 0")
        from ._bench import run_bench
        return run_bench(
            problems=args.problems, methods=args.methods,
            repeats=args.repeats, budget=args.budget,
            with_reference=not args.no_reference,
            with_peers=not args.no_peers, json_path=args.json,
            progress=not args.quiet)
    return 2


if __name__ == "__main__":
    sys.exit(main())
