"""Linear VAE on pPCA data: ``python validation/ppca_experiment.py [--quick] [--out DIR]``.

Compares the two-step natural gradient, VPNG, the q-natural gradient and Adam (see
:mod:`refvpng.experiments.ppca`); writes ``latent_fisher.json`` (key ``ppca``) and
``ppca_convergence.png`` to ``--out`` (default ``validation/results``).
"""

import sys

from refvpng.experiments.ppca import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
