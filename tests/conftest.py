import os

# One OpenMP thread per test process: tblite and PySCF spin-wait when threads outnumber free cores, which
# made a labelling test 100x slower beside another busy process. Must be set before they are imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")
