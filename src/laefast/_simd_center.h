/*
 * Centering a block of float32 rows for the Gram pass, in AVX2:
 * buf (rows x m, row-major) = X's rows - shift, s += the column sums of buf.
 *
 * Why not the plain C loop: the build targets baseline x86-64 (SSE2), where
 * float32 rows take three 2-wide conversions per pair of values (to float64,
 * back to float32, and the rounded value to float64 again for s).  One Zen 4
 * core, 300000 x 256 float32: the whole pass took 285-298 ms with that loop
 * and 266-271 ms with this one, against about 250 ms for its ssyrk calls
 * alone.  float64 rows need no conversion, and the compiler's loop was as
 * fast (234 ms either way; 0-6% faster on 2 threads): they keep it.
 *
 * The rows are centered in float64 and rounded once, and s sums the
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

static LAEFAST_AVX2 void laefast_center_rows_f32(
    const float* X, ptrdiff_t ldx, ptrdiff_t rows, ptrdiff_t m,
    const double* shift, float* buf, double* s)
{
    ptrdiff_t i, j;
    for (i = 0; i < rows; i++) {
        const float* x = X + i * ldx;
        float* out = buf + i * m;
        for (j = 0; j + 4 <= m; j += 4) {
            __m128 v = _mm256_cvtpd_ps(_mm256_sub_pd(
                laefast_load4_f32(x + j), _mm256_loadu_pd(shift + j)));
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

static void laefast_center_rows_f32(const float* X, ptrdiff_t ldx,
                                    ptrdiff_t rows, ptrdiff_t m,
                                    const double* shift, float* buf,
                                    double* s)
{
    (void)X; (void)ldx; (void)rows; (void)m; (void)shift; (void)buf; (void)s;
}

#endif  /* LAEFAST_SIMD_BUILT */

#endif  /* LAEFAST_SIMD_CENTER_H */
