/*
 * Whether laefast's AVX2 + FMA kernels are built, and whether this CPU runs
 * them: one test for _simd_product.h, _simd_center.h, _simd_checks.h and
 * _align_simd.h.
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

#else
#define LAEFAST_SIMD_BUILT 0

static int laefast_cpu_has_avx2_fma(void)
{
    return 0;
}

#endif

#endif  /* LAEFAST_CPU_H */
