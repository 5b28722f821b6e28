/*
 * Centering a block of rows for the Gram pass, in AVX2:
 * buf (rows x m, row-major) = X's rows - shift, s += the column sums of buf.
 *
 * Why not the plain C loop: the build targets baseline x86-64 (SSE2), where
 * float32 rows take three 2-wide conversions per pair of values (to float64,
 * back to float32, and the rounded value to float64 again for s).  One Zen 4
 * core, 300000 x 256 float32: the whole pass took 281-298 ms with that loop
 * and 266 ms with this one, against about 250 ms for its ssyrk calls alone.
 * float64 rows gain little (233-241 against 233 ms): the loop is there so
 * that both dtypes take one path.
 *
 * float32 rows are centered in float64 and rounded once, and s sums the
 * rounded values, as the portable loop does: the two give the same bits.
 * X's rows have unit stride; the row stride is ldx (any sign).  Compiled for
 * AVX2 through a function attribute and called only where the CPU has it
 * (laefast_cpu_has_avx2_fma, _cpu.h).
 */
#ifndef LAEFAST_SIMD_CENTER_H
#define LAEFAST_SIMD_CENTER_H

#include <stddef.h>

#include "_cpu.h"

#if LAEFAST_SIMD_BUILT
#include <immintrin.h>

static __attribute__((target("avx2"))) void laefast_center_rows_f64(
    const double* X, ptrdiff_t ldx, ptrdiff_t rows, ptrdiff_t m,
    const double* shift, double* buf, double* s)
{
    ptrdiff_t i, j;
    for (i = 0; i < rows; i++) {
        const double* x = X + i * ldx;
        double* out = buf + i * m;
        for (j = 0; j + 4 <= m; j += 4) {
            __m256d v = _mm256_sub_pd(_mm256_loadu_pd(x + j),
                                      _mm256_loadu_pd(shift + j));
            _mm256_storeu_pd(out + j, v);
            _mm256_storeu_pd(s + j, _mm256_add_pd(_mm256_loadu_pd(s + j), v));
        }
        for (; j < m; j++) {
            double v = x[j] - shift[j];
            out[j] = v;
            s[j] += v;
        }
    }
}

static __attribute__((target("avx2"))) void laefast_center_rows_f32(
    const float* X, ptrdiff_t ldx, ptrdiff_t rows, ptrdiff_t m,
    const double* shift, float* buf, double* s)
{
    ptrdiff_t i, j;
    for (i = 0; i < rows; i++) {
        const float* x = X + i * ldx;
        float* out = buf + i * m;
        for (j = 0; j + 4 <= m; j += 4) {
            __m128 v = _mm256_cvtpd_ps(_mm256_sub_pd(
                _mm256_cvtps_pd(_mm_loadu_ps(x + j)),
                _mm256_loadu_pd(shift + j)));
            _mm_storeu_ps(out + j, v);
            _mm256_storeu_pd(s + j, _mm256_add_pd(_mm256_loadu_pd(s + j),
                                                  _mm256_cvtps_pd(v)));
        }
        for (; j < m; j++) {
            float v = (float)(x[j] - shift[j]);
            out[j] = v;
            s[j] += v;
        }
    }
}

#else  /* no AVX2 build: never called (laefast_cpu_has_avx2_fma is 0) */

static void laefast_center_rows_f64(const double* X, ptrdiff_t ldx,
                                    ptrdiff_t rows, ptrdiff_t m,
                                    const double* shift, double* buf,
                                    double* s)
{
    (void)X; (void)ldx; (void)rows; (void)m; (void)shift; (void)buf; (void)s;
}

static void laefast_center_rows_f32(const float* X, ptrdiff_t ldx,
                                    ptrdiff_t rows, ptrdiff_t m,
                                    const double* shift, float* buf,
                                    double* s)
{
    (void)X; (void)ldx; (void)rows; (void)m; (void)shift; (void)buf; (void)s;
}

#endif  /* LAEFAST_SIMD_BUILT */

#endif  /* LAEFAST_SIMD_CENTER_H */
