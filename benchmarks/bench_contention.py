"""laefast right after the caller's own threaded BLAS call.

OpenBLAS's spinning workers against laefast's OpenMP threads.

Run:  python benchmarks/bench_contention.py [--threads N] [--repeats R]
                                            [--thread-timeout E]

After a threaded call, each worker of an OpenBLAS pool (NumPy's, and
SciPy's, each bundles its own) spins for 2^28 CPU cycles, about 0.1 s,
waiting for more work before it sleeps.  A BLAS-only peer (scikit-learn's
PCA) gets those workers back at once; laefast's OpenMP kernels run on
threads of their own, which then share the cores with the spinners.  This
script times each case in four conditions, interleaved round by round:

  settled     after a 0.3 s sleep (what bench_peers.py measures);
  numpy gemm  right after a threaded 800 x 800 NumPy matrix product;
  scipy gemm  right after the same product with SciPy's BLAS;
  after itself  right after another call of the same case, as in a loop
              of fits (a fit's own last threaded BLAS call, the
              eigensolver's, leaves the workers spinning for the next).

The cases: LAEPCA against the peer bench_peers.py compares it with, on
wide data (1500 x 2048, k=10, arpack) and tall data (200000 x 256,
k=10, covariance_eigh); LAEPCA alone on noise (10000 x 500, k=20: m
within the one-thread solve of method='auto'); and 20 calls of laefast.exact_w1 (m=200, k=10:
its 10 solves in one parallel region a call).

--thread-timeout E runs the whole script again in a child process with
OPENBLAS_THREAD_TIMEOUT=E in its environment (OpenBLAS reads it when it
loads, before NumPy's import returns: it cannot be set from inside a
process that has imported NumPy), which makes the workers spin 2^E cycles
instead (4 <= E <= 30), and prints both runs.

Report only: always exits 0.
"""

import argparse
import os
import subprocess
import sys


def _parse(argv):
    parser = argparse.ArgumentParser(prog="bench_contention.py",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2,
                        help="laefast's and every BLAS pool's threads "
                             "(default 2)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="rounds; best and median are printed "
                             "(default 5)")
    parser.add_argument("--thread-timeout", type=int, default=None,
                        metavar="E",
                        help="also run with OPENBLAS_THREAD_TIMEOUT=E "
                             "(4 to 30) in a child process")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.repeats < 1:
        parser.error("--threads and --repeats must be >= 1")
    if args.thread_timeout is not None and not 4 <= args.thread_timeout <= 30:
        parser.error("--thread-timeout must be in [4, 30]")
    return args


def run(threads, repeats):
    import time

    import numpy as np
    from scipy.linalg.blas import dgemm
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    import laefast
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_peers import decaying

    rng = np.random.default_rng(0)
    wide = decaying(1500, 2048, 1.0, 0.3, 4)
    tall = decaying(200_000, 256, 1.0, 0.3, 5)
    noise = rng.standard_normal((10_000, 500))
    Xs = rng.standard_normal((200, 400))
    C, W2 = Xs @ Xs.T, rng.standard_normal((200, 10))
    A = rng.standard_normal((800, 800))
    cases = {
        "wide LAEPCA": lambda: laefast.LAEPCA(10, n_threads=threads,
                                              random_state=0).fit(wide),
        "wide arpack": lambda: PCA(10, svd_solver="arpack",
                                   random_state=0).fit(wide),
        "tall LAEPCA": lambda: laefast.LAEPCA(10, n_threads=threads,
                                              random_state=0).fit(tall),
        "tall covariance_eigh": lambda: PCA(
            10, svd_solver="covariance_eigh").fit(tall),
        "no gap LAEPCA": lambda: laefast.LAEPCA(20, n_threads=threads,
                                                random_state=0).fit(noise),
        "exact_w1 x 20": lambda: [laefast.exact_w1(C, W2, 1.0,
                                                   n_threads=threads)
                                  for _ in range(20)],
    }
    # Each condition is prepared before every timed call; "after itself"
    # is a loop of the same call (its own last BLAS call before it).
    before = {"settled": lambda fn: time.sleep(0.3),
              "numpy gemm": lambda fn: (time.sleep(0.3), A @ A),
              "scipy gemm": lambda fn: (time.sleep(0.3), dgemm(1.0, A, A)),
              "after itself": lambda fn: (time.sleep(0.3), fn())}
    times = {(c, b): [] for c in cases for b in before}
    with threadpool_limits(threads):
        for _ in range(repeats):
            for c, fn in cases.items():
                for b, prepare in before.items():
                    prepare(fn)
                    t0 = time.perf_counter()
                    fn()
                    times[c, b].append(time.perf_counter() - t0)
    timeout = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    print(f"\n== {threads} threads, OPENBLAS_THREAD_TIMEOUT="
          f"{timeout if timeout else '(unset: 2^28 cycles)'}; "
          f"best / median of {repeats}, ms")
    print(f"  {'case':<22}" + "".join(f"{b:>22}" for b in before))
    for c in cases:
        print(f"  {c:<22}" + "".join(
            f"{1e3 * min(times[c, b]):12.1f} /{1e3 * np.median(times[c, b]):8.1f}"
            for b in before))
    for name, peer in (("wide", "arpack"), ("tall", "covariance_eigh")):
        print(f"  {name} LAEPCA / {peer} (best): " + ", ".join(
            f"{b} {min(times[name + ' LAEPCA', b]) / min(times[f'{name} {peer}', b]):.2f}"
            for b in before))


def main(argv=None):
    args = _parse(argv)
    run(args.threads, args.repeats)
    if args.thread_timeout is not None:
        env = dict(os.environ, OPENBLAS_THREAD_TIMEOUT=str(args.thread_timeout))
        subprocess.run([sys.executable, os.path.abspath(__file__),
                        "--threads", str(args.threads), "--repeats",
                        str(args.repeats)], env=env, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
