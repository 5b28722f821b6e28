"""LAEPCA on Dask arrays, on a real two-process LocalCluster (loopback).

Components against np.linalg.svd of the gathered data (tall: accumulators
tree-merged; wide: block products), lazy transform, partial_fit by blocks,
a bad block, and a worker killed during a fit.

The samples path (C never formed) starts above 2 GiB of Gram matrix, so the
tests that take it lower laefast._dask.GRAM_BYTES_LIMIT instead of making
m > 16384 features.
"""

import copy
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

import laefast._dask as lae_dask  # noqa: E402
from laefast import LAEPCA  # noqa: E402

import _helpers  # noqa: E402
from _helpers import (assert_unchanged, centered_gram,  # noqa: E402
                      max_sine, snapshot, svd_components)

# The workers cannot import this test module or the helpers: ship their
# functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
cloudpickle.register_pickle_by_value(_helpers)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                  processes=True, host="127.0.0.1",
                                  dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def spiked(n, m, k=4, seed=0):
    """k spikes of standard deviation 10 k .. 10 over unit noise, offset 2."""
    return _helpers.spiked(n, m, 10.0 * np.arange(k, 0, -1), offset=2.0,
                           seed=seed)


def test_tall_uneven_chunks_match_svd(client):
    X = spiked(3000, 40, seed=1)
    dX = da.from_array(X, chunks=((700, 1000, 1300), (15, 25)))
    est = LAEPCA(4).fit(dX)
    # The Gram path: C was kept, so partial_fit adds to it.
    assert copy.deepcopy(est).partial_fit(X[:10]).n_samples_seen_ == 3010
    assert max_sine(est.components_, svd_components(X, 4)) < 1e-10
    ref = LAEPCA(4).fit(X)
    np.testing.assert_allclose(est.explained_variance_,
                               ref.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(est.mean_, X.mean(axis=0), rtol=1e-12)
    # Lazy projections, as Dask arrays, equal to NumPy's.
    Z = est.transform(dX)
    assert isinstance(Z, da.Array) and Z.shape == (3000, 4)
    np.testing.assert_allclose(Z.compute(), est.transform(X), rtol=1e-10,
                               atol=1e-9)
    back = est.inverse_transform(Z)
    assert isinstance(back, da.Array)
    np.testing.assert_allclose(back.compute(), est.inverse_transform(
        est.transform(X)), rtol=1e-10, atol=1e-9)


def test_wide_samples_path_matches_svd(client, monkeypatch):
    monkeypatch.setattr(lae_dask, "GRAM_BYTES_LIMIT", 0)   # C "too big"
    X = spiked(400, 300, seed=2)
    dX = da.from_array(X, chunks=((90, 150, 160), (100, 200)))
    est = LAEPCA(4).fit(dX)
    with pytest.raises(ValueError, match="without forming the Gram matrix"):
        est.partial_fit(X[:10])                     # never formed C
    assert max_sine(est.components_, svd_components(X, 4)) < 1e-10
    np.testing.assert_allclose(est.explained_variance_,
                               LAEPCA(4).fit(X).explained_variance_,
                               rtol=1e-10)
    with pytest.raises(ValueError, match="method='exact-tied' needs the "
                                         "Gram matrix"):
        LAEPCA(4, method="exact-tied").fit(dX)


def test_float32_and_partial_fit_by_blocks(client):
    X = spiked(2000, 16, seed=3)
    dX = da.from_array(X.astype(np.float32), chunks=(600, 16))
    est = LAEPCA(3).fit(dX)
    assert est.components_.dtype == np.float32
    assert max_sine(est.components_.astype(np.float64),
                    svd_components(X.astype(np.float32).astype(np.float64),
                                   3)) < 1e-5
    inc = LAEPCA(3)
    inc.partial_fit(da.from_array(X[:900], chunks=(250, 8)), solve=False)
    assert not hasattr(inc, "components_")
    inc.partial_fit(da.from_array(X[900:], chunks=(400, 16)))
    assert inc.n_samples_seen_ == 2000
    assert max_sine(inc.components_, svd_components(X, 3)) < 1e-10


def test_stream_takes_dask_arrays(client):
    from laefast import LAEStream
    X = spiked(1500, 12, seed=5)
    dX = da.from_array(X, chunks=((400, 600, 500), (5, 7)))
    gram = LAEStream(2, lam=1.0).partial_fit(X[:100]).partial_fit(dX)
    G = centered_gram(np.vstack([X[:100], X]))
    assert gram.n_samples_seen_ == 1600
    np.testing.assert_allclose(gram.gram_, G, rtol=1e-10,
                               atol=1e-9 * np.abs(G).max())
    # sgd mode reads the Dask array slab by slab, as an array-like.
    sgd = LAEStream(2, lam=1.0, mode="sgd", batch_size=50,
                    max_memory=8 * 12 * 400, random_state=0).partial_fit(dX)
    ref = LAEStream(2, lam=1.0, mode="sgd", batch_size=50,
                    max_memory=8 * 12 * 400, random_state=0).partial_fit(X)
    np.testing.assert_allclose(sgd.W2_, ref.W2_, rtol=1e-10, atol=1e-12)


def test_bad_block_named_and_model_untouched(client, monkeypatch):
    X = spiked(1000, 10, seed=4)
    est = LAEPCA(2).fit(X)
    before = snapshot(est, fitted_only=True)
    bad = X.copy()
    bad[450, 2] = np.nan
    dX = da.from_array(bad, chunks=(300, 10))
    for call in (est.fit, est.partial_fit):
        with pytest.raises(ValueError, match=r"block 1 of X \(rows 300:600\)"
                                             r": .*NaN \(first at row 150\)"):
            call(dX)
        assert_unchanged(est, before)
    monkeypatch.setattr(lae_dask, "GRAM_BYTES_LIMIT", 0)
    with pytest.raises(ValueError, match=r"block 1 of X \(rows 300:600\)"):
        est.fit(dX)
    assert_unchanged(est, before)
    # Blocks of at most 4x Dask's array.chunk-size: 40 bytes, under a row.
    with dask.config.set({"array.chunk-size": "10B"}), \
            pytest.raises(ValueError, match="cannot be split into blocks of "
                                            "whole rows"):
        est.fit(dX)


def _slow_block(block, block_info=None):
    # Deterministic data per block, made slowly: the fit outlives a kill.
    time.sleep(0.25)
    i = block_info[None]["chunk-location"][0]
    return spiked(block.shape[0], block.shape[1], seed=100 + i)


def test_killed_worker_is_recomputed(client):
    dX = da.zeros((4800, 24), chunks=(400, 24)).map_blocks(_slow_block,
                                                         dtype=np.float64)
    X = dX.compute()
    pids = client.run(os.getpid)
    killed = {}

    def kill():
        time.sleep(0.6)
        pid = sorted(pids.values())[0]
        killed["during_fit"] = not done.is_set()
        os.kill(pid, signal.SIGKILL)
        killed["pid"] = pid

    done = threading.Event()
    killer = threading.Thread(target=kill)
    killer.start()
    est = LAEPCA(3).fit(dX)
    done.set()
    killer.join()
    assert killed["during_fit"]
    with pytest.raises(ProcessLookupError, match="No such process"):
        os.kill(killed["pid"], 0)                   # it is gone
    assert max_sine(est.components_, svd_components(X, 3)) < 1e-10
    client.wait_for_workers(2, timeout=30)          # the nanny restarted it


def test_dask_not_imported_for_numpy_input():
    code = ("import sys, numpy as np, laefast\n"
            "est = laefast.LAEPCA(2).fit(np.random.rand(50, 5))\n"
            "est.transform(np.random.rand(3, 5))\n"
            "assert not any(m.split('.')[0] in ('dask', 'distributed')"
            " for m in sys.modules), 'dask imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
