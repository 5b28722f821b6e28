/*
 * Whether laefast's AVX2 + FMA kernels are built, and whether this CPU runs
 * them: one test for _simd_product.h, _simd_center.h, _simd_checks.h and
 * _align_simd.h (and one for AVX-512, which _simd_product.h and
 * _simd_gram.h use);
 * and the small vector helpers those headers share.
 *
 * LAEFAST_SIMD_BUILT is 1 where the compiler can build them (GCC or Clang
 * on x86, unless LAEFAST_NO_SIMD is defined); laefast_cpu_has_avx2_fma()
 * then asks the CPU (GCC and Clang report avx2 only where the OS saves the
 * YMM state).  Elsewhere it is 0, and the callers keep their portable paths.
 */
#ifndef LAEFAST_CPU_H
#define LAEFAST_CPU_H

#if (defined(__GNUC__) || defined(__clang__)) &&                               \
    (defined(__x86_64__) || defined(__i386__)) && !defined(LAEFAST_NO_SIMD)
#define LAEFAST_SIMD_BUILT 1

static int laefast_cpu_has_avx2_fma(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* AVX-512 Foundation on top of AVX2 + FMA (the ZMM state saved by the OS:
 * GCC and Clang report avx512f only then). */
static int laefast_cpu_has_avx512(void)
{
    return laefast_cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f");
}

/* Helpers the AVX2 headers share, compiled for AVX2 alone so that they
 * inline into kernels compiled for AVX2 + FMA as well. */
#include <immintrin.h>
#define LAEFAST_AVX2 __attribute__((target("avx2")))

/* 4 entries as float64 (float32 converted exactly) */
static LAEFAST_AVX2 inline __m256d laefast_load4_f64(const double* p)
{
    return _mm256_loadu_pd(p);
}

static LAEFAST_AVX2 inline __m256d laefast_load4_f32(const float* p)
{
    return _mm256_cvtps_pd(_mm_loadu_ps(p));
}

/* the sum of the 4 lanes */
static LAEFAST_AVX2 inline double laefast_hsum4(__m256d v)
{
    __m128d lo = _mm256_castpd256_pd128(v), hi = _mm256_extractf128_pd(v, 1);
    lo = _mm_add_pd(lo, hi);
    return _mm_cvtsd_f64(_mm_add_sd(lo, _mm_unpackhi_pd(lo, lo)));
}

#else
#define LAEFAST_SIMD_BUILT 0

static int laefast_cpu_has_avx2_fma(void)
{
    return 0;
}

static int laefast_cpu_has_avx512(void)
{
    return 0;
}

#endif

#endif  /* LAEFAST_CPU_H */
