"""Command line: ``python -m laefast demo``, ``bench`` and ``landscape``."""

import argparse
import importlib.util
import math
import os
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
    args = parser.parse_args(argv)
    if args.command == "landscape":
        if not (math.isfinite(args.sigma2) and args.sigma2 > 0):
            parser.error("--sigma2 must be a finite number > 0")
        if not (math.isfinite(args.lam) and args.lam >= 0):
            parser.error("--lam must be a finite number >= 0")
        if args.no_png and args.no_html and not args.gif:
            parser.error("--no-png and --no-html leave nothing to write")
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            parser.error(f"--out {args.out!r} exists and is not a folder")
        needed = ([] if args.no_png and not args.gif else ["matplotlib"]) + \
            ([] if args.no_html else ["plotly"])
        missing = [m for m in needed if importlib.util.find_spec(m) is None]
        if missing:
            parser.error(f"the landscape command needs {', '.join(missing)}: "
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
