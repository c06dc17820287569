"""Figure 3 (Poisson MF on MovieLens): ``python validation/vmf_figure3.py [--quick] [--out DIR]``.

A thin wrapper around :func:`refvpng.experiments.vmf.main`; see ``--help`` for the options.
"""

import sys

from refvpng.experiments.vmf import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
