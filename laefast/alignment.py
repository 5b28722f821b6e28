"""Alignment learning rules: credit assignment without weight symmetry.

Backpropagation sends a layer's output error back through W^T.  An alignment
rule gives every layer a separate backward matrix B that replaces W^T in the
backward pass, and trains B with a layer-local regularizer R(W, B).  Kunin,
Nayebi, Sagastuy-Brena et al. ("Two Routes to Scalable Credit Assignment
without Weight Symmetry", ICML 2020) build R from five primitives; this
module has the primitives, the six rules, a compiled per-layer update and
(:func:`train_mlp`) a small multilayer perceptron that uses them.

Conventions
-----------
One layer: forward weights ``W`` (n_out x n_in), backward weights ``B``
(n_in x n_out), an input batch ``x`` (b x n_in) with samples as rows.  The
forward projection is ``x W^T``; BP sends an output error ``delta``
(b x n_out) back as ``delta W``, an alignment rule as ``delta B^T``.  B is
aligned when it is a positive multiple of ``W^T``; :func:`angle` measures
the angle between the two.

Every data term is a mean over the b samples.  With ``Cb = x^T x / b``:

=========  =================================  ==========================
primitive  value                              gradient w.r.t. B
=========  =================================  ==========================
decay      ||W||^2 + ||B||^2                  2 B
sparse     (||x W^T||^2 + ||x B||^2) / b      2 Cb B
null       (||x W^T B^T||^2 + ||x B W||^2)/b  2 B W Cb W^T + 2 Cb B W W^T
self       -tr(B W)                           -W^T
amp        -tr(x B W x^T) / b                 -Cb W^T
=========  =================================  ==========================

(``x W^T B^T`` is the forward reconstruction: x sent through W and back
through B; ``x B W`` the backward one.)  :func:`primitive` returns each value
with its gradients with respect to W and B.

The rules (the coefficients are the fields of the rule objects):

- :class:`BP` backpropagation: B = W^T exactly (the trainer reads W).
- :class:`FA` feedback alignment (Lillicrap et al. 2016): R = 0, B fixed
  and random.
- :class:`SA` symmetric alignment: alpha decay + beta self.  The minimum of
  R over B is B = beta / (2 alpha) W^T.
- :class:`AA` activation alignment: alpha sparse + beta amp.  The gradient
  ``Cb (2 alpha B - beta W^T)`` aligns B with W^T on the span of the
  layer's inputs.
- :class:`WM` weight mirror (Akrout et al. 2019): alpha decay + beta amp, on
  noise inputs of variance noise_std^2 instead of the data (the trainer
  draws uniform noise; in expectation Cb = noise_std^2 I, so B tends to
  beta noise_std^2 / (2 alpha) W^T).
- :class:`IA` information alignment: alpha amp + beta null + gamma decay,
  with null on the forward reconstruction only (as in the authors' code).
  Its B-gradient is ``(2 beta H B^T - alpha x)^T H / b + 2 gamma B`` with
  ``H = x W^T``: with alpha = 2, beta = 1, gamma = lam it is the gradient
  with respect to the decoder W2 = B of the linear autoencoder loss
  ``||X - W2 W1 X||^2 + lam (||W1||^2 + ||W2||^2)`` of encoder W1 = W on the
  Gram matrix ``C = Cb`` -- the loss the rest of laefast minimizes.
- :class:`KP` Kolen-Pollack (Kolen & Pollack 1994; Akrout et al. 2019):
  alpha decay, and B receives the transpose of W's own gradient.  With the
  error signal ``delta`` the pair is ``grad_W = delta^T x + 2 alpha W`` and
  ``grad_B = x^T delta + 2 alpha B``, so ``W - B^T`` shrinks by the factor
  ``1 - 2 alpha lr`` every plain SGD step, whatever the data.

Signs: every gradient here is the direction to *subtract*
(``B <- B - lr * grad_B``).  ``delta`` is the gradient of the batch-mean
loss with respect to the layer's pre-activations (it already carries the
1/b), so the layer's weight gradient is ``delta^T x``.
"""

import numbers
from collections import namedtuple
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

from . import _alignment
from ._parallel import blas_is_serial
from ._validation import as_float_array, assert_finite

__all__ = [
    "PRIMITIVES",
    "RULES",
    "Rule",
    "BP",
    "FA",
    "SA",
    "AA",
    "WM",
    "IA",
    "KP",
    "PrimitiveValue",
    "RuleUpdate",
    "primitive",
    "get_rule",
    "update",
    "angle",
    "MLPResult",
    "train_mlp",
    "load_dataset",
]

PRIMITIVES = ("decay", "sparse", "null", "self", "amp")

PrimitiveValue = namedtuple("PrimitiveValue", "value grad_W grad_B")
PrimitiveValue.__doc__ = "A primitive's value and its gradients w.r.t. W and B."

RuleUpdate = namedtuple("RuleUpdate", "grad_B grad_W")
RuleUpdate.__doc__ = ("A rule's gradient for B, and for KP the tied gradient "
                      "for W (None for the other rules).")


# ---------------------------------------------------------------------------
# Primitives (NumPy: the readable definitions the compiled kernel follows)

def _check_layer(W, B, x=None, delta=None, *, dtype=None):
    """W, B, x, delta as finite arrays of one float dtype, with shapes that
    fit one layer: C-contiguous, except that a Fortran-ordered B stays as it
    is (B^T in W's layout, the layout the kernels take without a copy)."""
    W = as_float_array(W, "W", dtype)
    dtype = W.dtype
    if W.ndim != 2 or 0 in W.shape:
        raise ValueError(f"W must be a non-empty 2-D (n_out, n_in) matrix, "
                         f"got shape {W.shape}")
    n_out, n_in = W.shape
    B = as_float_array(B, "B", dtype)
    if B.shape != (n_in, n_out):
        raise ValueError(f"B must have shape (n_in, n_out) = {(n_in, n_out)} "
                         f"to match W {W.shape}, got {B.shape}")
    if not B.flags.f_contiguous:
        B = np.ascontiguousarray(B)
    out = [np.ascontiguousarray(W), B]
    if x is not None:
        x = as_float_array(x, "x", dtype)
        if x.ndim != 2 or x.shape[1] != n_in or x.shape[0] < 1:
            raise ValueError(f"x must have shape (b, n_in) = (b, {n_in}) with "
                             f"b >= 1, got {x.shape}")
        out.append(np.ascontiguousarray(x))
    if delta is not None:
        delta = as_float_array(delta, "delta", dtype)
        if x is None or delta.shape != (x.shape[0], n_out):
            raise ValueError(
                f"delta must have shape (b, n_out) = "
                f"{(x.shape[0] if x is not None else 'b', n_out)}, got "
                f"{delta.shape}")
        out.append(np.ascontiguousarray(delta))
    for name, a in zip(("W", "B", "x", "delta"), out):
        assert_finite(a, name)
    return out


def primitive(name, W, B, x=None, *, part="both"):
    """Value and gradients of one of the five primitives for one layer.

    Parameters
    ----------
    name : {'decay', 'sparse', 'null', 'self', 'amp'}
    W : array_like (n_out, n_in)
        Forward weights.
    B : array_like (n_in, n_out)
        Backward weights.
    x : array_like (b, n_in) or None
        Input batch, samples as rows (needed by sparse, null and amp).
    part : {'both', 'forward', 'backward'}
        For null and sparse: both terms, or only the W-side ('forward':
        ``||x W^T B^T||^2`` resp. ``||x W^T||^2``) or the B-side term
        ('backward': ``||x B W||^2`` resp. ``||x B||^2``).

    Returns
    -------
    PrimitiveValue
        ``(value, grad_W, grad_B)``, float64 scalars/arrays in W's dtype.

    Raises
    ------
    ValueError
        Unknown name or part, shapes that do not fit, non-finite entries,
        or a missing x.

    Examples
    --------
    >>> import numpy as np
    >>> from laefast.alignment import primitive
    >>> W = np.eye(2); B = 2 * np.eye(2)
    >>> primitive("self", W, B).value
    -4.0
    """
    if name not in PRIMITIVES:
        raise ValueError(f"unknown primitive {name!r}; choose one of "
                         f"{', '.join(PRIMITIVES)}")
    if part not in ("both", "forward", "backward"):
        raise ValueError(f"part must be 'both', 'forward' or 'backward', "
                         f"got {part!r}")
    if part != "both" and name not in ("null", "sparse"):
        raise ValueError(f"part applies to null and sparse only, not {name!r}")
    needs_x = name in ("sparse", "null", "amp")
    if needs_x and x is None:
        raise ValueError(f"primitive {name!r} needs the input batch x")
    if needs_x:
        W, B, x = _check_layer(W, B, x)
        b = x.shape[0]
        C = x.T @ x / b
    else:
        W, B = _check_layer(W, B)
    fwd, bwd = part in ("both", "forward"), part in ("both", "backward")
    if name == "decay":
        return PrimitiveValue(float(np.sum(W * W) + np.sum(B * B)), 2 * W, 2 * B)
    if name == "self":
        return PrimitiveValue(-float(np.sum(W * B.T)), -B.T.copy(), -W.T.copy())
    if name == "amp":
        return PrimitiveValue(-float(np.sum((x @ B) * (x @ W.T))) / b,
                              -B.T @ C, -C @ W.T)
    value, gW, gB = 0.0, np.zeros_like(W), np.zeros_like(B)
    if name == "sparse":
        if fwd:
            value += float(np.sum((x @ W.T) ** 2)) / b
            gW = gW + 2 * W @ C
        if bwd:
            value += float(np.sum((x @ B) ** 2)) / b
            gB = gB + 2 * C @ B
        return PrimitiveValue(value, gW, gB)
    # null
    if fwd:
        value += float(np.sum((x @ W.T @ B.T) ** 2)) / b
        gW = gW + 2 * B.T @ B @ W @ C
        gB = gB + 2 * B @ W @ C @ W.T
    if bwd:
        value += float(np.sum((x @ B @ W) ** 2)) / b
        gW = gW + 2 * B.T @ C @ B @ W
        gB = gB + 2 * C @ B @ W @ W.T
    return PrimitiveValue(value, gW, gB)


# ---------------------------------------------------------------------------
# Rules

def _coefficient(value, name):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


@dataclass(frozen=True)
class Rule:
    """Base of the six rules: a name, non-negative coefficients and the
    regularizer they weigh (``terms``: (primitive, coefficient, part))."""

    name: ClassVar[str] = ""
    code: ClassVar[int] = -1

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name,
                               _coefficient(getattr(self, f.name),
                                            f"{self.name.upper()} {f.name}"))

    @property
    def coefficients(self):
        """The coefficients as a dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def terms(self):
        """(primitive, coefficient, part) triples: R = sum c * primitive."""
        return ()

    def regularizer(self, W, B, x=None):
        """R(W, B) and its gradients, summed from the primitives (NumPy)."""
        value, gW, gB = 0.0, 0.0, 0.0
        for name, c, part in self.terms():
            p = primitive(name, W, B, x, part=part)
            value += c * p.value
            gW = gW + c * p.grad_W
            gB = gB + c * p.grad_B
        return PrimitiveValue(value, gW, gB)

    def _kernel_coefficients(self):
        return (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class BP(Rule):
    """Backpropagation: B = W^T exactly; no regularizer."""

    name: ClassVar[str] = "bp"
    code: ClassVar[int] = _alignment.BP


@dataclass(frozen=True)
class FA(Rule):
    """Feedback alignment: B fixed at its random start; R = 0."""

    name: ClassVar[str] = "fa"
    code: ClassVar[int] = _alignment.FA


@dataclass(frozen=True)
class SA(Rule):
    """Symmetric alignment: R = alpha decay + beta self."""

    alpha: float = 5.0
    beta: float = 10.0
    name: ClassVar[str] = "sa"
    code: ClassVar[int] = _alignment.SA

    def terms(self):
        return (("decay", self.alpha, "both"), ("self", self.beta, "both"))

    def _kernel_coefficients(self):
        return (self.alpha, self.beta, 0.0)


@dataclass(frozen=True)
class AA(Rule):
    """Activation alignment: R = alpha sparse + beta amp."""

    alpha: float = 0.01
    beta: float = 0.02
    name: ClassVar[str] = "aa"
    code: ClassVar[int] = _alignment.AA

    def terms(self):
        return (("sparse", self.alpha, "both"), ("amp", self.beta, "both"))

    def _kernel_coefficients(self):
        return (self.alpha, self.beta, 0.0)


@dataclass(frozen=True)
class WM(Rule):
    """Weight mirror: R = alpha decay + beta amp, amp on noise inputs of
    standard deviation noise_std."""

    alpha: float = 0.1
    beta: float = 0.2
    noise_std: float = 1.0
    name: ClassVar[str] = "wm"
    code: ClassVar[int] = _alignment.WM

    def terms(self):
        return (("decay", self.alpha, "both"), ("amp", self.beta, "both"))

    def _kernel_coefficients(self):
        return (self.alpha, self.beta, 0.0)


@dataclass(frozen=True)
class IA(Rule):
    """Information alignment: R = alpha amp + beta null (forward
    reconstruction) + gamma decay."""

    alpha: float = 0.002
    beta: float = 0.001
    gamma: float = 0.001
    name: ClassVar[str] = "ia"
    code: ClassVar[int] = _alignment.IA

    def terms(self):
        return (("amp", self.alpha, "both"), ("null", self.beta, "forward"),
                ("decay", self.gamma, "both"))

    def _kernel_coefficients(self):
        return (self.alpha, self.beta, self.gamma)


@dataclass(frozen=True)
class KP(Rule):
    """Kolen-Pollack: R = alpha decay; B takes the transpose of W's update."""

    alpha: float = 0.01
    name: ClassVar[str] = "kp"
    code: ClassVar[int] = _alignment.KP

    def terms(self):
        return (("decay", self.alpha, "both"),)

    def _kernel_coefficients(self):
        return (self.alpha, 0.0, 0.0)


_RULES = {cls.name: cls for cls in (BP, FA, SA, AA, WM, IA, KP)}

# OpenBLAS runs a GEMM of up to 64^3 multiply-adds on one thread whatever
# its thread count: there KP's one-thread kernel always wins.
_KP_KERNEL_ALWAYS = 64 ** 3
RULES = tuple(_RULES)


def get_rule(rule, **coefficients):
    """A rule object from its name (with default or given coefficients).

    Parameters
    ----------
    rule : str or Rule
        One of 'bp', 'fa', 'sa', 'aa', 'wm', 'ia', 'kp' (case-insensitive),
        or a Rule, returned as it is.
    **coefficients
        Coefficients for a rule given by name, e.g. ``alpha=0.5``.

    Returns
    -------
    Rule

    Raises
    ------
    ValueError
        Unknown rule, unknown or negative coefficient.

    Examples
    --------
    >>> from laefast.alignment import get_rule
    >>> get_rule("sa", alpha=0.5)
    SA(alpha=0.5, beta=10.0)
    """
    if isinstance(rule, Rule):
        if coefficients:
            raise ValueError("coefficients go into the Rule object itself")
        return rule
    key = rule.lower() if isinstance(rule, str) else rule
    if key not in _RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of "
                         f"{', '.join(RULES)}")
    cls = _RULES[key]
    allowed = {f.name for f in fields(cls)}
    unknown = set(coefficients) - allowed
    if unknown:
        raise ValueError(f"rule {key!r} has no coefficient "
                         f"{', '.join(sorted(unknown))}; it has "
                         f"{', '.join(sorted(allowed)) or 'none'}")
    return cls(**coefficients)


def update(rule, W, B, x, delta=None):
    """One rule's update for one layer, by the compiled kernel.

    Parameters
    ----------
    rule : str or Rule
    W : array_like (n_out, n_in)
    B : array_like (n_in, n_out)
        In C or Fortran order: a contiguous B in W's dtype is not copied.
        Fortran order is B^T laid out as W is, which is how
        :func:`train_mlp` keeps B: then SA's and KP's terms in W^T are
        elementwise, with no transposed pass.
    x : array_like (b, n_in)
        The layer's input batch (for WM: the noise batch that replaces it).
    delta : array_like (b, n_out) or None
        The layer's error signal, the gradient of the batch-mean loss with
        respect to its pre-activations.  Needed by KP only.

    Returns
    -------
    RuleUpdate
        ``grad_B`` (n_in, n_out): the gradient to subtract from B (zero for
        BP and FA, which leave B alone), in B's order.  ``grad_W``: for KP
        the tied gradient ``delta^T x + 2 alpha W`` (with ``grad_B`` equal
        to its transpose plus ``2 alpha (B - W^T)``), None otherwise.
        Arrays are in W's dtype (float32 or float64; other types become
        float64).

    Raises
    ------
    ValueError
        Unknown rule, shapes that do not fit, non-finite entries, KP without
        delta.

    Examples
    --------
    >>> import numpy as np
    >>> from laefast.alignment import update
    >>> W = np.array([[1.0, 0.0]]); B = np.zeros((2, 1))
    >>> update("sa", W, B, np.ones((3, 2))).grad_B.ravel()
    array([-10.,   0.])
    """
    rule = get_rule(rule)
    if rule.name == "kp" and delta is None:
        raise ValueError("KP needs the layer's error signal delta")
    if rule.name != "kp":
        delta = None
    arrays = _check_layer(W, B, x, delta)
    W, B, x = arrays[:3]
    delta = arrays[3] if delta is not None else np.empty((0, 0), W.dtype)
    n_out, n_in = W.shape
    # A B that is not C-contiguous is Fortran-ordered (see _check_layer):
    # the kernel takes B^T, C-contiguous, and writes grad_B transposed too.
    bt = not B.flags.c_contiguous
    gB = np.empty((n_out, n_in) if bt else (n_in, n_out), W.dtype)
    gW = np.empty((n_out, n_in) if rule.name == "kp" else (1, 1), W.dtype)
    b = x.shape[0]
    work = np.empty(_alignment.layer_workspace(rule.code, b, n_in, n_out, bt),
                    W.dtype)
    # KP's own kernel for delta^T x where BLAS would run it on one thread
    # too: it beats a one-thread GEMM, not a threaded one.  (BLAS's thread
    # count is asked last: the first ask scans the loaded libraries.)
    kp_kernel = (rule.name == "kp" and bt
                 and _alignment.kp_kernel_applies(b, n_in, n_out)
                 and (b * n_in * n_out <= _KP_KERNEL_ALWAYS
                      or blas_is_serial()))
    _alignment.layer_update(rule.code, W, B.T if bt else B, x, delta,
                            *rule._kernel_coefficients(), gB, gW, work, bt,
                            kp_kernel=kp_kernel)
    return RuleUpdate(gB.T if bt else gB,
                      gW if rule.name == "kp" else None)


def angle(B, W):
    """The angle in degrees between B (n_in, n_out) and W^T.

    ``arccos(<B, W^T> / (||B|| ||W||))``: 0 when B is a positive multiple of
    W^T, 90 when they are orthogonal (as random matrices nearly are).

    Examples
    --------
    >>> import numpy as np
    >>> from laefast.alignment import angle
    >>> round(angle(np.eye(2), 3 * np.eye(2)), 6)
    0.0
    """
    B = np.asarray(B, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    if B.shape != W.T.shape:
        raise ValueError(f"B must have W^T's shape {W.T.shape}, got {B.shape}")
    nb, nw = np.linalg.norm(B), np.linalg.norm(W)
    if nb == 0 or nw == 0:
        return 90.0
    # 2 atan2(|u - v|, |u + v|) of the unit vectors: accurate near 0 and
    # 180 degrees, where arccos of the cosine loses half the digits.
    u, v = B / nb, W.T / nw
    return float(np.degrees(2 * np.arctan2(np.linalg.norm(u - v),
                                           np.linalg.norm(u + v))))


from ._mlp import MLPResult, load_dataset, train_mlp  # noqa: E402
