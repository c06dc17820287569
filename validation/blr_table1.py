"""Table 1 (Bayesian logistic regression): ``python validation/blr_table1.py [--quick] [--jobs N]``."""

import sys

from refvpng.experiments.blr import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
