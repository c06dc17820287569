"""Figure 2 (VAE on binarized MNIST): ``python validation/vae_figure2.py [--quick] [--out DIR]``.

A thin wrapper around :func:`refvpng.experiments.vae.main`; see ``--help`` for the options.
"""

import sys

from refvpng.experiments.vae import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
