"""Draw the paper's convergence figures for laefast and laefast.reference.

For the paper's default problem and the spiked covariance problem of the
benchmark harness (benchmarks/laefast_bench), all six methods: U error
against iteration and U error against seconds, laefast (solid) and the reference (dashed) on the same
log-scale axes.  Writes docs/convergence_paper.png and
docs/convergence_spiked.png.  Needs matplotlib (pip install '.[plot]').

    python docs/make_figures.py [--problems paper spiked] [--out docs]

How the curves are made, as each figure's footnote says:

- U error per iteration: both implementations are stepped from the common
  start (laefast.step, one compiled iteration per call, and the
  reference's iterates), the U error of the read-out taken after every
  iteration (thinned geometrically), up to the stopping rule.  Both follow
  the same iterates, so on the iteration axis the two curves coincide.
- Seconds: a separate timed run of each (laefast.solve and
  laefast.reference.run, best of a few), its wall time spread evenly over
  its iterations.  Where the reference is capped (the spiked problem's
  gradient methods cost ~40 ms per reference step; its exact-untied needs a
  20000 x 20000 Kronecker solve and is not run), its curve ends early,
  marked x.
- Every figure carries the machine, BLAS and thread counts that produced
  it (laefast_bench.environment_line); no number is typed in by hand.
"""

import argparse
import os
import sys
import textwrap
import time


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, "benchmarks"))
import laefast_bench as _bench  # noqa: E402  (benchmarks/laefast_bench)

# Iterations of the reference drawn on the spiked problem's gradient methods
# (each ~40 ms): enough to show the early part of the curve.
SPIKED_REFERENCE_ITERS = 150
COLORS = {"untied": "tab:blue", "sync": "tab:orange", "tied": "tab:green",
          "exact-untied": "tab:red", "exact-sync": "tab:purple",
          "exact-tied": "tab:brown"}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def curves(problem, method, repeats):
    """Trajectories and per-iteration times of laefast and the reference."""
    out = {}
    its, errs = _bench.laefast_trajectory(problem, method)
    _bench.settle(problem.settle_s)
    lae = _bench.measure_laefast(problem, method, repeats=repeats, budget=2.0)
    if lae.n_iter != its[-1]:
        raise RuntimeError(f"{method}: laefast.step took {its[-1]} "
                           f"iterations, laefast.solve {lae.n_iter}")
    out["laefast"] = dict(its=its, errs=errs, per_iter=lae.seconds_per_iter,
                          seconds=lae.seconds, n_iter=lae.n_iter, capped=False)
    cap, reason = _bench.reference_cap(problem, method)
    if cap == 0:
        out["reference"] = dict(skipped=reason)
        return out
    draw_cap = None if cap is None else max(cap, SPIKED_REFERENCE_ITERS)
    r_its, r_errs = _bench.reference_trajectory(problem, method, draw_cap)
    _bench.settle(problem.settle_s)
    ref = _bench.measure_reference(problem, method, repeats=1, budget=0.0)
    out["reference"] = dict(its=r_its, errs=r_errs,
                            per_iter=ref.seconds_per_iter,
                            seconds=ref.seconds, n_iter=ref.n_iter,
                            capped=cap is not None, timed_iters=ref.n_iter)
    return out


def draw(problem, data, env_line, path, repeats):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, (ax_it, ax_s) = plt.subplots(1, 2, figsize=(12, 5.4))
    for method, d in data.items():
        color = COLORS[method]
        for impl, style, width, alpha in (("reference", "--", 2.6, 0.55),
                                          ("laefast", "-", 1.3, 1.0)):
            c = d[impl]
            if "skipped" in c:
                continue
            x_s = c["its"] * c["per_iter"]
            ax_it.plot(c["its"], c["errs"], style, color=color, lw=width,
                       alpha=alpha)
            ax_s.plot(x_s, c["errs"], style, color=color, lw=width,
                      alpha=alpha)
            marker = "x" if c["capped"] else "o"
            ax_it.plot(c["its"][-1], c["errs"][-1], marker, color=color,
                       ms=6, alpha=alpha)
            ax_s.plot(x_s[-1], c["errs"][-1], marker, color=color, ms=6,
                      alpha=alpha)
    for ax in (ax_it, ax_s):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel("U error (sum over k of min ||u_hat -/+ u||)")
        ax.grid(True, which="major", alpha=0.3)
    ax_it.set_xlabel("iteration")
    ax_s.set_xlabel("seconds (wall time of a timed run, spread evenly "
                    "over its iterations)")
    ax_it.set_title("U error against iteration (the curves coincide)")
    ax_s.set_title("U error against seconds")
    handles = [Line2D([], [], color=COLORS[m], lw=2, label=m) for m in data]
    handles += [Line2D([], [], color="k", lw=1.3, ls="-", label="laefast"),
                Line2D([], [], color="k", lw=2.6, ls="--", alpha=0.55,
                       label="reference (NumPy)"),
                Line2D([], [], color="k", ls="", marker="o",
                       label="stopping rule"),
                Line2D([], [], color="k", ls="", marker="x",
                       label="reference capped")]
    ax_s.legend(handles=handles, fontsize=8, loc="lower left", ncol=2)
    d = problem.describe()
    alpha = (f"alpha={d['gd_alpha']:g}" if d["gd_alpha"] is not None else
             f"alpha={d['gd_alpha_resolved']:.3g} (laefast's default)")
    fig.suptitle(f"{problem.title}\nlam={problem.lam:.4g} ({d['lam_note']}), "
                 f"tol={problem.tol:g}, GD {alpha}; start: {d['start']}",
                 fontsize=10)
    notes = []
    for method, dd in data.items():
        ref = dd["reference"]
        if "skipped" in ref:
            notes.append(f"reference {method} not run: {ref['skipped']}.")
        elif ref["capped"]:
            notes.append(
                f"reference {method} drawn to {ref['its'][-1]} iterations, "
                f"timed over {ref['timed_iters']}.")
    timing = (f"Seconds: laefast.solve best of {repeats} (fewer past 2 s), "
              "reference.run timed once; each run's wall time spread evenly "
              "over its iterations. U error per iteration from laefast.step "
              "and reference.iterates, from the same start. "
              + " ".join(notes))
    foot = "\n".join(textwrap.wrap(timing, 190)
                     + textwrap.wrap("Machine: " + env_line, 190))
    fig.text(0.01, 0.005, foot, fontsize=6.5, va="bottom", ha="left")
    fig.tight_layout(rect=(0, 0.02 + 0.018 * foot.count("\n"), 1, 1))
    fig.savefig(path, dpi=90, pil_kwargs={"optimize": True})
    plt.close(fig)
    log(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KB)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", nargs="+", default=["paper", "spiked"],
                        choices=["paper", "spiked", "digits"])
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(
        __file__)), help="folder for the PNG files (default: docs/)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        parser.error("matplotlib is needed: pip install '.[plot]'")
    for name in args.problems:
        t0 = time.perf_counter()
        problem = _bench.get_problem(name)
        data = {}
        for method in _bench.METHODS:
            log(f"[{name}] {method} ...")
            data[method] = curves(problem, method, args.repeats)
        env_line = _bench.environment_line()
        draw(problem, data, env_line,
             os.path.join(args.out, f"convergence_{name}.png"), args.repeats)
        log(f"[{name}] done in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
