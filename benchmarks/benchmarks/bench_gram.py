"""The Gram pass (GramAccumulator.add) on tall data against one syrk of the
same X, both on one thread (BLAS limited by threadpoolctl, as it is inside
the pass).  At 32 and 64 features the pass multiplies with its compiled
block update where the CPU has AVX-512F or AVX2, at 256 with it where
the CPU has AVX-512F and with BLAS's syrk on centered blocks elsewhere;
the pass also centers and sums every row."""

import numpy as np
from scipy.linalg.blas import dsyrk, ssyrk
from threadpoolctl import threadpool_limits

import laefast


class GramPass:
    params = ([32, 64, 256], ["float64", "float32"])
    param_names = ["n_features", "dtype"]

    def setup(self, m, dtype):
        rng = np.random.default_rng(0)
        self.X = (rng.standard_normal((100_000, m)) + 3.0).astype(dtype)
        self.syrk = dsyrk if dtype == "float64" else ssyrk
        self.limits = threadpool_limits(1)

    def teardown(self, m, dtype):
        self.limits.restore_original_limits()

    def time_gram_pass(self, m, dtype):
        laefast.GramAccumulator(n_threads=1).add(self.X)

    def time_syrk(self, m, dtype):
        # X.T is Fortran-ordered: f2py hands it to BLAS without a copy.
        self.syrk(1.0, self.X.T, trans=0)
