r"""The packing of probabilistic PCA and factor analysis: :class:`PPCASpec`.

:math:`\theta` is a flat float64 vector of length ``n_params = d*k + d + m`` with ``m = 1``
(``noise="iso"``, probabilistic PCA) or ``m = d`` (``noise="diag"``, factor analysis)::

    theta = [ W.ravel(order="F")  |  b  |  eta ]
                   d*k               d     m

- ``W`` (shape ``(d, k)``, output by input) and ``b`` are packed as one layer of
  :mod:`refvpng.nn.mlp`: ``vec([W, b])`` **column-major**, so entry ``c*d + a`` is ``W[a, c]``
  and ``b`` follows. With this order :math:`\mathrm{vec}(Wz) = (z^\top \otimes I_d)\,
  \mathrm{vec}W` and every Kronecker product is written input :math:`\otimes` output.
- ``eta`` is the noise coordinate, ``noise_coord="log"`` (default, :math:`\rho = \log\psi`) or
  ``"var"`` (:math:`\psi` itself, then > 0). Scores and Fishers are with respect to the packed
  vector in that coordinate; the two are related by :math:`\partial\psi/\partial\rho = \psi`.

Internally the closed forms are built in the *full* coordinates (``W``, ``b`` and one variance
per output, :math:`\psi_1, \dots, \psi_d`) and pulled back by
:math:`J = \partial\theta_{\mathrm{full}}/\partial\theta = \mathrm{blockdiag}(I_{dk+d}, N)`
(:meth:`PPCASpec.pullback`), :math:`N = \partial(\psi_1..\psi_d)/\partial\eta`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import autograd.numpy as anp
import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_array, as_int, is_traced

__all__ = ["PPCASpec", "NOISES", "NOISE_COORDS"]

NOISES = ("iso", "diag")
NOISE_COORDS = ("log", "var")


@dataclass(frozen=True)
class PPCASpec:
    r"""Sizes, noise model and parameter packing of a linear-Gaussian latent model.

    .. math::
        z \sim N(0, I_k), \qquad x \mid z \sim N(Wz + b, \Psi), \qquad
        \Psi = \psi I_d \ (\text{"iso"}) \ \text{or}\ \operatorname{diag}(\psi_1..\psi_d)
        \ (\text{"diag"}).

    Parameters
    ----------
    d, k : int
        Observed and latent dimensions, ``1 <= k <= d``.
    noise : {"iso", "diag"}, default "iso"
        Probabilistic PCA or factor analysis.
    noise_coord : {"log", "var"}, default "log"
        Coordinate of the noise entries of :math:`\theta`.

    Raises
    ------
    ValueError
        If ``k > d``, a dimension is < 1, or an option is unknown.
    TypeError
        If ``d`` or ``k`` is not an integer.

    Examples
    --------
    >>> spec = PPCASpec(3, 2)
    >>> spec.n_params, PPCASpec(3, 2, "diag").n_params, spec.slice("b")
    (10, 12, slice(6, 9, None))
    >>> theta = spec.pack(np.arange(6.0).reshape(3, 2), np.zeros(3), 0.5)
    >>> theta[:6].tolist()                       # column-major W
    [0.0, 2.0, 4.0, 1.0, 3.0, 5.0]
    """

    d: int
    k: int
    noise: str = "iso"
    noise_coord: str = "log"

    def __post_init__(self):
        d = as_int(self.d, "d")
        k = as_int(self.k, "k")
        if k > d:
            raise ValueError(f"k must be <= d, got k={k} > d={d}")
        if self.noise not in NOISES:
            raise ValueError(f"noise must be one of {NOISES}, got {self.noise!r}")
        if self.noise_coord not in NOISE_COORDS:
            raise ValueError(f"noise_coord must be one of {NOISE_COORDS}, got {self.noise_coord!r}")
        object.__setattr__(self, "d", d)
        object.__setattr__(self, "k", k)

    @property
    def n_noise(self) -> int:
        """Number ``m`` of noise parameters: 1 (``"iso"``) or ``d`` (``"diag"``)."""
        return 1 if self.noise == "iso" else self.d

    @property
    def n_params(self) -> int:
        r"""Length ``d*k + d + m`` of :math:`\theta`."""
        return self.d * self.k + self.d + self.n_noise

    def slice(self, name: str) -> slice:
        r"""Positions of block ``"W"``, ``"b"`` or ``"noise"`` in :math:`\theta`."""
        dk = self.d * self.k
        blocks = {
            "W": slice(0, dk),
            "b": slice(dk, dk + self.d),
            "noise": slice(dk + self.d, self.n_params),
        }
        if name not in blocks:
            raise ValueError(f"name must be one of {tuple(blocks)}, got {name!r}")
        return blocks[name]

    # ----------------------------------------------------------------------------------------
    # packing
    # ----------------------------------------------------------------------------------------

    def pack(self, W: ArrayLike, b: ArrayLike, psi: ArrayLike) -> np.ndarray:
        r"""Pack ``(W, b, psi)`` into :math:`\theta` (module docstring).

        Parameters
        ----------
        W : array_like, shape (d, k)
        b : array_like, shape (d,)
        psi : float or array_like, shape (m,)
            Noise **variance(s)** (variance units whatever ``noise_coord`` is), > 0.

        Returns
        -------
        theta : ndarray, shape (n_params,)

        Raises
        ------
        ValueError
            On wrong shapes, non-finite entries or ``psi <= 0``.
        """
        W = as_array(W, "W", shape=(self.d, self.k))
        b = as_array(b, "b", shape=(self.d,))
        m = self.n_noise
        psi = as_array(psi, "psi", ndim=(0, 1)).reshape(-1)
        if psi.shape[0] != m:
            raise ValueError(
                f"psi must have {m} entr{'y' if m == 1 else 'ies'} for noise={self.noise!r}, "
                f"got {psi.shape[0]}"
            )
        if np.any(psi <= 0):
            raise ValueError(f"psi must be > 0, got {psi}")
        eta = np.log(psi) if self.noise_coord == "log" else psi
        return np.concatenate([W.ravel(order="F"), b, eta])

    def check(self, theta: ArrayLike) -> np.ndarray:
        """Return ``theta`` as a checked float64 vector (length, finiteness, variance > 0)."""
        theta = as_array(theta, "theta", ndim=1)
        if theta.shape[0] != self.n_params:
            raise ValueError(
                f"theta must have length d*k + d + m = {self.n_params} (d={self.d}, k={self.k}, "
                f"noise={self.noise!r}), got {theta.shape[0]}"
            )
        self._psi(theta)
        return theta

    def _psi(self, theta) -> np.ndarray:
        eta = theta[self.slice("noise")]
        if self.noise_coord == "log":
            with np.errstate(over="ignore", under="ignore"):
                psi = np.exp(eta)
        else:
            psi = eta.copy()
        if not (np.all(np.isfinite(psi)) and np.all(psi > 0)):
            raise ValueError(
                f"theta: noise variance must be finite and > 0, got {psi} (noise_coord={self.noise_coord!r})"
            )
        return psi

    def unpack(self, theta: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r"""Unpack :math:`\theta` into ``(W, b, psi)``, inverse of :meth:`pack`.

        Returns
        -------
        W : ndarray, shape (d, k)
        b : ndarray, shape (d,)
        psi : ndarray, shape (m,)
            Noise variance(s).

        Raises
        ------
        ValueError
            On a wrong length, NaN/inf or a non-positive variance.
        """
        theta = self.check(theta)
        W = theta[self.slice("W")].reshape(self.d, self.k, order="F").copy()
        return W, theta[self.slice("b")].copy(), self._psi(theta)

    def psi_diag(self, theta: ArrayLike) -> np.ndarray:
        r"""The diagonal :math:`(\psi_1, \dots, \psi_d)` of :math:`\Psi`, after checking ``theta``."""
        psi = self._psi(self.check(theta))
        return np.full(self.d, psi[0]) if self.noise == "iso" else psi

    def decoder_parts(self, theta: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r"""``(W, b, log_psi)``, autograd-friendly (``log_psi`` shape ``(m,)``); a plain theta is checked."""
        if not is_traced(theta):
            theta = self.check(theta)
        theta = cast(np.ndarray, theta)  # or an autograd box, which passes unconverted
        W = anp.transpose(anp.reshape(theta[: self.d * self.k], (self.k, self.d)))
        b = theta[self.slice("b")]
        eta = theta[self.slice("noise")]
        return W, b, (eta if self.noise_coord == "log" else anp.log(eta))

    def pullback(self, theta: ArrayLike) -> np.ndarray:
        r"""Jacobian :math:`J = \partial\theta_{\mathrm{full}}/\partial\theta`, shape ``(dk + 2d, P)``.

        :math:`\theta_{\mathrm{full}} = (\mathrm{vec}W, b, \psi_1..\psi_d)`; the noise block is
        :math:`N = I_d` or :math:`\mathrm{diag}(\psi)` (``"diag"``, ``"var"``/``"log"``) and
        :math:`\mathbf 1_d` or :math:`\psi\mathbf 1_d` (``"iso"``).
        """
        psi = self._psi(self.check(theta))
        scale = psi if self.noise_coord == "log" else np.ones_like(psi)
        N = np.full((self.d, 1), scale[0]) if self.noise == "iso" else np.diag(scale)
        n_wb = self.d * self.k + self.d
        J = np.zeros((n_wb + self.d, self.n_params))
        J[:n_wb, :n_wb] = np.eye(n_wb)
        J[n_wb:, n_wb:] = N
        return J

    def check_data(self, x: ArrayLike, name: str = "x") -> tuple[np.ndarray, bool]:
        """``x`` as a 2-D array ``(n, d)``; also return whether the input was 1-D."""
        x = as_array(x, name, ndim=(1, 2))
        one = x.ndim == 1
        x2 = x[None, :] if one else x
        if x2.shape[1] != self.d:
            raise ValueError(f"{name} must have {self.d} columns, got shape {x.shape}")
        return x2, one
