"""The Gram operator a solver runs on: C given, or C = Xc^T Xc left implicit.

Forming C costs n m^2 flops and m^2 memory once; iterating on the samples
costs a factor n/m more per product but never holds an m x m matrix
(docs/theory.md).  Both kinds present the same interface to laefast._api.
"""

import numpy as np
import scipy.linalg.blas
import scipy.sparse.linalg

from . import _passes
from ._accumulator import GramAccumulator
from ._methods import method_info
from ._parallel import serial_blas
from ._validation import (assert_finite, check_data, check_gram,
                          raise_if_squares_vanish, raise_nonfinite)

__all__ = ["GramProblem", "choose_path", "power_of_two_scale"]

# Beyond this the Gram matrix is not formed unless asked for.
GRAM_MEMORY_LIMIT = 2 << 30


def choose_path(n, m, k, method, itemsize):
    """'gram' or 'data': whichever the cost model says is cheaper."""
    info = method_info(method)
    if info.needs_gram:
        return "gram"
    if m * m * itemsize > GRAM_MEMORY_LIMIT:
        return "data"
    iters = info.assumed_iterations
    cost_gram = n * m * m + iters * info.gram_flops * k * m * m
    cost_data = iters * info.data_flops * k * m * n
    return "data" if cost_data < cost_gram else "gram"


def power_of_two_scale(trace, dtype):
    """A power of two s (even exponent, so sqrt(s) is one too) with
    s tr C near 1: the solver loops run on s C, where no quantity they form
    (products, squares, stopping rules) can overflow or underflow however
    large or small the data are; multiplying by s is exact."""
    if not (np.isfinite(trace) and trace > 0.0):
        return 1.0
    e = int(np.frexp(trace)[1])
    e += e & 1
    limit = np.finfo(dtype).maxexp - 8
    e = max(-limit, min(limit, e))
    return float(np.ldexp(1.0, -e))


class GramProblem:
    """C = Xc^T Xc, as an explicit matrix or as the (n x m) samples.

    On samples, every product with C is a parallel pass over X with the
    centering fused in (laefast._passes.centered_product; two passes on a
    Fortran-ordered X): X is never copied for it, whatever its layout.
    """

    def __init__(self, C=None, data=None, mean=None, stats=None, n_threads=1):
        self.C = C
        self.mean = mean
        self._data = data
        self._stats = stats
        self._trace = None
        self._contiguous = None
        self._work = None               # centered_product's, kept
        self.n_threads = n_threads
        if C is not None:
            self.m, self.n, self.dtype = C.shape[0], None, C.dtype
        else:
            self.n, self.m = data.shape
            self.dtype = data.dtype
        # The precision of times(): C's own, or float64 on the samples,
        # which every product converts exactly.  The solver loops run in
        # self.dtype; the Krylov iteration and its read-out in this one.
        self.product_dtype = np.dtype(np.float64) if C is None else C.dtype

    @classmethod
    def from_gram(cls, C):
        C, stats = check_gram(C, with_stats=True)
        return cls(C=C, stats=stats)

    @classmethod
    def from_accumulator(cls, acc, dtype=np.float64):
        """The problem of a GramAccumulator's data; C cast to dtype."""
        C = acc.gram_.astype(dtype, copy=False)
        return cls(C=C, mean=acc.mean_ if acc.center else None)

    @classmethod
    def from_data(cls, X, center=True, path="gram", n_threads=1,
                  gram_dtype=None, trace_now=True):
        """X (n, m), validated for shape and dtype; finiteness is read off
        the one pass that either path starts with.  On the 'gram' path, C
        is accumulated in float64 and returned in gram_dtype (X's dtype by
        default).  On the samples path, trace_now=False leaves the trace
        (and the check that the squares did not vanish) to the first
        product instead of a pass of its own."""
        X = check_data(X, finite=False)
        if path == "gram":
            acc = GramAccumulator(n_threads=n_threads, center=center).add(X)
            return cls.from_accumulator(acc, gram_dtype or X.dtype)
        mean = None
        if center:
            # float64 whatever X's dtype: a mean rounded to float32 would
            # leave an offset d in the data and n d d^T in C.
            mean = _passes.column_sums(X, n_threads) / X.shape[0]
            if not np.isfinite(mean).all():
                raise_nonfinite(X)
        else:
            assert_finite(X, "X")
        problem = cls(data=X, mean=mean, n_threads=n_threads)
        if trace_now:
            problem.trace()     # raises if the squares vanished
        return problem

    @property
    def on_data(self):
        return self.C is None

    def kernel_args(self):
        """Keyword arguments of laefast._solvers.run that describe C."""
        if self.C is not None:
            return {"C": self.C}
        X = self._data
        if X.flags.c_contiguous:
            data, colmajor = X, False
        elif X.flags.f_contiguous:
            # (n, m) in Fortran order is the paper's X (m, n) in C order.
            data, colmajor = X.T, True
        else:
            # The solver loops need one layout: a strided X is copied once.
            if self._contiguous is None:
                self._contiguous = np.ascontiguousarray(X)
            data, colmajor = self._contiguous, False
        return {"C": None, "data": data, "data_colmajor": colmajor,
                "mean": self.mean}

    def lanczos_block(self):
        """Columns per product for block Lanczos: the fewest that keep a
        product efficient.  On C, and on samples that the BLAS path
        multiplies, a product costs about the same for 1 to 4 columns: 4.
        The AVX2 pass over samples costs in proportion to the columns, and
        2 then reaches rounding in the least time (1500 x 2048 and
        3000 x 4096, k=10: 30 products of 2 columns, 23 of 4, 44 of 1)."""
        if self.C is None and _passes.centered_product_cost_grows(self._data):
            return 2
        return 4

    def times(self, Q):
        """C @ Q for Q of shape (m, r), in float64 (C never formed on data)."""
        Q = np.ascontiguousarray(Q, dtype=np.float64)
        if self.C is not None:
            # SciPy's BLAS, the kernels' own (see LAEPCA's Rayleigh-Ritz);
            # C.T is C, Fortran-ordered: no copy.
            gemm = scipy.linalg.blas.get_blas_funcs("gemm", (Q,))
            if self.C.dtype == np.float64:
                return gemm(1.0, self.C.T, Q)
            # float32 C: in float64 panels of 32 MiB at most, not a float64
            # copy of all of C (twice its size) on every product.
            C = self.C if self.C.flags.c_contiguous else self.C.T
            out = np.empty((self.m, Q.shape[1]), order="F")
            rows = max(1, (32 << 20) // (8 * self.m))
            for i in range(0, self.m, rows):
                panel = C[i:i + rows].astype(np.float64)
                out[i:i + rows] = gemm(1.0, panel.T, Q, trans_a=True)
            return out
        out = np.empty_like(Q)
        mean = self.mean if self.mean is not None else np.zeros(self.m)
        r = Q.shape[1]
        simd = _passes.centered_product_cost_grows(self._data, r)
        need = _passes.centered_product_workspace(self.n, self.m, r,
                                                self.n_threads, simd)
        if self._work is None or self._work.shape[0] < need:
            self._work = np.empty(need)
        # BLAS runs inside the parallel region only on the BLAS path; the
        # limit cost ~20 us when it was measured (6 us now), and its pause
        # let the OpenMP team fall asleep between products (0.1 ms more per
        # product, 2 cores).
        if simd:
            nt = 1
        else:
            nt = _passes.centered_product_threads(self.n, self.m, r,
                                                  self.n_threads)
        with serial_blas(nt):
            trace = _passes.centered_product(self._data, mean, Q, out,
                                           self.n_threads,
                                           want_trace=self._trace is None,
                                           work=self._work)
        if self._trace is None:
            if trace == 0.0 and self.n > 1:
                raise_if_squares_vanish(self._data, self.mean is not None)
            self._trace = trace
        return out

    def kernel_scale(self):
        """The power-of-two scale the solver loops run at (see
        power_of_two_scale)."""
        return power_of_two_scale(self.trace(), self.dtype)

    def trace(self):
        if self._stats is not None:
            return float(self._stats["trace"])
        if self.C is not None:
            if self._trace is None:     # asked for several times a solve
                self._trace = float(np.trace(self.C))
            return self._trace
        if self._trace is None:
            # A by-product of any product with C.
            self.times(np.zeros((self.m, 1)))
        return self._trace

    def eigenvalue_bound(self):
        """An upper bound (on C: proven; on data: estimated) on C's top eigenvalue."""
        if self.C is not None:
            if self._stats is None:
                self._stats = check_gram(self.C, with_stats=True)[1]
            return min(self.trace(), float(self._stats["row_abs_max"]))
        # Lanczos converges to the top eigenvalue from below; a 5% margin
        # over a 1e-3-accurate estimate stays above it.  Its products are
        # times(), which centers block by block.
        def matvec(v):
            return self.times(np.reshape(v, (-1, 1)))[:, 0]

        trace = self.trace()
        if self.m <= 2 or trace == 0.0:
            return trace
        op = scipy.sparse.linalg.LinearOperator((self.m, self.m),
                                                matvec=matvec, dtype=np.float64)
        try:
            top = scipy.sparse.linalg.eigsh(op, k=1, which="LA", tol=1e-3,
                                            return_eigenvectors=False,
                                            v0=np.ones(self.m))[0]
        except scipy.sparse.linalg.ArpackError:
            return trace        # the always-valid bound
        return min(1.05 * float(top), trace)
