"""One table of parameter rules, read by every entry point.

Each parameter laefast takes has one base rule here (RULES): the values
any entry point taking it accepts.  An entry point may add documented
alternatives of its own -- None for "the default", 'auto' for a value
chosen from the data, a float fraction for LAEPCA's n_components -- and
lists them in SIGNATURES.  Every check goes through :func:`check`, so a
parameter is accepted or rejected the same way, with the same message,
wherever it is passed: ``solve(C, k, lam, tol=inf)`` and
``LAEPCA(tol=inf).fit(X)`` both raise

    The 'tol' parameter of solve must be a finite float in the range
    [0, inf). Got inf instead.

(LAEPCA's says "of LAEPCA must be None or a finite float ...": the same
rule, and the alternative LAEPCA adds).  The message has scikit-learn's
form, and the error is scikit-learn's InvalidParameterError when
scikit-learn is installed (a ValueError and a TypeError either way).  The
estimators' ``_parameter_constraints`` (scikit-learn's declarative
constraints, used by its own checks) are generated from the same table by
:func:`sklearn_constraints`.  The rules and messages do not depend on
scikit-learn being installed.
"""

import math
import numbers

import numpy as np

from ._methods import METHODS

__all__ = ["InvalidParameterError", "Interval", "Options", "NONE", "BOOLEAN",
           "RANDOM_STATE", "RULES", "SIGNATURES", "REGULARIZERS",
           "MAX_ITER_LIMIT", "MAX_THREADS", "check", "check_params",
           "sklearn_constraints"]

try:
    from sklearn.utils._param_validation import (
        InvalidParameterError as _SkInvalidParameterError)
except ImportError:             # scikit-learn is optional
    _PARAM_ERROR_BASES = (ValueError, TypeError)
else:
    _PARAM_ERROR_BASES = (_SkInvalidParameterError,)


class InvalidParameterError(*_PARAM_ERROR_BASES):
    """A parameter outside its rule: a ValueError and a TypeError (and
    scikit-learn's InvalidParameterError when it is installed)."""


REGULARIZERS = ("sum", "product")
# Iteration counters are int64 in the kernels; 2**62 leaves headroom.
MAX_ITER_LIMIT = 1 << 62
# OpenMP thread counts are C ints; anything near that is a mistake.
MAX_THREADS = 1 << 16


def _is_int(value):
    if type(value) is int:          # the common case, without the ABC check
        return True
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
    if type(value) is float or type(value) is int:
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _bound_text(value):
    if value is None:
        return "inf"
    if isinstance(value, int) and value >= 1 << 20 and \
            value & (value - 1) == 0:
        return f"2**{value.bit_length() - 1}"
    return f"{value:g}" if isinstance(value, float) else str(value)


class Interval:
    """Numbers in an interval: kind 'int', 'real' (finite floats, ints
    included) or 'real_not_int' (floats only); bool is never a number here.
    closed: 'left', 'right', 'both' or 'neither'; None bounds are open."""

    def __init__(self, kind, left, right, closed="left"):
        self.kind, self.left, self.right, self.closed = kind, left, right, closed
        self._int = kind == "int"
        self._not_int = kind == "real_not_int"
        self._left_open = closed not in ("left", "both")
        self._right_open = closed not in ("right", "both")

    def accepts(self, value):
        if self._int:
            if not _is_int(value):
                return False
        elif not (_is_real(value) and math.isfinite(value)) or (
                self._not_int and _is_int(value)):
            return False
        lo, hi = self.left, self.right
        if lo is not None and (value < lo or (value == lo and self._left_open)):
            return False
        if hi is not None and (value > hi or (value == hi
                                              and self._right_open)):
            return False
        return True

    def describe(self):
        lo = "(" if self.left is None or self.closed in ("right", "neither") \
            else "["
        hi = "]" if self.right is not None and self.closed in ("right", "both") \
            else ")"
        what = {"int": "an int", "real": "a finite float",
                "real_not_int": "a finite float (not an int)"}[self.kind]
        left = "-inf" if self.left is None else _bound_text(self.left)
        return f"{what} in the range {lo}{left}, {_bound_text(self.right)}{hi}"

    def sklearn(self):
        from numbers import Integral, Real
        from sklearn.utils._param_validation import Interval as SkInterval
        from sklearn.utils._param_validation import RealNotInt
        kind = {"int": Integral, "real": Real,
                "real_not_int": RealNotInt}[self.kind]
        return SkInterval(kind, self.left, self.right, closed=self.closed)


class Options:
    """One of a few strings."""

    def __init__(self, values):
        self.values = tuple(values)
        self._set = frozenset(self.values)

    def accepts(self, value):
        return isinstance(value, str) and value in self._set

    def describe(self):
        return "a str among {" + ", ".join(repr(v) for v in self.values) + "}"

    def sklearn(self):
        from sklearn.utils._param_validation import StrOptions
        return StrOptions(set(self.values))


class _Singleton:
    def __init__(self, name, accepts, text, sk):
        self.name, self._accepts, self._text, self._sk = name, accepts, text, sk

    def accepts(self, value):
        return self._accepts(value)

    def describe(self):
        return self._text

    def sklearn(self):
        return self._sk() if callable(self._sk) else self._sk

    def __repr__(self):
        return self.name


NONE = _Singleton("NONE", lambda v: v is None, "None", None)
BOOLEAN = _Singleton("BOOLEAN",
                     lambda v: isinstance(v, (bool, np.bool_)),
                     "an instance of 'bool'", "boolean")
# What numpy.random.default_rng takes that is not an array: None, a seed
# >= 0, a Generator (or its BitGenerator, a SeedSequence, a RandomState).
_SEEDS = (np.random.Generator, np.random.BitGenerator, np.random.SeedSequence,
          np.random.RandomState)
RANDOM_STATE = _Singleton(
    "RANDOM_STATE",
    lambda v: v is None or (_is_int(v) and v >= 0) or isinstance(v, _SEEDS),
    "None, an int in the range [0, inf) or a numpy.random.Generator",
    lambda: [Interval("int", 0, None).sklearn(), *_SEEDS, None])


# The base rule of every parameter: what each entry point taking it accepts.
RULES = {
    # the problem
    "n_components": (Interval("int", 1, None),),
    "lam": (Interval("real", 0, None, "left"),),
    "regularizer": (Options(REGULARIZERS),),
    "center": (BOOLEAN,),
    # the solver
    "method": (Options(METHODS),),
    "alpha": (Interval("real", 0, None, "neither"),),
    "tol": (Interval("real", 0, None, "left"),),
    "max_iter": (Interval("int", 0, MAX_ITER_LIMIT, "both"),),
    "oversample": (Interval("int", 0, None),),
    "random_state": (RANDOM_STATE,),
    "history": (BOOLEAN, Options(("weights",))),
    "path": (Options(("auto", "gram", "data")),),
    # resources
    "n_threads": (Interval("int", 1, MAX_THREADS, "both"),),
    "batch_size": (Interval("int", 1, None),),
    "max_memory": (Interval("int", 1, None),),
    "partials_memory": (Interval("int", 0, None),),
    "block_rows": (Interval("int", 1, None),),
    # estimators
    "whiten": (BOOLEAN,),
    "copy": (BOOLEAN,),
    "verbose": (Interval("int", 0, None), BOOLEAN),
    # streams
    "mode": (Options(("gram", "sgd")),),
    "decay": (Interval("real", 0, None, "left"),),
    "n_samples_total": (Interval("int", 1, None),),
    # the scalar landscapes
    "sigma2": (Interval("real", 0, None, "neither"),),
    "n_iter": (Interval("int", 0, None),),
    "w1": (Interval("real", None, None, "neither"),),
    "w2": (Interval("real", None, None, "neither"),),
}

_AUTO = Options(("auto",))

# Each entry point's parameters: the alternatives it accepts beside the
# base rule (None: the documented default; 'auto': chosen from the data).
SIGNATURES = {
    "solve": {"n_components": (), "method": (), "alpha": (NONE,),
              "tol": (), "max_iter": (NONE,), "random_state": (),
              "history": (), "n_threads": (NONE,), "regularizer": ()},
    "fit": {"n_components": (), "center": (), "path": (), "method": (),
            "alpha": (NONE,), "tol": (), "max_iter": (NONE,),
            "random_state": (), "history": (), "n_threads": (NONE,),
            "regularizer": ()},
    "step": {"method": (), "alpha": (NONE,), "regularizer": ()},
    "exact_w1": {"n_threads": (NONE,)},
    "gram_matrix": {"center": (), "n_threads": (NONE,)},
    "GramAccumulator": {"n_threads": (NONE,), "center": (),
                        "max_memory": (), "partials_memory": ()},
    "LAEPCA": {
        "n_components": (Interval("real_not_int", 0, 1, "neither"),
                         Options(("mle",)), NONE),
        "method": (_AUTO,), "lam": (_AUTO,), "alpha": (_AUTO,),
        "tol": (NONE,), "max_iter": (NONE,), "batch_size": (NONE,),
        "oversample": (), "n_threads": (NONE,), "random_state": (),
        "verbose": (), "whiten": (), "copy": ()},
    "LAEStream": {
        "n_components": (NONE,), "lam": (_AUTO,), "mode": (),
        "method": (_AUTO, NONE), "alpha": (NONE,), "decay": (NONE,),
        "batch_size": (), "n_samples_total": (NONE,), "tol": (NONE,),
        "max_iter": (NONE,), "oversample": (), "n_threads": (NONE,),
        "block_rows": (NONE,), "max_memory": (), "random_state": ()},
    "scalar_trajectory": {"method": (), "w1": (), "w2": (), "sigma2": (),
                          "lam": (), "alpha": (NONE,), "n_iter": (),
                          "regularizer": ()},
    "scalar_critical_points": {"sigma2": (), "lam": ()},
    "landscape": {"regularizer": (NONE,)},
    "train_mlp": {"batch_size": ()},
    "loss": {"regularizer": (NONE,)},
}


_ALTERNATIVES = {}


def _alternatives(name, owner):
    try:
        return _ALTERNATIVES[name, owner]
    except KeyError:
        alts = SIGNATURES.get(owner, {}).get(name, ()) + RULES[name]
        _ALTERNATIVES[name, owner] = alts
        return alts


def _join(texts):
    return texts[0] if len(texts) == 1 else \
        ", ".join(texts[:-1]) + " or " + texts[-1]


def describe(name, owner=None):
    """What `name` accepts at `owner`, as the error message says it."""
    return _join([alt.describe() for alt in _alternatives(name, owner)])


def check(name, value, owner=None, *, also=None):
    """value if RULES[name] or owner's alternatives accept it; else raise
    InvalidParameterError.  also: (text, test) for a value the table cannot
    express (lam's per-latent vector), tried last."""
    for alt in _alternatives(name, owner):
        if alt.accepts(value):
            return value
    if also is not None and also[1](value):
        return value
    texts = [alt.describe() for alt in _alternatives(name, owner)]
    if also is not None:
        texts.append(also[0])
    allowed = _join(texts)
    where = f" of {owner}" if owner else ""
    raise InvalidParameterError(
        f"The {name!r} parameter{where} must be {allowed}. "
        f"Got {value!r} instead.")


def check_params(owner, params):
    """Check every (name, value) of params at owner; returns params."""
    for name, value in params.items():
        # Values seen before (settings repeat from call to call) are looked
        # up; whether a value passes depends on its type and value only.
        try:
            key = (owner, name, value.__class__, value)
            if key in _ACCEPTED:
                continue
        except TypeError:           # unhashable: an array, a list
            key = None
        for alt in _alternatives(name, owner):
            if alt.accepts(value):
                if key is not None:
                    if len(_ACCEPTED) > 4096:
                        _ACCEPTED.clear()
                    _ACCEPTED[key] = True
                break
        else:
            check(name, value, owner)       # raises, naming the rule
    return params


_ACCEPTED = {}


def sklearn_constraints(owner):
    """scikit-learn's _parameter_constraints for an estimator, generated
    from the same rules (None without scikit-learn)."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return None
    out = {}
    for name in SIGNATURES[owner]:
        constraints = []
        for alt in _alternatives(name, owner):
            sk = alt.sklearn()
            constraints.extend(sk if isinstance(sk, list) else [sk])
        out[name] = constraints
    return out
