"""Foundation benchmark: laefast's compiled kernels against the NumPy reference
and against the BLAS limit (docs/theory.md).

Run:  python benchmarks/bench_foundation.py [--quick] [--repeats N] [--json PATH]

Three measurements, each best-of-several repeats taken in this one run, each
printed with PASS/FAIL against its target.  FAIL is reported, not fatal: the
script always exits 0 (it is a report, not a test).

1. Paper problem (m=10, n=10000, k=2, lam=50): every method of laefast.solve
   against laefast.reference.run, same start, same stopping rule.
   Target: speedup >= 20x for every method.
2. m=1000, k=20 untied GD: per-step time of the kernel, (t(N=200) - t(N=20))
   / 180 so that per-call fixed costs (input checks, read-out) cancel, against
   the two (k x m)(m x m) GEMMs a step needs, timed with SciPy's BLAS (the
   library the kernel calls).  Targets: step / GEMMs <= 1.3, and the
   reference's per-step time >= 15x laefast's.  Also printed: one
   laefast.step call (its input check included) against the three GEMMs of
   a lone step, and the check alone.
3. Exact W1 given W2 at m=200, k=10: laefast.exact_w1 against the reference's
   (mk x mk) Kronecker solve (target >= 50x), plus a plain NumPy/SciPy
   separable version for context; the three results are checked to agree.

Traps handled here:
- NumPy and SciPy bundle *separate* OpenBLAS builds.  The GEMM baseline uses
  scipy.linalg.blas.dgemm, and it is called with Fortran-ordered views
  (C.T, W.T), which are exactly the operands and transpose flags the kernel
  passes; `dgemm(1.0, A, C)` with C-ordered arrays makes f2py copy the
  8 MB C on every call, which roughly triples its time (printed for context).
- OpenBLAS worker threads spin for a while after a call.  When switching from
  the reference (NumPy's BLAS) to laefast (SciPy's BLAS) the script sleeps
  briefly so that the idle pool does not steal the 2 cores from the other.
"""

import argparse
import json
import sys
import time
import warnings

import numpy as np
import scipy
import scipy.linalg
from scipy.linalg.blas import dgemm
from scipy.linalg.lapack import dpotrf

import laefast
from laefast import reference
from laefast._validation import check_gram

import laefast_bench as harness  # benchmarks/laefast_bench
from laefast_bench import time_once

GD_METHODS = ("untied", "sync", "tied")
SETTLE_S = 0.3  # > OpenBLAS's spin-wait before its threads go to sleep


# ---------------------------------------------------------------------------
# Timing helpers

def settle():
    """Let the other BLAS pool's spinning threads go idle."""
    harness.settle(SETTLE_S)


def best_of(fn, repeats, warmup=1, settle_each=False):
    """(best wall time over `repeats` calls, the last result).

    settle_each: sleep before every timed call, so that no BLAS pool is still
    spinning from the previous call (see settle()).
    """
    t, out, _ = harness.best_of(fn, repeats, budget=np.inf, warmup=warmup,
                                settle_s=SETTLE_S if settle_each else 0.0)
    return t, out


def verdict(ok):
    return "PASS" if ok else "FAIL"


def fmt_t(t):
    if t >= 1.0:
        return f"{t:8.3f} s "
    if t >= 1e-3:
        return f"{t * 1e3:8.3f} ms"
    return f"{t * 1e6:8.2f} us"


# ---------------------------------------------------------------------------
# Environment

def environment():
    info = harness.environment()
    print("== Environment")
    print(harness.environment_line(info))
    print()
    return info


# ---------------------------------------------------------------------------
# 1. The paper's problem, every method

def bench_paper(repeats, ref_repeats):
    print("== 1. Paper problem: m=10, n=10000, k=2, lam=50, tol=1e-8 "
          "(alpha=1e-5 for GD)")
    print(f"   laefast best of {repeats}, reference best of {ref_repeats}; "
          "target speedup >= 20x")
    X, W1, W2 = reference.paper_problem()
    C = X @ X.T
    lam, tol = 50.0, 1e-8
    rows = []
    header = (f"   {'method':13s} {'laefast':>11s} {'reference':>11s} "
              f"{'n_iter':>7s} {'ref n':>7s} {'per-it':>11s} "
              f"{'speedup':>8s}")
    print(header)
    for method in laefast.METHODS:
        alpha = 1e-5 if method in GD_METHODS else None

        def run_fast():
            return laefast.solve(C, 2, lam, method=method, alpha=alpha,
                                 tol=tol, init=(W1, W2))

        def run_ref():
            return reference.run(method, C, W1, W2, lam, alpha, tol)

        t_ref, ref = best_of(run_ref, ref_repeats, warmup=0)
        settle()
        t_fast, res = best_of(run_fast, repeats)
        speedup = t_ref / t_fast
        row = {"method": method, "t_laefast": t_fast, "t_reference": t_ref,
               "n_iter": res.n_iter, "ref_n_iter": ref.n_iter,
               "converged": res.converged, "ref_converged": ref.converged,
               "speedup": speedup, "pass": bool(speedup >= 20.0)}
        rows.append(row)
        same = "" if res.n_iter == ref.n_iter else "  (n_iter differ)"
        print(f"   {method:13s} {fmt_t(t_fast)} {fmt_t(t_ref)} "
              f"{res.n_iter:7d} {ref.n_iter:7d} "
              f"{fmt_t(t_fast / max(res.n_iter, 1))} {speedup:7.1f}x  "
              f"{verdict(row['pass'])}{same}")
    print()
    return rows


# ---------------------------------------------------------------------------
# 2. Per-step cost of the untied kernel at m=1000, k=20

def bench_step(repeats, ref_steps, n_long, n_short):
    m, k, n = 1000, 20, 2000
    lam, alpha = 1.0, 1e-9
    print(f"== 2. Untied GD step at m={m}, k={k} (float64), lam={lam:g}, "
          f"alpha={alpha:g}")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((m, n))
    X -= X.mean(axis=1, keepdims=True)
    C = X @ X.T
    C = (C + C.T) / 2  # exactly symmetric
    # Small weights (laefast's default scale): the decoder's singular values
    # stay below 1, so the read-out after max_iter steps has nothing to say.
    scale = 0.5 / np.sqrt(m * k)
    W1 = scale * rng.standard_normal((k, m))
    W2 = scale * rng.standard_normal((m, k))

    def solve_n(n_iter):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", laefast.ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            return laefast.solve(C, k, lam, method="untied", alpha=alpha,
                                 tol=0.0, max_iter=n_iter, init=(W1, W2))

    # The two GEMMs of a step, with the kernel's exact operands and flags:
    #   P  = W1 C   row-major (k x m) == column-major C (m x m) . W1^T (m x k)
    #   Qt = W2^T C row-major (k x m) == column-major C . (W2 as k x m)^T
    # C.T, W1.T and W2.T are Fortran-contiguous views: no copies.
    Cf, W1f, W2f = C.T, W1.T, W2.T
    out1 = np.empty((m, k), order="F")
    out2 = np.empty((m, k), order="F")
    n_gemm = n_long - n_short

    def gemms():
        for _ in range(n_gemm):
            dgemm(1.0, Cf, W1f, c=out1, overwrite_c=1)
            dgemm(1.0, Cf, W2f, trans_b=1, c=out2, overwrite_c=1)

    def per_step(settle_each):
        """Best-of times of N=n_short and N=n_long solves and of the GEMMs
        of (n_long - n_short) steps, interleaved round by round so that the
        machine's drift hits all three alike; the difference of the solves
        is the per-step time."""
        t_short = t_long = t_gemm = np.inf
        for _ in range(repeats):
            if settle_each:
                settle()
            t, r_short = time_once(lambda: solve_n(n_short))
            t_short = min(t_short, t)
            if settle_each:
                settle()
            t, r_long = time_once(lambda: solve_n(n_long))
            t_long = min(t_long, t)
            if settle_each:
                settle()
            t_gemm = min(t_gemm, time_once(gemms)[0])
        assert r_short.n_iter == n_short and r_long.n_iter == n_long
        t_step = (t_long - t_short) / (n_long - n_short)
        return (t_short, t_long, t_step, t_short - n_short * t_step,
                t_gemm / n_gemm)

    solve_n(n_short)
    solve_n(n_long)
    gemms()
    # Main number: each call starts with both BLAS pools idle.
    t_short, t_long, t_step, t_fixed, t_gemm_pair = per_step(settle_each=True)
    # Diagnostic: calls back to back, as a user's loop would make them.  The
    # previous call's read-out (np.linalg.svd, NumPy's OpenBLAS) leaves that
    # pool's worker spinning while the next kernel's SciPy GEMMs start.
    b2b_short, b2b_long, b2b_step, b2b_fixed, _ = per_step(settle_each=False)
    assert np.allclose(out1.T, W1 @ C) and np.allclose(out2.T, W2.T @ C)

    # The naive call form, for context: f2py copies C-ordered inputs.
    A = np.ascontiguousarray(W1)
    n_naive = max(10, n_gemm // 10)

    def gemms_naive():
        for _ in range(n_naive):
            dgemm(1.0, A, C)
            dgemm(1.0, A, C)

    t_naive, _ = best_of(gemms_naive, max(2, repeats // 2), settle_each=True)
    t_naive_pair = t_naive / n_naive
    flops = 2 * 2 * k * m * m

    # The reference: `ref_steps` iterations of its generator, timed per step.
    def ref_loop():
        gen = reference.iterates("untied", C, W1, W2, lam, alpha, tol=0.0)
        for _ in range(ref_steps):
            next(gen)

    ref_repeats = max(1, min(3, repeats))
    settle()
    t_ref_loop, _ = best_of(ref_loop, ref_repeats, warmup=0)
    t_ref_step = t_ref_loop / ref_steps
    settle()

    # laefast.step, one call at a time as another library's loop makes
    # them: its input check (a pass over C) against the three GEMMs of a
    # lone step, back to back.
    Ws = (W1.copy(), W2.copy())
    n_calls = 20

    def step_calls():
        for _ in range(n_calls):
            laefast.step(Ws[0], Ws[1], C, lam, method="untied", alpha=alpha)

    def checks():
        for _ in range(n_calls):
            check_gram(C)

    t_calls = t_checks = t_gemms3 = np.inf
    for _ in range(repeats):
        t_calls = min(t_calls, time_once(step_calls)[0] / n_calls)
        t_checks = min(t_checks, time_once(checks)[0] / n_calls)
        t_gemms3 = min(t_gemms3, 1.5 * time_once(gemms)[0] / n_gemm)

    ratio = t_step / t_gemm_pair
    speedup = t_ref_step / t_step
    res = {
        "m": m, "k": k, "lam": lam, "alpha": alpha,
        "n_long": n_long, "n_short": n_short,
        "t_solve_long": t_long, "t_solve_short": t_short,
        "t_step": t_step, "t_fixed_per_call": t_fixed,
        "back_to_back": {"t_solve_long": b2b_long, "t_solve_short": b2b_short,
                         "t_step": b2b_step, "t_fixed_per_call": b2b_fixed},
        "t_two_gemms": t_gemm_pair, "gemm_gflops": flops / t_gemm_pair / 1e9,
        "step_gflops": flops / t_step / 1e9,
        "t_two_gemms_naive_copying": t_naive_pair,
        "t_reference_step": t_ref_step, "reference_steps": ref_steps,
        "step_over_gemms": ratio, "pass_gemm": bool(ratio <= 1.3),
        "speedup_vs_reference": speedup, "pass_reference": bool(speedup >= 15.0),
        "t_step_call": t_calls, "t_check_gram": t_checks,
        "t_three_gemms": t_gemms3,
    }
    print(f"   solve N={n_long:<4d}            : {fmt_t(t_long)}   "
          f"N={n_short}: {fmt_t(t_short)}   (best of {repeats}, idle pools)")
    print(f"   laefast per step         : {fmt_t(t_step)}  "
          f"({res['step_gflops']:.1f} GFLOP/s on the GEMM flops); "
          f"fixed per call {fmt_t(t_fixed)}")
    print(f"   back-to-back calls       : N={n_long} {fmt_t(b2b_long)}, "
          f"N={n_short} {fmt_t(b2b_short)}; per step {fmt_t(b2b_step)}, "
          f"fixed {fmt_t(b2b_fixed)} (diagnostic)")
    print(f"   2 GEMMs (scipy dgemm)    : {fmt_t(t_gemm_pair)}  "
          f"({res['gemm_gflops']:.1f} GFLOP/s, kernel's operand layout, "
          f"no copies)")
    print(f"   2 GEMMs dgemm(1.0, A, C) : {fmt_t(t_naive_pair)}  "
          f"(C-ordered inputs: f2py copies C each call; context only)")
    print(f"   step / GEMMs             : {ratio:6.3f}   target <= 1.3   "
          f"{verdict(res['pass_gemm'])}")
    print(f"   laefast.step, one call   : {fmt_t(t_calls)}  "
          f"({t_calls / t_gemms3:.2f}x its 3 GEMMs, {fmt_t(t_gemms3)}; its "
          f"input check {fmt_t(t_checks)}, back to back)")
    print(f"   reference per step       : {fmt_t(t_ref_step)}  "
          f"(best of {ref_repeats} x {ref_steps} steps)")
    print(f"   speedup vs reference     : {speedup:6.1f}x  target >= 15x    "
          f"{verdict(res['pass_reference'])}")
    print()
    return res


# ---------------------------------------------------------------------------
# 3. Exact W1 given W2 at m=200, k=10

def separable_numpy(C, W2, lam):
    """Plain NumPy/SciPy version of the separable exact-W1 solve."""
    d, V = np.linalg.eigh(W2.T @ W2)
    Z = V.T @ (W2.T @ C)
    eye = np.eye(C.shape[0])
    for i in range(d.shape[0]):
        factor = scipy.linalg.cho_factor(d[i] * C + lam * eye, lower=True,
                                         check_finite=False)
        # z_i (d_i C + lam I) = rhs_i, and the matrix is symmetric.
        Z[i] = scipy.linalg.cho_solve(factor, Z[i], check_finite=False)
    return V @ Z


def bench_exact_w1(repeats, ref_repeats, n_inner):
    m, k, n, lam = 200, 10, 400, 1.0
    print(f"== 3. Exact W1 given W2 at m={m}, k={k}, lam={lam:g}")
    rng = np.random.default_rng(1)
    X = rng.standard_normal((m, n))
    X -= X.mean(axis=1, keepdims=True)
    C = X @ X.T
    C = (C + C.T) / 2
    W2 = rng.standard_normal((m, k))

    def many(fn):
        def loop():
            for _ in range(n_inner):
                out = fn()
            return out
        return loop

    t_ref, w_ref = best_of(lambda: reference.exact_w1(C, W2, lam),
                           ref_repeats, warmup=1, settle_each=True)
    t_np, w_np = best_of(many(lambda: separable_numpy(C, W2, lam)), repeats,
                         settle_each=True)
    t_np /= n_inner
    t_fast, w_fast = best_of(many(lambda: laefast.exact_w1(C, W2, lam)),
                             repeats, settle_each=True)
    t_fast /= n_inner

    # The floor of the separable method: k Cholesky factorizations of an
    # m x m matrix with SciPy's LAPACK (the one laefast calls).
    M = np.asfortranarray(C + lam * np.eye(m))

    def cholesky_floor():
        for _ in range(k):
            dpotrf(M, lower=1, clean=0)

    t_chol, _ = best_of(many(cholesky_floor), repeats, settle_each=True)
    t_chol /= n_inner

    scale = np.abs(w_ref).max()
    diff_ref = float(np.abs(w_fast - w_ref).max())
    diff_np = float(np.abs(w_fast - w_np).max())
    # Residual of the defining equation, relative to its right-hand side.
    rhs = W2.T @ C
    resid = float(np.abs((W2.T @ W2) @ w_fast @ C + lam * w_fast - rhs).max()
                  / np.abs(rhs).max())
    agree = bool(diff_ref <= 1e-8 * max(scale, 1.0) and resid <= 1e-10)
    speedup = t_ref / t_fast
    res = {
        "m": m, "k": k, "lam": lam,
        "t_laefast": t_fast, "t_reference_kronecker": t_ref,
        "t_numpy_separable": t_np, "t_cholesky_floor": t_chol,
        "speedup_vs_kronecker": speedup,
        "speedup_vs_numpy_separable": t_np / t_fast,
        "max_abs_diff_vs_reference": diff_ref,
        "max_abs_diff_vs_numpy_separable": diff_np,
        "max_abs_W1": float(scale), "relative_residual": resid,
        "agree": agree, "pass": bool(speedup >= 50.0 and agree),
    }
    print(f"   laefast.exact_w1         : {fmt_t(t_fast)}  "
          f"(best of {repeats} x {n_inner} calls)")
    print(f"   {k} x scipy dpotrf({m})    : {fmt_t(t_chol)}  "
          f"(one after another, threaded BLAS; laefast runs its k "
          f"solves in parallel on OpenMP threads; "
          f"{k * m ** 3 / 3 / t_chol / 1e9:.1f} GFLOP/s)")
    print(f"   NumPy separable          : {fmt_t(t_np)}  "
          f"({t_np / t_fast:.2f}x laefast; eigh + {k} cho_factor/cho_solve)")
    print(f"   reference (Kronecker)    : {fmt_t(t_ref)}  "
          f"(best of {ref_repeats}; {m * k} x {m * k} SPD solve)")
    print(f"   agreement                : max|laefast - kron| = {diff_ref:.2e}, "
          f"max|laefast - numpy| = {diff_np:.2e} (max|W1| = {scale:.2e}), "
          f"rel. residual {resid:.1e}   {'OK' if agree else 'MISMATCH'}")
    print(f"   speedup vs Kronecker     : {speedup:6.1f}x  target >= 50x    "
          f"{verdict(res['pass'])}")
    print()
    return res


# ---------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats (about 20 s instead of about 45 s)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="best-of count for the fast timings "
                             "(default 7, 3 with --quick)")
    parser.add_argument("--json", metavar="PATH",
                        help="also write every number to this JSON file")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    if repeats < 1:
        parser.error("--repeats must be >= 1")
    ref_repeats = 1 if args.quick else 2

    t_start = time.perf_counter()
    report = {"environment": environment(), "repeats": repeats,
              "quick": args.quick}
    report["paper"] = bench_paper(repeats, ref_repeats)
    report["untied_step"] = bench_step(
        repeats, ref_steps=5 if args.quick else 8,
        n_long=200, n_short=20)
    report["exact_w1"] = bench_exact_w1(
        repeats, ref_repeats=2 if args.quick else 3,
        n_inner=10 if args.quick else 20)

    checks = [(f"1. {r['method']} speedup >= 20x", r["pass"])
              for r in report["paper"]]
    checks += [
        ("2. untied step / 2 GEMMs <= 1.3", report["untied_step"]["pass_gemm"]),
        ("2. untied step >= 15x reference",
         report["untied_step"]["pass_reference"]),
        ("3. exact_w1 >= 50x Kronecker (and agrees)",
         report["exact_w1"]["pass"]),
    ]
    report["summary"] = {name: ok for name, ok in checks}
    elapsed = time.perf_counter() - t_start
    report["elapsed_s"] = elapsed
    print("== Summary")
    for name, ok in checks:
        print(f"   {verdict(ok)}  {name}")
    n_fail = sum(not ok for _, ok in checks)
    print(f"   {len(checks) - n_fail}/{len(checks)} targets met; "
          f"total time {elapsed:.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=float)
        print(f"   numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
