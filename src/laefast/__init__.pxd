# Marks src/laefast as the Cython package "laefast", so that the modules
# compile with package names (laefast._solvers ...) and cimports read
# "from laefast._blas cimport ...".
