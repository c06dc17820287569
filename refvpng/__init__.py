"""refvpng: a NumPy reference implementation of the Variational Predictive Natural Gradient.

Tang & Ranganath (2019), "The Variational Predictive Natural Gradient", ICML.
"""

__version__ = "0.1.0"
