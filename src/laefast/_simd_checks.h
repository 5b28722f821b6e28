/*
 * The Gram matrix check's two sweeps (laefast._checks.gram_stats), in AVX2.
 *
 * Symmetry: max |A[i, j] - B[j, i]| over a pair of h x w tiles A and B
 * (B the mirror of A).  The portable loop reads B a column at a time, one
 * scalar load per entry; here 4 x 4 blocks of B are loaded as rows and
 * transposed in registers.  Row sums: sum |c_j| and sum c_j of a row, 8
 * lanes (two vectors of 4) at a time.  On one Zen 4 core a 1000 x 1000 C
 * took 0.65-0.69 ms to check with the portable loops (float32 0.80) and
 * 0.31-0.36 ms with these (float32 0.24).
 *
 * Both run in float64 on float64 matrices and in float32 (widened to
 * float64 for the sums) on float32 ones.  NaN is not seen by the max (the
 * caller tests the total for it).  Compiled for AVX2 through a function
 * attribute and called only where the CPU has it (laefast_cpu_has_avx2_fma,
 * _cpu.h).
 */
#ifndef LAEFAST_SIMD_CHECKS_H
#define LAEFAST_SIMD_CHECKS_H

#include <math.h>
#include <stddef.h>

#include "_cpu.h"

#if LAEFAST_SIMD_BUILT

static LAEFAST_AVX2 inline double lc_hmax(__m256d v)
{
    __m128d m = _mm_max_pd(_mm256_castpd256_pd128(v),
                           _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_max_sd(m, _mm_unpackhi_pd(m, m)));
}

/* |a - b|, 4 float64 lanes */
static LAEFAST_AVX2 inline __m256d lc_absdiff(__m256d a, __m256d b)
{
    return _mm256_andnot_pd(_mm256_set1_pd(-0.0), _mm256_sub_pd(a, b));
}

static LAEFAST_AVX2 double laefast_tile_asym_f64(
    const double* A, const double* B, ptrdiff_t ld, ptrdiff_t h, ptrdiff_t w)
{
    __m256d mx = _mm256_setzero_pd();
    double tail = 0.0;
    ptrdiff_t i, j, h4 = h - h % 4, w4 = w - w % 4;
    for (i = 0; i < h4; i += 4) {
        const double* a = A + i * ld;
        for (j = 0; j < w4; j += 4) {
            /* rows j..j+3 of B, columns i..i+3, transposed: t_c holds
             * B[j..j+3][i + c], the mirror of A[i + c][j..j+3] */
            const double* b = B + j * ld + i;
            __m256d b0 = _mm256_loadu_pd(b), b1 = _mm256_loadu_pd(b + ld);
            __m256d b2 = _mm256_loadu_pd(b + 2 * ld);
            __m256d b3 = _mm256_loadu_pd(b + 3 * ld);
            __m256d u0 = _mm256_unpacklo_pd(b0, b1);
            __m256d u1 = _mm256_unpackhi_pd(b0, b1);
            __m256d u2 = _mm256_unpacklo_pd(b2, b3);
            __m256d u3 = _mm256_unpackhi_pd(b2, b3);
            __m256d t0 = _mm256_permute2f128_pd(u0, u2, 0x20);
            __m256d t1 = _mm256_permute2f128_pd(u1, u3, 0x20);
            __m256d t2 = _mm256_permute2f128_pd(u0, u2, 0x31);
            __m256d t3 = _mm256_permute2f128_pd(u1, u3, 0x31);
            mx = _mm256_max_pd(mx, lc_absdiff(_mm256_loadu_pd(a + j), t0));
            mx = _mm256_max_pd(mx, lc_absdiff(_mm256_loadu_pd(a + ld + j),
                                              t1));
            mx = _mm256_max_pd(mx, lc_absdiff(
                                       _mm256_loadu_pd(a + 2 * ld + j), t2));
            mx = _mm256_max_pd(mx, lc_absdiff(
                                       _mm256_loadu_pd(a + 3 * ld + j), t3));
        }
    }
    /* the edges: rows past h4 (all columns), columns past w4 (rows < h4) */
    for (i = 0; i < h; i++) {
        for (j = i < h4 ? w4 : 0; j < w; j++) {
            double d = fabs(A[i * ld + j] - B[j * ld + i]);
            if (d > tail)
                tail = d;
        }
    }
    {
        double v = lc_hmax(mx);
        return v > tail ? v : tail;
    }
}

static LAEFAST_AVX2 double laefast_tile_asym_f32(
    const float* A, const float* B, ptrdiff_t ld, ptrdiff_t h, ptrdiff_t w)
{
    __m128 mx = _mm_setzero_ps();
    const __m128 sign = _mm_set1_ps(-0.0f);
    float tail = 0.0f, out[4];
    ptrdiff_t i, j, h4 = h - h % 4, w4 = w - w % 4;
    for (i = 0; i < h4; i += 4) {
        const float* a = A + i * ld;
        for (j = 0; j < w4; j += 4) {
            const float* b = B + j * ld + i;
            __m128 t0 = _mm_loadu_ps(b), t1 = _mm_loadu_ps(b + ld);
            __m128 t2 = _mm_loadu_ps(b + 2 * ld);
            __m128 t3 = _mm_loadu_ps(b + 3 * ld);
            _MM_TRANSPOSE4_PS(t0, t1, t2, t3);
            mx = _mm_max_ps(mx, _mm_andnot_ps(sign, _mm_sub_ps(
                                    _mm_loadu_ps(a + j), t0)));
            mx = _mm_max_ps(mx, _mm_andnot_ps(sign, _mm_sub_ps(
                                    _mm_loadu_ps(a + ld + j), t1)));
            mx = _mm_max_ps(mx, _mm_andnot_ps(sign, _mm_sub_ps(
                                    _mm_loadu_ps(a + 2 * ld + j), t2)));
            mx = _mm_max_ps(mx, _mm_andnot_ps(sign, _mm_sub_ps(
                                    _mm_loadu_ps(a + 3 * ld + j), t3)));
        }
    }
    for (i = 0; i < h; i++) {
        for (j = i < h4 ? w4 : 0; j < w; j++) {
            float d = fabsf(A[i * ld + j] - B[j * ld + i]);
            if (d > tail)
                tail = d;
        }
    }
    _mm_storeu_ps(out, mx);
    for (i = 0; i < 4; i++)
        if (out[i] > tail)
            tail = out[i];
    return tail;
}

/* *abs_sum = sum |c_j|, *sum = sum c_j over one row of m, in float64 */
#define LC_DEFINE_ROW_SUMS(SUFFIX, T, LOAD4)                                   \
static LAEFAST_AVX2 void laefast_row_sums_##SUFFIX(                            \
    const T* c, ptrdiff_t m, double* abs_sum, double* sum)                     \
{                                                                              \
    const __m256d sign = _mm256_set1_pd(-0.0);                                 \
    __m256d r0 = _mm256_setzero_pd(), r1 = r0, t0 = r0, t1 = r0;               \
    double r = 0.0, t = 0.0;                                                   \
    ptrdiff_t j = 0;                                                           \
    for (; j + 8 <= m; j += 8) {                                               \
        __m256d a0 = LOAD4(c + j), a1 = LOAD4(c + j + 4);                      \
        r0 = _mm256_add_pd(r0, _mm256_andnot_pd(sign, a0));                    \
        r1 = _mm256_add_pd(r1, _mm256_andnot_pd(sign, a1));                    \
        t0 = _mm256_add_pd(t0, a0);                                            \
        t1 = _mm256_add_pd(t1, a1);                                            \
    }                                                                          \
    for (; j < m; j++) {                                                       \
        r += fabs((double)c[j]);                                               \
        t += c[j];                                                             \
    }                                                                          \
    *abs_sum = laefast_hsum4(_mm256_add_pd(r0, r1)) + r;                       \
    *sum = laefast_hsum4(_mm256_add_pd(t0, t1)) + t;                           \
}

LC_DEFINE_ROW_SUMS(f64, double, laefast_load4_f64)
LC_DEFINE_ROW_SUMS(f32, float, laefast_load4_f32)

#else  /* no AVX2 build: never called (laefast_cpu_has_avx2_fma is 0) */

static double laefast_tile_asym_f64(const double* A, const double* B,
                                    ptrdiff_t ld, ptrdiff_t h, ptrdiff_t w)
{
    (void)A; (void)B; (void)ld; (void)h; (void)w;
    return 0.0;
}

static double laefast_tile_asym_f32(const float* A, const float* B,
                                    ptrdiff_t ld, ptrdiff_t h, ptrdiff_t w)
{
    (void)A; (void)B; (void)ld; (void)h; (void)w;
    return 0.0;
}

static void laefast_row_sums_f64(const double* c, ptrdiff_t m,
                                 double* abs_sum, double* sum)
{
    (void)c; (void)m; *abs_sum = 0.0; *sum = 0.0;
}

static void laefast_row_sums_f32(const float* c, ptrdiff_t m,
                                 double* abs_sum, double* sum)
{
    (void)c; (void)m; *abs_sum = 0.0; *sum = 0.0;
}

#endif  /* LAEFAST_SIMD_BUILT */

#endif  /* LAEFAST_SIMD_CHECKS_H */
