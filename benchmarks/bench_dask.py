"""laefast's LAEPCA against dask-ml's PCA on the same Dask cluster and data.

    python benchmarks/bench_dask.py [--rows 2000000] [--features 256]
        [--chunk-rows 100000] [--components 10] [--workers 2]
        [--repeats 1] [--no-persist]

The data, float32, are generated lazily by dask.array.random (a spiked
model: `--components` strong directions plus unit noise) in chunks of whole
rows, then persisted in the workers' memory (unless --no-persist, when
every pass regenerates them) so that every solver reads the same blocks.
Solvers: laefast.LAEPCA (block Gram accumulators on the workers, merged by
Chan's formula, solved on the client) and dask_ml.decomposition.PCA with
svd_solver 'full', 'tsqr' and 'randomized', run interleaved, best wall
time of --repeats.  Accuracy against a float64 reference: the exact top
eigenvectors (numpy.linalg.eigh) of the centered Gram matrix computed by
Dask in float64 (Xc^T Xc with dask.array).  A solver is "accurate" when
its largest sine to the reference is below 1e-4 (float32 data).  Needs the
[bench] extra (dask-ml).
"""

import argparse
import time

import numpy as np


def make_data(da, n, m, k, chunk_rows, seed=0):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((m, k)))[0]
    scales = np.linspace(20.0, 5.0, k)
    drng = da.random.default_rng(seed)
    Z = drng.standard_normal((n, k), chunks=(chunk_rows, k),
                             dtype=np.float32)
    noise = drng.standard_normal((n, m), chunks=(chunk_rows, m),
                                 dtype=np.float32)
    W = (U * scales).T.astype(np.float32)
    return (Z @ W + noise + np.float32(1.0)).astype(np.float32)


def sines(A, B):
    A = np.asarray(A, dtype=np.float64)
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    cos = np.sum(A * B, axis=1)
    return np.linalg.norm(A - cos[:, None] * B, axis=1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--features", type=int, default=256)
    p.add_argument("--chunk-rows", type=int, default=100_000)
    p.add_argument("--components", type=int, default=10)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--no-persist", action="store_true")
    args = p.parse_args()

    import dask
    import dask.array as da
    from dask_ml.decomposition import PCA
    from distributed import Client, LocalCluster, wait

    import laefast

    n, m, k = args.rows, args.features, args.components
    with LocalCluster(n_workers=args.workers, threads_per_worker=1,
                      processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, \
            Client(cluster) as client:
        X = make_data(da, n, m, k, args.chunk_rows)
        print(f"data: {n} x {m} float32 ({X.nbytes / 2**30:.2f} GiB) in "
              f"{X.numblocks[0]} chunks of {args.chunk_rows} rows; "
              f"{args.workers} worker processes x 1 thread; "
              f"dask {dask.__version__}, laefast {laefast.__version__}")
        if not args.no_persist:
            t = time.perf_counter()
            X = X.persist()
            wait(X)
            print(f"persisted in {time.perf_counter() - t:.1f} s")
        # The float64 reference.
        t = time.perf_counter()
        X64 = X.astype(np.float64)
        mean = X64.mean(axis=0)
        Xc = X64 - mean
        C = (Xc.T @ Xc).compute()
        w, V = np.linalg.eigh(C)
        ref_vecs, ref_vals = V[:, ::-1][:, :k].T, w[::-1][:k] / (n - 1)
        print(f"reference (float64 Gram by dask + eigh): "
              f"{time.perf_counter() - t:.1f} s")

        solvers = {
            "laefast LAEPCA": lambda: laefast.LAEPCA(k).fit(X),
            "dask-ml full": lambda: PCA(k, svd_solver="full").fit(X),
            "dask-ml tsqr": lambda: PCA(k, svd_solver="tsqr").fit(X),
            "dask-ml randomized": lambda: PCA(
                k, svd_solver="randomized", random_state=0).fit(X),
        }
        best = {name: np.inf for name in solvers}
        acc = {}
        for _ in range(args.repeats):
            for name, run in solvers.items():
                t = time.perf_counter()
                est = run()
                best[name] = min(best[name], time.perf_counter() - t)
                s = sines(est.components_, ref_vecs)
                ev = np.max(np.abs(np.asarray(est.explained_variance_,
                                              dtype=np.float64) - ref_vals)
                            / ref_vals)
                acc[name] = (float(s.max()), float(ev))
        print(f"\n{'solver':22s} {'wall s':>8s} {'max sine':>10s} "
              f"{'var relerr':>10s}")
        for name in solvers:
            print(f"{name:22s} {best[name]:8.2f} {acc[name][0]:10.2e} "
                  f"{acc[name][1]:10.2e}")
        accurate = [name for name in solvers if name.startswith("dask-ml")
                    and acc[name][0] < 1e-4]
        if accurate:
            rival = min(accurate, key=best.get)
            print(f"\nlaefast / best accurate dask-ml ({rival}): "
                  f"{best['laefast LAEPCA'] / best[rival]:.3f}x "
                  "(target <= 0.5x)")
        else:
            print("\nno dask-ml solver reached a sine below 1e-4")


if __name__ == "__main__":
    main()
