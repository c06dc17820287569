"""Figure 1 (bivariate Gaussian of Eq 4): ``python validation/toy_figure1.py [--quick] [--out DIR]``."""

import sys

from refvpng.experiments.toy import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
