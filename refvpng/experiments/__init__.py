"""Experiments of the paper, each a module with ``main(argv) -> int`` (see ``refvpng reproduce``).

Results go to ``validation/results/`` by default: machine-readable JSON written atomically, and a
PNG figure. Scripts in ``validation/`` are thin wrappers around these modules.
"""
