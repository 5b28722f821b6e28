"""Command line: ``laefast demo``, ``bench``, ``landscape`` and ``align``
(or ``python -m laefast``).

Every argument is checked before any work starts: a bad choice, count or
output path exits with status 2 and a usage message, and a requested
problem that cannot run here (digits without scikit-learn, the landscape
figures without the plotting extra) exits with status 2 before anything is
measured or drawn.
"""

import argparse
import importlib.util
import math
import os
import pathlib
import sys
import tempfile

__all__ = ["main"]

from ._validation import METHODS as _METHODS

# The bench command's problems (laefast.bench.PROBLEMS, which imports
# more than a parser needs).
_PROBLEMS = ("paper", "spiked", "digits")
# laefast.alignment.RULES and laefast._mlp.DATASETS, spelled out so that the
# parser imports nothing heavy.
_RULES = ("bp", "fa", "sa", "aa", "wm", "ia", "kp")
_DATASETS = ("digits", "breast_cancer")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds >= 0, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(
            f"must be a finite number of seconds >= 0, got {text!r}")
    return value


def _json_path_problem(path):
    """Why results could not be written to `path`, or None if they can.

    Checked before the run, so that a long benchmark never ends by losing
    its numbers to a typo in the path.
    """
    if path == "-":
        return None
    target = pathlib.Path(path)
    if target.is_dir():
        return f"{path} is a directory"
    parent = target.parent
    if not parent.is_dir():
        return f"directory {str(parent)!r} does not exist"
    if target.exists() and not os.access(target, os.W_OK):
        return f"{path} is not writable"
    try:
        # The real test: create (and remove) a file beside the target.
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".laefast-json-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"cannot write in {str(parent)!r}: {exc.strerror or exc}"
    return None


def build_parser():
    """The ``laefast`` argument parser (also what ``--help`` prints)."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="laefast",
        description="PCA by regularized linear autoencoders: the paper's "
                    "six training methods as compiled loops.")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True,
                                metavar="{demo,bench,landscape,align}")
    demo = sub.add_parser(
        "demo", help="fit all six methods on the paper's default problem and "
                     "compare with laefast.reference",
        description="Fit the paper's six methods on its default problem "
                    "(m=10, n=10000, k=2, lam=50) from one start and print "
                    "iterations, seconds and U error, beside the NumPy "
                    "reference.")
    demo.add_argument("--methods", nargs="+", choices=_METHODS,
                      default=None, metavar="METHOD",
                      help="methods to run, from %(choices)s "
                           "(default: all six)")
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
                    "to stderr.  Exits with status 2, before measuring "
                    "anything, if a requested problem cannot run here.")
    bench.add_argument("--problems", nargs="+", choices=_PROBLEMS,
                       default=list(_PROBLEMS), metavar="PROBLEM",
                       help="problems to run, from %(choices)s (default: all; "
                            "digits needs scikit-learn)")
    bench.add_argument("--methods", nargs="+", choices=_METHODS,
                       default=list(_METHODS), metavar="METHOD",
                       help="methods to run, from %(choices)s "
                            "(default: all six)")
    bench.add_argument("--repeats", type=_positive_int, default=3,
                       help="best of this many runs per row (default 3)")
    bench.add_argument("--budget", type=_seconds, default=0.5,
                       help="stop repeating a row once it has spent this many "
                            "seconds (default 0.5)")
    bench.add_argument("--no-reference", action="store_true",
                       help="skip the NumPy reference runs")
    bench.add_argument("--no-peers", action="store_true",
                       help="skip the eigh / scikit-learn peers")
    bench.add_argument("--json", metavar="PATH", default=None,
                       help="also write every number to PATH as JSON "
                            "('-': JSON on stdout, the table on stderr); "
                            "checked for writability before the run")
    bench.add_argument("--quiet", action="store_true",
                       help="no progress lines on stderr")
    land = sub.add_parser(
        "landscape", help="the three loss landscapes of the scalar case: "
                          "PNG figures and an interactive offline page",
        description="Write landscapes.png (L, L_pi and L_sigma with their "
                    "critical points, and L_sigma's symmetry breaking as lam "
                    "crosses sigma2), trajectories.png (the six methods' "
                    "iterates over L_sigma), shrinkage.png (the decoder's "
                    "shrinkage against lam, checked by solver runs) and "
                    "landscapes.html (the surfaces in 3D with lam and sigma2 "
                    "sliders; plotly.js inlined, works offline) into --out. "
                    "Needs the [plot] extra (matplotlib, plotly).")
    land.add_argument("--out", required=True, metavar="DIR",
                      help="folder to write into (created if missing)")
    land.add_argument("--sigma2", type=float, default=1.0,
                      help="||x||^2 of the scalar problem (default 1)")
    land.add_argument("--lam", type=float, default=0.4,
                      help="the penalty lam of the figures (default 0.4)")
    land.add_argument("--no-png", action="store_true",
                      help="skip the PNG figures")
    land.add_argument("--no-html", action="store_true",
                      help="skip landscapes.html")
    land.add_argument("--gif", action="store_true",
                      help="also write trajectories.gif, the trajectories "
                           "animated (a few seconds more)")
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
    # Errors found after parsing are reported by the subcommand's parser.
    demo.set_defaults(subparser=demo)
    bench.set_defaults(subparser=bench)
    land.set_defaults(subparser=land)
    align.set_defaults(subparser=align)
    return parser


def main(argv=None):
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "align":
        return _align(args.subparser, args)
    if args.command == "landscape":
        land = args.subparser
        if not (math.isfinite(args.sigma2) and args.sigma2 > 0):
            land.error("--sigma2 must be a finite number > 0")
        if not (math.isfinite(args.lam) and args.lam >= 0):
            land.error("--lam must be a finite number >= 0")
        if args.no_png and args.no_html and not args.gif:
            land.error("--no-png and --no-html leave nothing to write")
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            land.error(f"--out {args.out!r} exists and is not a folder")
        needed = ([] if args.no_png and not args.gif else ["matplotlib"]) + \
            ([] if args.no_html else ["plotly"])
        missing = [m for m in needed if importlib.util.find_spec(m) is None]
        if missing:
            land.error(f"the landscape command needs {', '.join(missing)}: "
                         "pip install 'laefast[plot]'")
        from ._landscape_figures import write_all
        for path in write_all(args.out, sigma2=args.sigma2, lam=args.lam,
                              png=not args.no_png, html=not args.no_html,
                              gif=args.gif):
            print(path)
        return 0
    if args.command == "demo":
        from ._demo import run_demo
        return run_demo(methods=args.methods, with_reference=not args.no_reference)
    # bench: everything that could stop the run is checked first.
    bench = args.subparser
    if args.json is not None:
        problem = _json_path_problem(args.json)
        if problem is not None:
            bench.error(f"argument --json: {problem}")
    from .bench import problem_unavailable, run_bench
    for name in dict.fromkeys(args.problems):
        reason = problem_unavailable(name)
        if reason is not None:
            bench.error(f"problem {name!r} cannot run: {reason}")
    return run_bench(
        problems=list(dict.fromkeys(args.problems)), methods=args.methods,
        repeats=args.repeats, budget=args.budget,
        with_reference=not args.no_reference,
        with_peers=not args.no_peers, json_path=args.json,
        progress=not args.quiet)


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
