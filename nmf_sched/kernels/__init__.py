"""Compiled loops: numba on the CPU (:mod:`.cpu`), CuPy on the GPU (:mod:`.gpu`)."""
