"""Command line: ``python -m laefast demo``, ``bench`` and ``align``."""

import argparse
import sys

__all__ = ["main"]

from ._validation import METHODS as _METHODS

# The bench command's problems (laefast._bench.PROBLEMS, which imports
# more than a parser needs).
_PROBLEMS = ("paper", "spiked", "digits")
# laefast.alignment.RULES and laefast._mlp.DATASETS, spelled out so that the
# parser imports nothing heavy.
_RULES = ("bp", "fa", "sa", "aa", "wm", "ia", "kp")
_DATASETS = ("digits", "breast_cancer")


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
    align = sub.add_parser(
        "align", help="train a small MLP with each alignment learning rule "
                      "(laefast.alignment) and compare with backpropagation",
        description="Train one ReLU MLP per rule on a scikit-learn data set "
                    "(needs scikit-learn) and print, per rule, the test "
                    "accuracy and the angle between each layer's backward "
                    "matrix B and W^T.  Progress goes to stderr.")
    align.add_argument("--rules", nargs="+", choices=_RULES,
                       default=list(_RULES), metavar="RULE",
                       help="rules to run, from %(choices)s (default: all)")
    align.add_argument("--dataset", choices=_DATASETS, default="digits",
                       help="data set (default digits)")
    align.add_argument("--epochs", type=int, default=50,
                       help="training epochs (default 50)")
    align.add_argument("--seed", type=int, default=0,
                       help="seed of the split, the start and the shuffles")
    align.add_argument("--json", metavar="PATH", default=None,
                       help="also write every number to PATH as JSON "
                            "('-': on stdout)")
    align.add_argument("--plot", metavar="PATH", default=None,
                       help="save angle and accuracy against epochs to PATH "
                            "(needs matplotlib: the [plot] extra)")
    align.add_argument("--quiet", action="store_true",
                       help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.command == "align":
        return _align(parser, args)
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


def _align(parser, args):
    import importlib.util
    import os
    if args.epochs < 1:
        parser.error("--epochs must be >= 1")
    if args.seed < 0:
        parser.error("--seed must be >= 0")
    rules = list(dict.fromkeys(args.rules))
    for path, flag in ((args.json, "--json"), (args.plot, "--plot")):
        if path not in (None, "-"):
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                parser.error(f"{flag}: folder {folder} does not exist")
    if args.plot == "-":
        parser.error("--plot needs a file name")
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        parser.error("--plot needs matplotlib (pip install 'laefast[plot]')")
    if importlib.util.find_spec("sklearn") is None:
        parser.error("align needs scikit-learn for its data sets "
                     "(pip install 'laefast[test]')")
    from ._mlp import run_align
    return run_align(rules, dataset=args.dataset, epochs=args.epochs,
                     seed=args.seed, json_path=args.json,
                     plot_path=args.plot, progress=not args.quiet,
                     stdout=sys.stderr if args.json == "-" else None)


if __name__ == "__main__":
    sys.exit(main())
