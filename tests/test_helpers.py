"""The shared test helpers (tests/_helpers.py) can fail: a snapshot sees
every change, the generators make the data their docstrings describe, and
loss_progress is 0 at W = 0 and 1 at the closed-form minimum."""

import numpy as np
import pytest

import laefast

from _helpers import (assert_unchanged, centered_gram, loss_progress,
                      scaled_gaussian, snapshot, spiked)


class _Thing:
    def __init__(self):
        self.a_ = np.arange(4.0)
        self.n_ = 3
        self._private = [1]


@pytest.mark.parametrize("change", ["element", "scalar", "new", "removed"])
def test_snapshot_sees_every_change(change):
    thing = _Thing()
    before = snapshot(thing)
    assert_unchanged(thing, before)
    thing.a_ += 0.0                   # in place, equal: still unchanged
    assert_unchanged(thing, before)
    if change == "element":
        thing.a_[2] = 7.0             # the snapshot holds a copy
    elif change == "scalar":
        thing.n_ = 4
    elif change == "new":
        thing.b_ = 1
    else:
        del thing._private
    message = {"element": "Mismatched elements: 1 / 4", "scalar": "n_: 3 -> 4",
               "new": r"added or removed: \['b_'\]",
               "removed": r"added or removed: \['_private'\]"}[change]
    with pytest.raises(AssertionError, match=message):
        assert_unchanged(thing, before)


def test_fitted_only_snapshot_ignores_private_attributes():
    thing = _Thing()
    before = snapshot(thing, fitted_only=True)
    assert set(before) == {"a_", "n_"}
    thing._private = None
    assert_unchanged(thing, before)
    thing.n_ = 0
    with pytest.raises(AssertionError, match="n_: 3 -> 0"):
        assert_unchanged(thing, before)


def test_generators_make_the_described_data():
    # spiked: top eigenvalues of the covariance spikes^2 + 1, the rest 1,
    # mean offset; scaled_gaussian: covariance Q diag(scales^2) Q^T.
    spikes = np.array([6.0, 4.0, 2.0])
    for noise_first in (False, True):
        X = spiked(40_000, 10, spikes, offset=3.0, noise_first=noise_first)
        w = np.linalg.eigvalsh(np.cov(X.T))[::-1]
        np.testing.assert_allclose(w[:3], spikes ** 2 + 1, rtol=0.05)
        np.testing.assert_allclose(w[3:], 1.0, atol=0.1)
        np.testing.assert_allclose(X.mean(axis=0), 3.0, atol=0.1)
    scales = np.linspace(3.0, 1.0, 6)
    Y = scaled_gaussian(40_000, 6, scales, offset=-2.0, rotate=True)
    np.testing.assert_allclose(np.linalg.eigvalsh(np.cov(Y.T))[::-1],
                               scales ** 2, rtol=0.05)
    np.testing.assert_allclose(Y.mean(axis=0), -2.0, atol=0.05)


def test_loss_progress_is_zero_at_zero_and_one_at_the_minimum():
    X = scaled_gaussian(500, 6, np.linspace(3.0, 0.5, 6), seed=2)
    C = centered_gram(X)
    s, U = np.linalg.eigh(C)
    s, U = s[::-1], U[:, ::-1]
    k, lam = 2, 0.3 * s[1]
    # The global minimum in closed form: W2 = U_k diag(sqrt(1 - lam/s_i)),
    # W1 = W2^T (docs/theory.md).
    W2 = U[:, :k] * np.sqrt(1.0 - lam / s[:k])
    assert loss_progress(C, W2.T, W2, lam) == pytest.approx(1.0, abs=1e-12)
    assert loss_progress(C, 0 * W2.T, 0 * W2, lam) == pytest.approx(
        0.0, abs=1e-12)
    res = laefast.solve(C, k, lam, method="exact-tied", tol=1e-12,
                        random_state=0)
    assert loss_progress(C, res.W1, res.W2, lam) == pytest.approx(1.0,
                                                                  abs=1e-9)
