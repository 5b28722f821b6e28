# Block sizes and thresholds of the compiled kernels, in one place.
#
# Each is a compile-time integer (an anonymous enum), so using one costs
# nothing over the literal it replaces.  Byte budgets are in bytes, element
# budgets in array entries; the measurements behind them are in the comments
# of the functions that use them.

cdef enum:
    # --- Threads (laefast._threads) -----------------------------------
    # Below this many flops a parallel region costs more than it saves:
    # waking the team takes tens of microseconds, and on a loaded machine a
    # spinning worker can cost a whole scheduler slice.
    PARALLEL_MIN_FLOPS = 4000000
    # A one-pass kernel over data gives each thread at least this many
    # flops (about a millisecond).
    THREAD_MIN_FLOPS = 10000000
    # The same for the samples path's centered products (every one of
    # them; iterative callers, block Lanczos above all, call them back to
    # back, so that the team is awake).  Rows of 2048 float64, 2 columns,
    # 2 cores, 0.2 ms of other work between calls: 2 threads ran 1.4x
    # faster than 1 at 2e6 flops a thread (250 rows) and 1.45x at 4e6
    # (500 rows).  At THREAD_MIN_FLOPS a 1500 x 2048 product would get 2
    # threads on any machine; here it gets 9 of 16.  (What a 16-core team
    # gains on it is not measured yet.)
    PRODUCT_THREAD_MIN_FLOPS = 2500000
    # Fewer rows than this per thread are not worth a thread (centered
    # products): each thread's partial is only m x r, so very wide data
    # with few samples still splits.  60-120 x 50000-100000 float64, 2
    # columns, 2 threads: 1.40-1.46x one thread (at GRAM_MIN_ROWS, below,
    # they ran on one).
    PRODUCT_MIN_ROWS = 8
    # The column kernel (products on a Fortran-ordered X) holds an n x r
    # partial of Xc Q per thread: it takes X with at least this many
    # columns per column of Q, and each thread at least as many, so that
    # the partials together hold at most n m / 2 bytes: a sixteenth of a
    # float64 X, an eighth of a float32 one.  Narrower X (tall and thin)
    # goes to the BLAS path, whose row gathers are short there.
    COLUMNS_PER_Q_COLUMN = 16
    # Fewer rows than this per thread are not worth a thread (passes).
    GRAM_MIN_ROWS = 64

    # --- Signal checks ------------------------------------------------
    # Python's signal handlers run after this many flops of work (1 to
    # 20 ms at 1 to 20 Gflop/s): Ctrl-C lands within ~50 ms, and checking
    # costs well under 1%.
    CHECK_FLOPS = 20000000

    # --- Gram pass (laefast._passes.gram_pass) ------------------------
    # Rows per syrk/GEMM call: about GRAM_BLOCK_BYTES of doubles, clipped
    # to [GRAM_BLOCK_MIN_ROWS, GRAM_BLOCK_MAX_ROWS] (GRAM_TILES_MIN_ROWS at
    # least for the tiles layout).
    GRAM_BLOCK_BYTES = 2 << 20
    GRAM_BLOCK_MIN_ROWS = 256
    GRAM_TILES_MIN_ROWS = 512
    GRAM_BLOCK_MAX_ROWS = 4096
    # Blocks of at most this many features go to the compiled block
    # updates (_simd_gram.h) instead of syrk.  GramAccumulator.add, 1e5 to
    # 2e5 rows, one Zen 4 core, AVX-512 against syrk: float64 0.66-0.73 of
    # the time at m = 16 to 128, 0.85-0.86 at 192 to 256, 0.89-0.93 at
    # 384 to 512, 1.06 at 768; float32 0.63-0.84, 0.80-0.83, 0.86-0.88 and
    # 0.89.  Up to 256 a chunk of rows and the partial's upper triangle
    # (at most 768 KiB together) stay in a 1 MiB L2; past it they would
    # not on many server cores, where 16 threads then stream the partials
    # through the shared caches (not measured), so the limit stays there.
    GRAM_SIMD_MAX_M = 256
    # The AVX2 kernel (float64), against OpenBLAS's dsyrk for Haswell:
    # 0.55 / 0.66 / 0.71 / 0.80 of the time at m = 16 / 32 / 64 / 128,
    # 0.90-0.93 at 160 to 192, 1.01 at 256, 1.15 at 384.
    GRAM_AVX2_MAX_M = 192

    # --- Centered products (laefast._passes.centered_product) ---------
    # Rows centered at a time: about 1 MiB of doubles, 16 to 1024 rows.
    CENTERED_BLOCK_ENTRIES = 1 << 17
    CENTERED_BLOCK_MIN_ROWS = 16
    CENTERED_BLOCK_MAX_ROWS = 1024
    # Doubles of slack before each array in the SIMD product's workspace
    # (4 KiB): room to place it on cache lines and away from X modulo
    # 4 KiB (laefast._passes.simd_layout).
    PARTIAL_SLACK = 512

    # --- Solvers on raw data (laefast._solvers, the data GramOp) ------
    # Rows centered per block: about 2 MiB of doubles (262144 entries), so
    # the block stays in cache between the two GEMMs that read it.
    DATA_BLOCK_ENTRIES = 262144
    DATA_BLOCK_MIN_ROWS = 16
    DATA_BLOCK_MAX_ROWS = 256

    # --- Minibatch SGD (laefast._sgd.svrg_sweep) -----------------------
    # A batch is split into at most SGD_MAX_SLOTS contiguous row ranges,
    # each with its own product slot (fewer if the slots would pass
    # SGD_SLOT_BYTES, but at least SGD_MIN_SLOTS), summed in slot order:
    # the same result for every thread count.  Rows are centered
    # SGD_BLOCK_ROWS at a time (the default; the caller may pass its own).
    SGD_MAX_SLOTS = 16
    SGD_MIN_SLOTS = 4
    SGD_SLOT_BYTES = 32 << 20
    SGD_BLOCK_ROWS = 256

    # --- Input checks (laefast._checks.gram_stats) ---------------------
    # Rows per band of the symmetry check.
    CHECK_TILE = 64
