r"""Multilayer perceptron with explicit forward and backward passes.

Layer :math:`l = 1, \dots, L` maps its input :math:`a_{l-1}` (with :math:`a_0 = x`) to

.. math::
    s_l = W_l a_{l-1} + b_l = \bar W_l \bar a_{l-1}, \qquad
    \bar a_{l-1} = \begin{bmatrix} a_{l-1} \\ 1 \end{bmatrix}, \qquad
    \bar W_l = [W_l, b_l] \in \mathbb{R}^{d_l \times (d_{l-1} + 1)},

followed by :math:`a_l = \phi(s_l)` for hidden layers (``relu``, ``tanh`` or ``identity``);
the last layer is linear, the network output is :math:`s_L`. An MLP built with ``bias=False``
has no biases: :math:`s_l = W_l a_{l-1}`, :math:`\bar a_{l-1} = a_{l-1}` and
:math:`\bar W_l = W_l` (the generative layer :math:`\theta` of the Poisson matrix factorisation of
Section 5.3 of Tang & Ranganath 2019); everything below holds with the bias column dropped.

Parameter packing and Kronecker ordering
----------------------------------------
This is the convention of the whole :mod:`refvpng.nn` / :mod:`refvpng.curvature.kfac` stack,
stated once here. The flat parameter vector is the concatenation over layers
:math:`l = 1, \dots, L` of the **column-major** vectorisation of :math:`\bar W_l`,

.. math::
    \operatorname{vec}(\bar W_l) = [\bar W_l[:, 0]; \bar W_l[:, 1]; \dots; \bar W_l[:, d_{l-1}]]
    \quad (\text{bias column last}),

i.e. ``W_bar.ravel(order="F")``; entry ``W_bar[o, j]`` sits at offset ``j * d_l + o`` of the
layer's block. With this order the per-example gradient block is
:math:`\operatorname{vec}(g_l \bar a_{l-1}^\top) = \bar a_{l-1} \otimes g_l`
(:math:`g_l = \partial L / \partial s_l`), so Fisher blocks factor as
:math:`A \otimes G` with the *input* factor on the left (Martens & Grosse 2015, Section 3), and
:math:`(A \otimes G) \operatorname{vec}(X) = \operatorname{vec}(G X A^\top)` for
:math:`X \in \mathbb{R}^{d_l \times (d_{l-1}+1)}`.

References
----------
.. [1] J. Martens and R. Grosse, "Optimizing neural networks with Kronecker-factored
   approximate curvature", ICML 2015.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import autograd.numpy as anp
import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import (
    as_array,
    as_array_or_traced,
    as_finite_scalar,
    as_int,
    check_finite_output,
    check_pairs,
    check_rng,
    check_trailing,
    is_traced,
)

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "MLPCache",
    "MLPGrads",
    "per_example_gradients",
]

ACTIVATIONS = ("relu", "tanh", "identity")
"""Names of the supported hidden-layer activations."""


def _act(name: str, s: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(s, 0.0)
    if name == "tanh":
        return np.tanh(s)
    return s


def _act_grad(name: str, s: np.ndarray) -> np.ndarray:
    if name == "relu":
        return (s > 0.0).astype(np.float64)
    if name == "tanh":
        return 1.0 - np.tanh(s) ** 2
    return np.ones_like(s)


class MLPCache(NamedTuple):
    r"""What :meth:`MLP.forward` keeps for the backward pass.

    Attributes
    ----------
    a_bar : tuple of ndarray, shape (n, d_{l-1} + 1)
        Homogeneous layer inputs :math:`\bar a_{l-1}` (last column ones), one per layer.
    s : tuple of ndarray, shape (n, d_l)
        Pre-activations :math:`s_l`, one per layer.
    weights : tuple of ndarray, shape (d_l, d_{l-1} + 1)
        The unpacked :math:`\bar W_l`.
    activation : str
        Hidden-layer activation name.
    """

    a_bar: tuple[np.ndarray, ...]
    s: tuple[np.ndarray, ...]
    weights: tuple[np.ndarray, ...]
    activation: str


class MLPGrads(NamedTuple):
    r"""What :meth:`MLP.backward` returns.

    Attributes
    ----------
    params : ndarray, shape (P,)
        :math:`\partial L / \partial` params, summed over the batch, packed like the parameters.
    g : tuple of ndarray, shape (n, d_l)
        Per-layer :math:`g_l = \partial L / \partial s_l` (per row of the batch).
    pairs : tuple of (ndarray, ndarray)
        ``(a_bar_l, g_l)`` per layer, the inputs of :func:`refvpng.curvature.kfac.kfac_factors`.
    input : ndarray, shape (n, d_0)
        :math:`\partial L / \partial x`.
    """

    params: np.ndarray
    g: tuple[np.ndarray, ...]
    pairs: tuple[tuple[np.ndarray, np.ndarray], ...]
    input: np.ndarray


@dataclass(frozen=True)
class MLP:
    r"""A fully connected network: a bundle of pure functions of ``(params, x)``.

    Parameters
    ----------
    sizes : sequence of int, length L + 1
        Widths :math:`(d_0, d_1, \dots, d_L)`: input, hidden layers, output.
    activation : {"relu", "tanh", "identity"}, default "relu"
        Activation of the hidden layers; the last layer is always linear.
    bias : bool, default True
        Whether every layer has a bias (the last column of :math:`\bar W_l`); without it
        :math:`\bar W_l = W_l` and :math:`\bar a_{l-1} = a_{l-1}`.

    Raises
    ------
    ValueError
        If ``sizes`` has fewer than two entries or a non-positive width, or ``activation`` is
        unknown.
    TypeError
        If ``bias`` is not a bool.

    Examples
    --------
    >>> import numpy as np
    >>> from refvpng.nn import MLP
    >>> net = MLP((3, 4, 2))
    >>> net.num_params  # (3 + 1) * 4 + (4 + 1) * 2
    26
    >>> params = net.init(np.random.default_rng(0))
    >>> out, cache = net.forward(params, np.ones((5, 3)))
    >>> out.shape
    (5, 2)
    >>> grads = net.backward(cache, np.ones((5, 2)))
    >>> grads.params.shape, grads.input.shape
    ((26,), (5, 3))
    >>> MLP((3, 4, 2), bias=False).num_params  # 3 * 4 + 4 * 2
    20
    """

    sizes: Sequence[int]
    activation: str = "relu"
    bias: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.sizes, (str, bytes)) or not hasattr(self.sizes, "__len__"):
            raise TypeError("sizes must be a sequence of int")
        sizes = tuple(as_int(s, "sizes") for s in self.sizes)
        if len(sizes) < 2:
            raise ValueError(f"sizes must have at least 2 entries, got {len(sizes)}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if not isinstance(self.bias, (bool, np.bool_)):
            raise TypeError(f"bias must be a bool, got {type(self.bias).__name__}")
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "bias", bool(self.bias))

    @property
    def num_layers(self) -> int:
        """Number of affine layers :math:`L`."""
        return len(self.sizes) - 1

    @property
    def layer_shapes(self) -> tuple[tuple[int, int], ...]:
        r"""Shapes :math:`(d_l, d_{l-1} + 1)` of the :math:`\bar W_l` (no bias: :math:`(d_l, d_{l-1})`)."""
        extra = int(self.bias)
        return tuple((o, i + extra) for i, o in zip(self.sizes[:-1], self.sizes[1:], strict=True))

    @property
    def num_params(self) -> int:
        """Length of the flat parameter vector."""
        return sum(o * i for o, i in self.layer_shapes)

    def unpack(self, params: ArrayLike) -> list[np.ndarray]:
        r"""Split a flat parameter vector into the :math:`\bar W_l`.

        Parameters
        ----------
        params : ndarray, shape (P,)
            Flat parameters, column-major :math:`\operatorname{vec}(\bar W_l)` concatenated.

        Returns
        -------
        list of ndarray, shape (d_l, d_{l-1} + 1)
            One :math:`\bar W_l = [W_l, b_l]` per layer (views into ``params`` when possible).

        Raises
        ------
        ValueError
            If ``params`` has the wrong shape or non-finite entries.
        """
        params = as_array(params, "params", shape=(self.num_params,))
        out, k = [], 0
        for o, i in self.layer_shapes:
            out.append(params[k : k + o * i].reshape(i, o).T)
            k += o * i
        return out

    def pack(self, weights: Sequence[ArrayLike]) -> np.ndarray:
        r"""Inverse of :meth:`unpack`: concatenate the :math:`\operatorname{vec}(\bar W_l)`.

        Parameters
        ----------
        weights : sequence of ndarray, shape (d_l, d_{l-1} + 1)
            The :math:`\bar W_l`, bias in the last column.

        Returns
        -------
        ndarray, shape (P,)

        Raises
        ------
        ValueError
            If the number or shapes of ``weights`` do not match the architecture.
        """
        if not isinstance(weights, (list, tuple)):
            raise TypeError(
                f"weights must be a sequence of {self.num_layers} arrays, got {type(weights).__name__}"
            )
        if len(weights) != self.num_layers:
            raise ValueError(f"weights must have {self.num_layers} entries, got {len(weights)}")
        return np.concatenate(
            [
                as_array(w, f"weights[{k}]", shape=shp).ravel(order="F")
                for k, (w, shp) in enumerate(zip(weights, self.layer_shapes, strict=True))
            ]
        )

    def init(self, rng: np.random.Generator, *, bias_scale: float = 0.1) -> np.ndarray:
        r"""Draw :math:`W_l \sim N(0, 1/d_{l-1})` and :math:`b_l \sim N(0, s_b^2)` (if biased).

        Parameters
        ----------
        rng : numpy.random.Generator
            Source of randomness.
        bias_scale : float, default 0.1
            :math:`s_b`, the standard deviation of the biases.

        Returns
        -------
        ndarray, shape (P,)
        """
        check_rng(rng)
        bias_scale = as_finite_scalar(bias_scale, "bias_scale")
        ws = []
        for (o, _), i in zip(self.layer_shapes, self.sizes[:-1], strict=True):
            w = np.empty((o, i + self.bias))
            w[:, :i] = rng.standard_normal((o, i)) / np.sqrt(i)
            if self.bias:
                w[:, -1] = bias_scale * rng.standard_normal(o)
            ws.append(w)
        return self.pack(ws)

    def apply(self, params: ArrayLike, x: ArrayLike) -> np.ndarray:
        r"""Network output :math:`s_L` written with ``autograd.numpy``: the autograd reference.

        Same packing and arithmetic as :meth:`forward`, differentiable by autograd (this is what
        :func:`refvpng.nn.chain_model` hands to the generic estimators). No input checks: it is
        called inside estimators with autograd boxes; plain arrays are checked.

        Parameters
        ----------
        params : ndarray, shape (P,)
        x : ndarray, shape (..., d_0)

        Returns
        -------
        ndarray, shape (..., d_L)
        """
        params = as_array_or_traced(params, "params", shape=(self.num_params,))
        x = check_trailing(as_array_or_traced(x, "x"), "x", self.sizes[0])
        a, k = x, 0
        for layer, (o, i) in enumerate(self.layer_shapes):
            w = anp.transpose(anp.reshape(params[k : k + o * i], (i, o)))
            k += o * i
            s = anp.dot(a, anp.transpose(w[:, :-1])) + w[:, -1] if self.bias else anp.dot(a, anp.transpose(w))
            if layer == self.num_layers - 1:
                a = s
            elif self.activation == "relu":
                a = anp.maximum(s, 0.0)
            elif self.activation == "tanh":
                a = anp.tanh(s)
            else:
                a = s
        return a if is_traced(params) or is_traced(x) else check_finite_output(a, "apply")

    def forward(self, params: ArrayLike, x: ArrayLike) -> tuple[np.ndarray, MLPCache]:
        r"""Forward pass on a batch.

        Parameters
        ----------
        params : ndarray, shape (P,)
            Flat parameters (see the module docstring for the packing).
        x : ndarray, shape (n, d_0)
            Inputs, one per row.

        Returns
        -------
        out : ndarray, shape (n, d_L)
            :math:`s_L`, the linear output of the last layer.
        cache : MLPCache
            Layer inputs :math:`\bar a_{l-1}`, pre-activations and weights for :meth:`backward`.

        Raises
        ------
        ValueError
            If ``params`` or ``x`` has the wrong shape or non-finite entries.
        """
        weights = self.unpack(params)
        a = as_array(x, "x", shape=(None, self.sizes[0]))
        a_bars, ss = [], []
        for k, w in enumerate(weights):
            a_bar = np.concatenate([a, np.ones((a.shape[0], 1))], axis=1) if self.bias else a
            s = a_bar @ w.T
            a_bars.append(a_bar)
            ss.append(s)
            a = s if k == len(weights) - 1 else _act(self.activation, s)
        return a, MLPCache(tuple(a_bars), tuple(ss), tuple(weights), self.activation)

    def backward(self, cache: MLPCache, d_out: ArrayLike) -> MLPGrads:
        r"""Backward pass: propagate :math:`\partial L / \partial s_L` to every layer and input.

        .. math::
            g_L = \frac{\partial L}{\partial s_L}, \quad
            g_{l-1} = (g_l W_l) \odot \phi'(s_{l-1}), \quad
            \frac{\partial L}{\partial \bar W_l} = \sum_{\text{rows}} g_l \bar a_{l-1}^\top,
            \quad \frac{\partial L}{\partial x} = g_1 W_1.

        Parameters
        ----------
        cache : MLPCache
            From :meth:`forward`.
        d_out : ndarray, shape (n, d_L)
            :math:`\partial L / \partial s_L`, one row per batch row.

        Returns
        -------
        MLPGrads
            Summed parameter gradient, per-layer :math:`g_l`, ``(a_bar, g)`` pairs and the
            input gradient.

        Raises
        ------
        ValueError
            If ``d_out`` has the wrong shape or non-finite entries.
        """
        if not isinstance(cache, MLPCache):
            raise TypeError(f"cache must be the MLPCache of forward, got {type(cache).__name__}")
        n = cache.a_bar[0].shape[0]
        g = as_array(d_out, "d_out", shape=(n, self.sizes[-1]))
        gs: list[Any] = [None] * self.num_layers  # filled from the last layer back
        grads: list[Any] = [None] * self.num_layers
        for k in range(self.num_layers - 1, -1, -1):
            gs[k] = g
            grads[k] = g.T @ cache.a_bar[k]
            da = g @ cache.weights[k][:, : self.sizes[k]]
            if k > 0:
                g = da * _act_grad(cache.activation, cache.s[k - 1])
        pairs = tuple(zip(cache.a_bar, gs, strict=True))
        for k, gk in enumerate(grads):
            check_finite_output(gk, "backward", f"gradient of layer {k}")
        return MLPGrads(self.pack(grads), tuple(gs), pairs, da)


def per_example_gradients(pairs: Sequence[tuple[ArrayLike, ArrayLike]]) -> np.ndarray:
    r"""Per-row gradients from per-layer ``(a_bar, g)`` pairs.

    Row :math:`r`'s block for layer :math:`l` is
    :math:`\operatorname{vec}(g_{l,r} \bar a_{l-1,r}^\top) = \bar a_{l-1,r} \otimes g_{l,r}`
    (column-major vec, see the module docstring); blocks are concatenated in layer order, so
    the result is packed like the parameters and its column sums equal the batch gradient.

    Parameters
    ----------
    pairs : sequence of (ndarray, ndarray)
        ``(a_bar_l, g_l)`` with shapes ``(R, d_{l-1} + 1)`` and ``(R, d_l)``.

    Returns
    -------
    ndarray, shape (R, P)

    Raises
    ------
    ValueError
        If a pair has the wrong shape or the row counts differ.

    Examples
    --------
    >>> import numpy as np
    >>> a_bar, g = np.array([[2.0, 1.0]]), np.array([[1.0, 10.0]])
    >>> per_example_gradients([(a_bar, g)])
    array([[ 2., 20.,  1., 10.]])
    """
    blocks, rows = [], None
    for k, (a_bar, g) in enumerate(check_pairs(pairs)):
        a_bar = as_array(a_bar, f"pairs[{k}][0]", ndim=2)
        g = as_array(g, f"pairs[{k}][1]", ndim=2)
        if rows is None:
            rows = a_bar.shape[0]
        if a_bar.shape[0] != rows or g.shape[0] != rows:
            raise ValueError(f"pairs[{k}] must have {rows} rows, got {a_bar.shape[0]} and {g.shape[0]}")
        blocks.append(np.einsum("ri,ro->rio", a_bar, g).reshape(rows, -1))
    if not blocks:
        raise ValueError("pairs must not be empty")
    return np.concatenate(blocks, axis=1)
