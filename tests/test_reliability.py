"""Reliability: Ctrl-C, fork, extreme scales, degenerate data and edge
parameters never hang, crash or give a silently wrong answer."""

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest

import laefast
from laefast import LAEPCA, LAEStream, fit, solve, step
from laefast._exceptions import ConvergenceWarning


def _spd(m, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, m + 5))
    return (A @ A.T) * scale


# -- Ctrl-C ---------------------------------------------------------------------

_INTERRUPT_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys, threading, time
    import numpy as np
    import laefast
    rng = np.random.default_rng(0)
    A = rng.standard_normal((1000, 1000))
    C = A @ A.T
    X = rng.standard_normal((20000, 200))
    Xbig = rng.standard_normal((40000, 300))

    def run(name, call):
        timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
        start = time.perf_counter()
        timer.start()
        try:
            call()
            outcome = "finished"
        except KeyboardInterrupt:
            outcome = "interrupted"
        timer.join()
        return {"name": name, "outcome": outcome,
                "seconds": time.perf_counter() - start}

    est = laefast.LAEPCA(3, method="untied", random_state=0).fit(X[:500, :20])
    before = est.components_.copy()
    stream = laefast.LAEStream(4, 1.0, mode="sgd", batch_size=64,
                               random_state=0).partial_fit(X[:2000])
    acc = laefast.GramAccumulator().add(Xbig[:100])
    out = [
        run("untied", lambda: laefast.solve(
            C, 10, 1.0, method="untied", max_iter=10**9, tol=0.0)),
        run("exact-untied", lambda: laefast.solve(
            C, 10, 1.0, method="exact-untied", max_iter=10**9, tol=0.0)),
        run("data", lambda: laefast.fit(
            X, 5, 1.0, method="tied", path="data", max_iter=10**9, tol=0.0,
            alpha=1e-9)),
        run("LAEPCA", lambda: est.set_params(
            tol=0.0, max_iter=10**9).fit(X[:, :100])),
        run("sgd", lambda: [stream.partial_fit(X) for _ in range(10**6)]),
        run("gram", lambda: [acc.add(Xbig) for _ in range(10**6)]),
    ]
    same = {"LAEPCA": bool(np.array_equal(est.components_, before)),
            # whole chunks only: nothing of an interrupted chunk is kept
            "sgd": (stream.n_samples_seen_ - 2000) % 20000 == 0
                   and bool(np.isfinite(stream.W2_).all()),
            "gram_n": int(acc.n_samples_seen_) % 40000 == 100}
    print(json.dumps({"runs": out, "same": same}))
""")


def test_ctrl_c_interrupts_every_long_loop():
    """SIGINT after 0.5 s: every long run raises KeyboardInterrupt within a
    second or so (generous for a loaded 2-core machine), and the estimator
    keeps its previous fit."""
    proc = subprocess.run([sys.executable, "-c", _INTERRUPT_SCRIPT],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for run in report["runs"]:
        assert run["outcome"] == "interrupted", run
        assert run["seconds"] < 2.5, run
    assert report["same"]["LAEPCA"]
    assert report["same"]["gram_n"]
    assert report["same"]["sgd"]


# -- fork -----------------------------------------------------------------------

_FORK_X = np.random.default_rng(1).standard_normal((20000, 200))


def _fork_job(_):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stream = LAEStream(5, 1.0, n_threads=2).partial_fit(_FORK_X)
        est = LAEPCA(5, random_state=0, n_threads=2).fit(_FORK_X)
    return (stream.gram_, est.components_,
            [str(w.message) for w in caught
             if issubclass(w.category, RuntimeWarning)])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_runs_on_one_thread_instead_of_hanging():
    """GNU libgomp's pool does not survive fork: the parent runs parallel
    passes, then a forked worker runs the same without hanging (it falls
    back to one thread, and says why) and gets the same answer."""
    gram, comps, _ = _fork_job(0)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        (gram_c, comps_c, messages), = pool.map_async(
            _fork_job, [0]).get(timeout=120)
    np.testing.assert_allclose(gram_c, gram, rtol=1e-12,
                               atol=1e-12 * np.abs(gram).max())
    np.testing.assert_allclose(np.abs(comps_c), np.abs(comps), atol=1e-10)
    assert any("forked" in m and "'spawn'" in m for m in messages), messages


def test_n_threads_too_large_is_rejected():
    with pytest.raises(ValueError, match=r"n_threads=2147483648 is more "
                                         r"threads than OpenMP can start"):
        solve(np.eye(3), 1, 0.1, n_threads=2**31)


def test_stream_fed_by_threads_counts_every_sample():
    """Issue #13: one LAEStream (gram mode) fed by 4 threads: every sample
    is counted and the Gram matrix is the one-shot centered Gram."""
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(2)
    chunks = [rng.standard_normal((300, 12)) + i for i in range(40)]
    stream = LAEStream(3, 1.0)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(stream.partial_fit, chunks))
    X = np.vstack(chunks)
    Xc = X - X.mean(axis=0)
    assert stream.n_samples_seen_ == 12000
    np.testing.assert_allclose(stream.gram_, Xc.T @ Xc, rtol=1e-10,
                               atol=1e-9 * np.abs(Xc.T @ Xc).max())
