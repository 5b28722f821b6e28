"""Command line: ``python -m laefast demo``."""

import argparse
import sys

__all__ = ["main"]


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
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo
        return run_demo(methods=args.methods, with_reference=not args.no_reference)
    return 2


if __name__ == "__main__":
    sys.exit(main())
