"""One rule per parameter and one message per array fault, whichever entry
point takes them; and thread counts that respect CPU quotas."""

import os
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import laefast
from laefast import GramAccumulator, LAEPCA, LAEStream
from laefast import landscape
from laefast import _parallel

RNG = np.random.default_rng(0)
X = RNG.standard_normal((60, 6)) * np.arange(6, 0, -1)
Xc = X - X.mean(axis=0)
C = Xc.T @ Xc
W2 = RNG.standard_normal((6, 2))
W1 = RNG.standard_normal((2, 6))


def _step(**kw):
    a, b = W1.copy(), W2.copy()
    kw.setdefault("alpha", 1e-4)
    return laefast.step(a, b, C, kw.pop("lam", 1.0), **kw)


# Every entry point that takes the parameter, called with one value of it.
ENTRIES = {
    "tol": {
        "solve": lambda v: laefast.solve(C, 2, 1.0, tol=v),
        "fit": lambda v: laefast.fit(X, 2, 1.0, tol=v),
        "LAEPCA": lambda v: LAEPCA(2, tol=v).fit(X),
        "LAEStream": lambda v: LAEStream(2, tol=v).fit(X),
    },
    "max_iter": {
        "solve": lambda v: laefast.solve(C, 2, 1.0, max_iter=v),
        "fit": lambda v: laefast.fit(X, 2, 1.0, max_iter=v),
        "LAEPCA": lambda v: LAEPCA(2, max_iter=v).fit(X),
        "LAEStream": lambda v: LAEStream(2, max_iter=v).fit(X),
    },
    "n_threads": {
        "solve": lambda v: laefast.solve(C, 2, 1.0, n_threads=v),
        "fit": lambda v: laefast.fit(X, 2, 1.0, n_threads=v),
        "exact_w1": lambda v: laefast.exact_w1(C, W2, 1.0, n_threads=v),
        "gram_matrix": lambda v: laefast.gram_matrix(X, n_threads=v),
        "GramAccumulator": lambda v: GramAccumulator(n_threads=v).add(X),
        "LAEPCA": lambda v: LAEPCA(2, n_threads=v).fit(X),
        "LAEStream": lambda v: LAEStream(2, n_threads=v).fit(X),
    },
    "lam": {
        "solve": lambda v: laefast.solve(C, 2, v),
        "fit": lambda v: laefast.fit(X, 2, v),
        "step": lambda v: _step(lam=v),
        "exact_w1": lambda v: laefast.exact_w1(C, W2, v),
        "exact_w2": lambda v: laefast.exact_w2(C, W1, v),
        "loss": lambda v: laefast.loss(C, W1, W2, v),
        "LAEPCA": lambda v: LAEPCA(2, lam=v).fit(X),
        "LAEStream": lambda v: LAEStream(2, lam=v).fit(X),
        "scalar_trajectory": lambda v: landscape.scalar_trajectory(
            "tied", 0.5, 0.5, 1.0, v),
        "scalar_critical_points": lambda v: landscape.scalar_critical_points(
            1.0, v),
    },
    "alpha": {
        "solve": lambda v: laefast.solve(C, 2, 1.0, method="untied", alpha=v),
        "fit": lambda v: laefast.fit(X, 2, 1.0, method="untied", alpha=v),
        "step": lambda v: _step(alpha=v),
        "LAEPCA": lambda v: LAEPCA(2, method="untied", alpha=v).fit(X),
        "LAEStream": lambda v: LAEStream(2, mode="sgd", alpha=v).fit(X),
        "scalar_trajectory": lambda v: landscape.scalar_trajectory(
            "tied", 0.5, 0.5, 1.0, 0.1, alpha=v),
    },
    "method": {
        "solve": lambda v: laefast.solve(C, 2, 1.0, method=v),
        "fit": lambda v: laefast.fit(X, 2, 1.0, method=v),
        "step": lambda v: _step(method=v),
        "LAEPCA": lambda v: LAEPCA(2, method=v).fit(X),
        "LAEStream": lambda v: LAEStream(2, method=v).fit(X),
        "scalar_trajectory": lambda v: landscape.scalar_trajectory(
            v, 0.5, 0.5, 1.0, 0.1),
    },
    "n_components": {
        "solve": lambda v: laefast.solve(C, v, 1.0),
        "fit": lambda v: laefast.fit(X, v, 1.0),
        "LAEPCA": lambda v: LAEPCA(v).fit(X),
        "LAEStream": lambda v: LAEStream(v).fit(X),
    },
    "oversample": {
        "LAEPCA": lambda v: LAEPCA(2, oversample=v).fit(X),
        "LAEStream": lambda v: LAEStream(2, oversample=v).fit(X),
    },
    "batch_size": {
        "LAEPCA": lambda v: LAEPCA(2, batch_size=v).fit(X),
        "LAEStream": lambda v: LAEStream(2, batch_size=v).fit(X),
        "train_mlp": lambda v: laefast.alignment.train_mlp(
            X, (X[:, 0] > 0).astype(int), "kp", hidden=(4,), epochs=1,
            batch_size=v),
    },
    "regularizer": {
        "solve": lambda v: laefast.solve(C, 2, 1.0, method="untied",
                                         regularizer=v),
        "fit": lambda v: laefast.fit(X, 2, 1.0, method="untied",
                                     regularizer=v),
        "step": lambda v: _step(regularizer=v),
        "loss": lambda v: laefast.loss(C, W1, W2, 1.0, v),
        "scalar_trajectory": lambda v: landscape.scalar_trajectory(
            "tied", 0.5, 0.5, 1.0, 0.1, regularizer=v),
    },
}

# What every entry point's message says of the parameter's base rule.
RULE_TEXT = {
    "tol": "a finite float in the range [0, inf)",
    "max_iter": "an int in the range [0, 2**62]",
    "n_threads": "an int in the range [1, 65536]",
    "lam": "a finite float in the range [0, inf)",
    "alpha": "a finite float in the range (0, inf)",
    "method": "a str among {'untied', 'sync', 'tied', 'exact-untied', "
              "'exact-sync', 'exact-tied'}",
    "n_components": "an int in the range [1, inf)",
    "oversample": "an int in the range [0, inf)",
    "batch_size": "an int in the range [1, inf)",
    "regularizer": "a str among {'sum', 'product'}",
}

BAD = {
    "tol": [-1e-8, np.inf, np.nan, "1e-8", True],
    "max_iter": [-1, 2.0, 2 ** 63, True],
    "n_threads": [0, -2, 1.5, 2 ** 31, True],
    "lam": [-1.0, np.inf, np.nan, True, None],
    "alpha": [0.0, -1.0, np.inf, "big"],
    "method": ["newton", 3],
    "n_components": [0, -1, True, "two"],
    "oversample": [-1, 1.5],
    "batch_size": [0, 2.0],
    "regularizer": ["l1", 2],
}

CASES = [(name, owner, value) for name, entries in ENTRIES.items()
         for owner in entries for value in BAD[name]]


@pytest.mark.parametrize("name, owner, value", CASES,
                         ids=[f"{n}-{o}-{v!r}" for n, o, v in CASES])
def test_every_entry_point_rejects_a_bad_value_with_the_rules_message(
        name, owner, value):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError) as info:
            ENTRIES[name][owner](value)
    message = str(info.value)
    assert re.fullmatch(
        rf"The '{name}' parameter of {owner} must be .*"
        rf"{re.escape(RULE_TEXT[name])}.* Got {re.escape(repr(value))} "
        r"instead\.", message), message
    # scikit-learn's InvalidParameterError is both.
    assert isinstance(info.value, TypeError)


def test_tol_inf_is_rejected_by_the_estimator_as_by_solve():
    """The issue's example: LAEPCA(tol=inf) was accepted, solve rejected it."""
    texts = []
    for call, owner in ((lambda: laefast.solve(C, 2, 1.0, tol=np.inf),
                         "solve"),
                        (lambda: LAEPCA(2, tol=np.inf).fit(X), "LAEPCA")):
        with pytest.raises(ValueError, match=r"The 'tol' parameter of "
                                             rf"{owner} must be") as info:
            call()
        texts.append(str(info.value).replace(owner, "<entry>"))
    assert texts[0] == texts[1].replace("None or ", "")


@pytest.mark.parametrize("name, value", [
    ("tol", 0.0), ("max_iter", 0), ("lam", 0.0), ("n_threads", 1),
    ("method", "sync"), ("n_components", 1), ("oversample", 0),
    ("batch_size", 1), ("alpha", 1e-6), ("regularizer", "sum")])
def test_the_rules_boundary_values_are_accepted_everywhere(name, value):
    for owner, call in ENTRIES[name].items():
        if name == "lam" and owner in ("solve", "fit", "step") or \
                (name, owner) in (("method", "step"),):
            continue      # lam = 0 needs a method that stops without it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call(value)


def test_estimator_constraints_come_from_the_same_rules():
    sklearn = pytest.importorskip("sklearn")
    from sklearn.utils._param_validation import (
        InvalidParameterError, validate_parameter_constraints)
    for cls in (LAEPCA, LAEStream):
        est = cls()
        params = est.get_params()
        assert set(cls._parameter_constraints) == set(params)
        # The defaults satisfy both scikit-learn's reading of the rules and
        # laefast's own check.
        validate_parameter_constraints(cls._parameter_constraints, params,
                                       cls.__name__)
        # A value the rules reject, scikit-learn's constraints reject too.
        for name, value in (("oversample", -1), ("n_threads", 0),
                            ("max_iter", -1), ("lam", -1.0)):
            with pytest.raises(InvalidParameterError, match=name):
                validate_parameter_constraints(
                    cls._parameter_constraints, {**params, name: value},
                    cls.__name__)
    assert sklearn is not None


def test_the_same_messages_without_sklearn():
    code = textwrap.dedent("""
        import sys
        sys.modules["sklearn"] = None          # import sklearn fails
        import numpy as np
        import laefast
        X = np.random.default_rng(0).standard_normal((40, 5))
        assert laefast.LAEPCA._parameter_constraints is None
        for call in (lambda: laefast.LAEPCA(2, tol=np.inf).fit(X),
                     lambda: laefast.LAEStream(2, oversample=-1).fit(X),
                     lambda: laefast.solve(X.T @ X, 2, 1.0, max_iter=-1)):
            try:
                call()
            except ValueError as e:
                assert isinstance(e, TypeError)
                print(e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert out == [
        "The 'tol' parameter of LAEPCA must be None or a finite float in the "
        "range [0, inf). Got inf instead.",
        "The 'oversample' parameter of LAEStream must be an int in the range "
        "[0, inf). Got -1 instead.",
        "The 'max_iter' parameter of solve must be None or an int in the "
        "range [0, 2**62]. Got -1 instead."]


# -- one array check, one message per fault ---------------------------------------

def _sparse():
    sparse = pytest.importorskip("scipy.sparse")
    return sparse.csr_matrix(X)


FAULTS = {
    "nan": (lambda: np.where(np.arange(X.size).reshape(X.shape) == 13,
                             np.nan, X),
            ValueError, r"X contains NaN \(first at row 2\)"),
    "inf": (lambda: np.where(np.arange(X.size).reshape(X.shape) == 13,
                             -np.inf, X),
            ValueError, r"X contains infinity \(first at row 2\)"),
    "1-D": (lambda: X[0], ValueError,
            r"X must be 2-D \(n_samples, n_features\), got 1-D \(shape "
            r"\(6,\)\)\. Reshape your data"),
    "3-D": (lambda: X[None], ValueError, r"X must be 2-D .* got 3-D"),
    "no features": (lambda: np.empty((5, 0)), ValueError,
                    r"X has no columns: found array with 0 feature\(s\) "
                    r"\(shape=\(5, 0\)\) while a minimum of 1 is required"),
    "strings": (lambda: np.array([["a", "b"], ["c", "d"]]), ValueError,
                r"X must be numeric: real numbers, got dtype <U1$"),
    "complex": (lambda: X + 1j, ValueError,
                r"X must be numeric: real numbers, got dtype complex128 "
                r"\(Complex data not supported\)"),
    "objects": (lambda: np.array([[1.0, {"a": 1}]], dtype=object), TypeError,
                r"float\(\) argument must be a string or a (real )?number"),
    "sparse": (_sparse, TypeError,
               r"X: laefast does not support sparse input \(csr_matrix\)"),
}

TAKERS = {
    "fit": lambda A: laefast.fit(A, 1, 0.1),
    "gram_matrix": laefast.gram_matrix,
    "LAEPCA": lambda A: LAEPCA(1).fit(A),
    "LAEPCA.partial_fit": lambda A: LAEPCA(1).partial_fit(A),
    "LAEStream": lambda A: LAEStream(1).partial_fit(A),
    "GramAccumulator": lambda A: GramAccumulator().add(A),
}


@pytest.mark.parametrize("taker", sorted(TAKERS))
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_array_taker_names_each_fault_the_same_way(fault, taker):
    make, error, message = FAULTS[fault]
    with pytest.raises(error, match=message):
        TAKERS[taker](make())


@pytest.mark.parametrize("taker", ["fit", "gram_matrix", "LAEPCA"])
def test_no_samples_is_one_message(taker):
    with pytest.raises(ValueError, match=r"X has no rows: found array with 0 "
                                         r"sample\(s\) \(shape=\(0, 6\)\)"):
        TAKERS[taker](np.empty((0, 6)))


def test_an_empty_chunk_is_no_fault():
    # A stream or an accumulator may be handed an empty piece: nothing is
    # added, and nothing is wrong.
    acc = GramAccumulator().add(X).add(np.empty((0, 6)))
    assert acc.n_samples_seen_ == 60
    stream = LAEStream(1).partial_fit(X).partial_fit(np.empty((0, 6)))
    assert stream.n_samples_seen_ == 60


@pytest.mark.parametrize("taker", ["LAEPCA.partial_fit", "LAEStream",
                                   "GramAccumulator"])
def test_a_later_batch_with_other_features_is_one_message(taker):
    first = {"LAEPCA.partial_fit": lambda: LAEPCA(1).partial_fit(X),
             "LAEStream": lambda: LAEStream(1).partial_fit(X),
             "GramAccumulator": lambda: GramAccumulator().add(X)}[taker]()
    add = first.add if taker == "GramAccumulator" else first.partial_fit
    owner = taker.split(".")[0]
    with pytest.raises(ValueError, match=rf"X has 5 features, but {owner} is "
                                         r"expecting 6 features as input"):
        add(X[:, :5])


# -- thread counts that respect CPU quotas ------------------------------------------

@pytest.fixture
def cpus(monkeypatch, tmp_path):
    """Fake cgroup files and affinity; available_cpus re-read each time."""
    v2 = tmp_path / "cpu.max"
    q1, p1 = tmp_path / "cfs_quota_us", tmp_path / "cfs_period_us"
    monkeypatch.setattr(_parallel, "_CGROUP_V2_CPU_MAX", str(v2))
    monkeypatch.setattr(_parallel, "_CGROUP_V1_QUOTA", str(q1))
    monkeypatch.setattr(_parallel, "_CGROUP_V1_PERIOD", str(p1))
    monkeypatch.setattr(_parallel, "_available", None)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)),
                        raising=False)
    monkeypatch.setattr(_parallel, "max_threads", lambda: 64)
    monkeypatch.setattr(_parallel, "openmp_enabled", lambda: True)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)

    def count(**files):
        for name, path in (("v2", v2), ("v1_quota", q1), ("v1_period", p1)):
            if name in files:
                path.write_text(files[name])
            elif path.exists():
                path.unlink()
        _parallel._available = None
        return _parallel.resolve_threads(None)
    return count


def test_no_quota_uses_every_core(cpus):
    assert cpus() == 64
    assert cpus(v2="max 100000\n") == 64
    assert cpus(v1_quota="-1\n", v1_period="100000\n") == 64


def test_cgroup_v2_quota_caps_the_thread_count(cpus):
    assert cpus(v2="200000 100000\n") == 2
    assert cpus(v2="150000 100000\n") == 2        # 1.5 CPUs: rounded up
    assert cpus(v2="50000 100000\n") == 1          # never below 1


def test_cgroup_v1_quota_caps_the_thread_count(cpus):
    assert cpus(v1_quota="400000\n", v1_period="100000\n") == 4
    assert cpus(v1_quota="garbage", v1_period="100000") == 64   # unreadable


def test_affinity_caps_the_thread_count(cpus, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 5, 7},
                        raising=False)
    assert cpus() == 3
    assert cpus(v2="200000 100000") == 2


def test_omp_num_threads_and_explicit_counts_win(cpus, monkeypatch):
    assert cpus(v2="200000 100000") == 2
    assert _parallel.resolve_threads(8) == 8       # asked for: given
    monkeypatch.setenv("OMP_NUM_THREADS", "16")
    monkeypatch.setattr(_parallel, "max_threads", lambda: 16)
    assert cpus(v2="200000 100000") == 16           # the user's setting


def test_fit_gram_checks_the_parameters_too():
    with pytest.raises(ValueError, match=r"The 'tol' parameter of LAEPCA must "
                                         r"be None or a finite float"):
        LAEPCA(2, tol=-1.0).fit_gram(C, X.mean(axis=0), X.shape[0])


def test_a_dask_array_names_its_faults_as_numpy_arrays_do():
    da = pytest.importorskip("dask.array")
    for bad, message in ((da.ones((5,), chunks=5), r"X must be 2-D"),
                         (da.ones((5, 3), chunks=5) + 1j, "Complex data not "
                                                           "supported"),
                         (da.ones((0, 3), chunks=5), "X has no rows")):
        with pytest.raises(ValueError, match=message):
            LAEPCA(1).fit(bad)


@pytest.mark.parametrize("seed", [None, 0, 2 ** 40, np.random.default_rng(1),
                                  np.random.SeedSequence(2)])
def test_random_state_takes_what_default_rng_takes(seed):
    a = LAEPCA(2, random_state=seed).fit(X)
    assert a.components_.shape == (2, 6)
    with pytest.raises(ValueError, match=r"The 'random_state' parameter of "
                                         r"LAEPCA must be None, an int in the "
                                         r"range \[0, inf\)"):
        LAEPCA(2, random_state=-1).fit(X)
