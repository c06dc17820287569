r"""Named index slices of :math:`\eta` and conversion to PyTorch and JAX/flax layouts.

refvpng packs every parameter vector :math:`\eta = (\lambda, \theta)` block by block, each matrix
**column-major** (``W.ravel(order="F")``), a layer's weight ``W`` of shape ``(out, in)``
immediately followed by its bias ``b``, so that the layer's block is
:math:`\operatorname{vec}([W, b])` and its K-FAC block is :math:`A \otimes G` (input factor
left). A :class:`ParamSpec` lists these blocks by name (``"decoder.layer2.W"``); it is what a
fixture manifest stores under ``"packing"`` (:meth:`ParamSpec.to_json`).

Layouts of other libraries:

- PyTorch ``nn.Linear``: ``weight`` of shape ``(out, in)`` and ``bias`` ``(out,)``
  (:func:`to_torch_layout`, :func:`from_torch_layout`; keys ``"<layer>.weight"``,
  ``"<layer>.bias"``). ``torch.nn.utils.parameters_to_vector`` flattens ``weight``
  **row-major**: not refvpng's order.
- flax ``nn.Dense``: ``kernel`` of shape ``(in, out)`` (the transpose) and ``bias``
  (:func:`to_flax_layout`, :func:`from_flax_layout`; nested dicts ``{"decoder": {"layer2":
  {"kernel", "bias"}}}``).

A *layer* is a name prefix with a 2-D block ``<prefix>.W`` and a 1-D block ``<prefix>.b``
right after it; other blocks (``"lambda.m"``, ``"decoder.noise"``) are kept under their own
names in both layouts.

Examples
--------
>>> spec = ParamSpec.sequential([("enc.W", (2, 3)), ("enc.b", (2,))])
>>> spec.slice("enc.b")
slice(6, 8, None)
>>> eta = np.arange(8.0)
>>> to_torch_layout(spec, eta)["enc.weight"]        # column-major in eta
array([[0., 2., 4.],
       [1., 3., 5.]])
>>> bool(np.array_equal(from_flax_layout(spec, to_flax_layout(spec, eta)), eta))
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_array, as_int

__all__ = [
    "Block",
    "ParamSpec",
    "to_torch_layout",
    "from_torch_layout",
    "to_flax_layout",
    "from_flax_layout",
]


@dataclass(frozen=True)
class Block:
    r"""One named block of :math:`\eta`: ``shape`` stored from ``start`` in ``order`` ("F" or "C")."""

    name: str
    start: int
    shape: tuple[int, ...]
    order: str = "F"

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty str, got {self.name!r}")
        as_int(self.start, "start", minimum=0)
        if not isinstance(self.shape, tuple):
            raise TypeError(f"shape must be a tuple of int, got {type(self.shape).__name__}")
        for s in self.shape:
            as_int(s, "shape", minimum=0)
        if self.order not in ("F", "C"):
            raise ValueError(f"order must be 'F' or 'C', got {self.order!r}")

    @property
    def size(self) -> int:
        """Number of entries."""
        return int(np.prod(self.shape, dtype=int))

    @property
    def stop(self) -> int:
        """One past the last index."""
        return self.start + self.size


@dataclass(frozen=True)
class ParamSpec:
    r"""The named blocks of :math:`\eta`, contiguous and in order.

    Parameters
    ----------
    blocks : tuple of Block
        Contiguous from 0.
    n_lambda : int
        Length of the variational block :math:`\lambda` (the first ``n_lambda`` entries).

    Raises
    ------
    ValueError
        If the blocks are not contiguous, a name repeats, or an order is not "F"/"C".
    """

    blocks: tuple[Block, ...]
    n_lambda: int

    def __post_init__(self):
        if not isinstance(self.blocks, tuple) or not all(isinstance(b, Block) for b in self.blocks):
            raise TypeError(f"blocks must be a tuple of Block, got {self.blocks!r:.80}")
        pos, seen = 0, set()
        for b in self.blocks:
            if b.start != pos:
                raise ValueError(f"block {b.name!r} starts at {b.start}, expected {pos}")
            if b.name in seen:
                raise ValueError(f"block name {b.name!r} repeats")
            if b.order not in ("F", "C"):
                raise ValueError(f"block {b.name!r} has order {b.order!r}; use 'F' or 'C'")
            seen.add(b.name)
            pos = b.stop
        n_lambda = as_int(self.n_lambda, "n_lambda", minimum=0)
        if n_lambda > pos:
            raise ValueError(f"n_lambda must be in [0, {pos}] (the total size of the blocks), got {n_lambda}")

    @classmethod
    def sequential(
        cls, named_shapes: Iterable[tuple[str, Sequence[int]]], n_lambda: int | None = None
    ) -> ParamSpec:
        """Blocks ``[(name, shape), ...]`` laid out one after another, column-major."""
        if isinstance(named_shapes, (str, bytes)) or not isinstance(named_shapes, (list, tuple)):
            raise TypeError(
                f"named_shapes must be a sequence of (name, shape) pairs, got {type(named_shapes).__name__}"
            )
        blocks, pos = [], 0
        for k, item in enumerate(named_shapes):
            if (
                not isinstance(item, (list, tuple))
                or len(item) != 2
                or not isinstance(item[1], (list, tuple))
            ):
                raise TypeError(f"named_shapes[{k}] must be a (name, shape) pair, got {item!r}")
            name, shape = item
            b = Block(str(name), pos, tuple(shape))
            blocks.append(b)
            pos = b.stop
        if n_lambda is None:
            return cls(tuple(blocks), pos)
        if as_int(n_lambda, "n_lambda", minimum=0) > pos:
            raise ValueError(
                f"n_lambda must be in [0, {pos}] (the total size of named_shapes), got {n_lambda}"
            )
        return cls(tuple(blocks), n_lambda)

    @property
    def size(self) -> int:
        r"""Length ``P`` of :math:`\eta`."""
        return self.blocks[-1].stop if self.blocks else 0

    @property
    def names(self) -> tuple[str, ...]:
        """Block names in order."""
        return tuple(b.name for b in self.blocks)

    def block(self, name: str) -> Block:
        """The block called ``name`` (``KeyError`` listing the names otherwise)."""
        if not isinstance(name, str):
            raise TypeError(f"name must be a block name (str), got {type(name).__name__}")
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(f"no block {name!r}; blocks are {list(self.names)}")

    def slice(self, name: str) -> slice:
        r"""Positions of block ``name`` in :math:`\eta`, e.g. ``spec.slice("decoder.layer2.W")``."""
        b = self.block(name)
        return slice(b.start, b.stop)

    def _eta(self, eta) -> np.ndarray:
        eta = as_array(eta, "eta", ndim=1)
        if eta.shape[0] != self.size:
            raise ValueError(f"eta must have length {self.size}, got {eta.shape[0]}")
        return eta

    def unpack(self, eta: ArrayLike) -> dict[str, np.ndarray]:
        r"""Every block of :math:`\eta` as an array of its shape."""
        eta = self._eta(eta)
        return {b.name: eta[b.start : b.stop].reshape(b.shape, order=b.order) for b in self.blocks}  # type: ignore[call-overload]

    def pack(self, arrays: Mapping[str, ArrayLike]) -> np.ndarray:
        r"""Inverse of :meth:`unpack`: :math:`\eta` from a dict with every block name."""
        if not isinstance(arrays, dict):
            raise TypeError(f"arrays must be a dict of block arrays, got {type(arrays).__name__}")
        out = np.empty(self.size)
        for b in self.blocks:
            if b.name not in arrays:
                raise KeyError(f"arrays has no entry {b.name!r}")
            a = as_array(arrays[b.name], b.name, shape=b.shape)
            out[b.start : b.stop] = a.ravel(order=b.order)  # type: ignore[arg-type]
        return out

    def layers(self) -> tuple[str, ...]:
        """Prefixes ``p`` with a 2-D block ``p.W`` directly followed by a 1-D block ``p.b``."""
        out = []
        for w, b in zip(self.blocks[:-1], self.blocks[1:], strict=True):
            if w.name.endswith(".W") and b.name == w.name[:-2] + ".b" and len(w.shape) == 2:
                if b.shape == (w.shape[0],):
                    out.append(w.name[:-2])
        return tuple(out)

    def permutation(self, kind: str) -> np.ndarray:
        r"""Index array ``p``: a vector in another vec convention is ``eta[p]``.

        Parameters
        ----------
        kind : {"row_major", "kron_swap"}
            ``"row_major"``: every matrix block flattened row-major (PyTorch's
            ``parameters_to_vector``); ``"kron_swap"``: each layer's :math:`[W, b]` flattened
            row-major (bias interleaved), the order in which a block is :math:`G \otimes A`
            instead of :math:`A \otimes G`. A matrix ``F`` in that convention is ``F[p][:, p]``.

        Returns
        -------
        ndarray of int, shape (P,)
        """
        p = np.arange(self.size)
        if kind == "row_major":
            for b in self.blocks:
                if len(b.shape) == 2:
                    idx = np.arange(b.start, b.stop).reshape(b.shape, order=b.order)  # type: ignore[call-overload]
                    p[b.start : b.stop] = idx.ravel(order="C" if b.order == "F" else "F")
            return p
        if kind == "kron_swap":
            for layer in self.layers():
                w, b = self.block(layer + ".W"), self.block(layer + ".b")
                idx_w = np.arange(w.start, w.stop).reshape(w.shape, order=w.order)  # type: ignore[call-overload]
                bar = np.hstack([idx_w, np.arange(b.start, b.stop)[:, None]])
                p[w.start : b.stop] = bar.ravel(order="C")
            return p
        raise ValueError(f"kind must be 'row_major' or 'kron_swap', got {kind!r}")

    def to_json(self) -> dict:
        """A JSON-ready dict (the ``"packing"`` entry of a fixture manifest)."""
        return {
            "n_params": self.size,
            "n_lambda": self.n_lambda,
            "vec": "each block flattened in its 'order' (F = column-major), blocks in this order",
            "kronecker": "layer block vec([W, b]) column-major, K-FAC block = A (input) kron G (output)",
            "blocks": [
                {"name": b.name, "start": b.start, "stop": b.stop, "shape": list(b.shape), "order": b.order}
                for b in self.blocks
            ],
        }

    @classmethod
    def from_json(cls, data: dict) -> ParamSpec:
        """Inverse of :meth:`to_json`."""
        if not isinstance(data, dict) or not isinstance(data.get("blocks"), list) or "n_lambda" not in data:
            raise TypeError(f"data must be a dict with 'blocks' (a list) and 'n_lambda', got {data!r:.80}")
        try:
            blocks = tuple(
                Block(d["name"], d["start"], tuple(d["shape"]), d.get("order", "F")) for d in data["blocks"]
            )
        except (KeyError, TypeError) as exc:
            raise TypeError(f"data['blocks'] must hold dicts with name, start and shape: {exc}") from None
        return cls(blocks, data["n_lambda"])


def _layer_of(spec: ParamSpec) -> dict[str, str]:
    return {name: layer for layer in spec.layers() for name in (layer + ".W", layer + ".b")}


def _path(name: str, layer_of: dict, style: str) -> tuple[str, ...]:
    """Where block ``name`` lives in a torch (flat keys) or flax (nested) layout."""
    if name not in layer_of:
        return (name,) if style == "torch" else tuple(name.split("."))
    weight = name.endswith(".W")
    if style == "torch":
        return (layer_of[name] + (".weight" if weight else ".bias"),)
    return tuple(layer_of[name].split(".")) + ("kernel" if weight else "bias",)


def _check_spec(spec) -> ParamSpec:
    if not isinstance(spec, ParamSpec):
        raise TypeError(f"spec must be a ParamSpec, got {type(spec).__name__}")
    return spec


def _to_layout(spec: ParamSpec, eta, style: str) -> dict:
    _check_spec(spec)
    arrays, layer_of = spec.unpack(eta), _layer_of(spec)
    tree: dict = {}
    for name, a in arrays.items():
        *path, leaf = _path(name, layer_of, style)
        node = tree
        for p in path:
            node = node.setdefault(p, {})
        node[leaf] = np.ascontiguousarray(a.T if leaf == "kernel" else a)
    return tree


def _from_layout(spec: ParamSpec, tree, style: str, what: str) -> np.ndarray:
    _check_spec(spec)
    if not isinstance(tree, dict):
        raise TypeError(f"{what} must be a dict of arrays, got {type(tree).__name__}")
    layer_of, arrays = _layer_of(spec), {}
    for name in spec.names:
        path, node = _path(name, layer_of, style), tree
        for p in path:
            if not isinstance(node, dict) or p not in node:
                raise KeyError(
                    f"{what}: the {style} params have no entry {'/'.join(path)!r} (for block {name!r})"
                )
            node = node[p]
        a = as_array(node, f"{what}[{'/'.join(path)!r}]")
        arrays[name] = a.T if path[-1] == "kernel" else a
    return spec.pack(arrays)


def to_torch_layout(spec: ParamSpec, eta: ArrayLike) -> dict[str, np.ndarray]:
    r""":math:`\eta` as a PyTorch-style ``state_dict``: ``"<layer>.weight"`` (out, in), ``"<layer>.bias"``."""
    return _to_layout(spec, eta, "torch")


def from_torch_layout(spec: ParamSpec, state: Mapping[str, ArrayLike]) -> np.ndarray:
    r""":math:`\eta` from a PyTorch-style ``state_dict`` (arrays, or tensors converted with ``numpy()``)."""
    return _from_layout(spec, state, "torch", "state")


def to_flax_layout(spec: ParamSpec, eta: ArrayLike) -> dict:
    r""":math:`\eta` as nested flax-style params ``{"decoder": {"layer2": {"kernel", "bias"}}}``."""
    return _to_layout(spec, eta, "flax")


def from_flax_layout(spec: ParamSpec, params: Mapping[str, Any]) -> np.ndarray:
    r""":math:`\eta` from nested flax-style params (inverse of :func:`to_flax_layout`)."""
    return _from_layout(spec, params, "flax", "params")
