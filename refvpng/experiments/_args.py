"""Argument checks of the chain-experiment functions, applied by a decorator.

:func:`checked` names, per argument, the check that validates it (a ``TypeError`` or
``ValueError`` naming the argument, as everywhere in the package) and passes the checked value
on; a ``FloatingPointError`` raised inside (a run that diverges: the ELBO overflows at a too
large step size) is re-raised with the function's name in front. The checks sit on the
signature, so the functions' bodies stay the protocol alone.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from refvpng._checks import as_array, as_int, as_positive_scalar

_F = TypeVar("_F", bound=Callable[..., Any])
Check = Callable[[Any, str], Any]


def checked(**checks: Check) -> Callable[[_F], _F]:
    """Decorator: validate the named arguments with their checks ``check(value, name)``."""

    def deco(func: _F) -> _F:
        sig = inspect.signature(func)
        unknown = set(checks) - set(sig.parameters)
        if unknown:  # a programming error in this package, caught at import
            raise TypeError(f"{func.__name__} has no parameters {sorted(unknown)}")

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = sig.bind(*args, **kwargs)
            for name, check in checks.items():
                if name in bound.arguments:
                    bound.arguments[name] = check(bound.arguments[name], name)
            try:
                return func(*bound.args, **bound.kwargs)
            except FloatingPointError as exc:
                raise FloatingPointError(f"{func.__name__}: {exc}") from None

        return wrapper  # type: ignore[return-value]  # functools.wraps keeps the signature

    return deco


def optional(check: Check) -> Check:
    """``check``, or ``None`` passed through."""
    return lambda value, name: None if value is None else check(value, name)


def settings(value: Any, name: str) -> Any:
    """An experiment's ``Settings`` (:class:`refvpng.experiments.vae.Settings` or a subclass)."""
    from refvpng.experiments.vae import Settings

    if not isinstance(value, Settings):
        raise TypeError(
            f"{name} must be an experiment's Settings (refvpng.experiments.vae.Settings or a "
            f"subclass), got {type(value).__name__}"
        )
    return value


def method(value: Any, name: str) -> str:
    """One of :data:`refvpng.experiments.chain_training.METHODS`."""
    from refvpng.experiments.chain_training import METHODS

    if not isinstance(value, str) or value not in METHODS:
        raise ValueError(f"{name} must be one of {METHODS}, got {value!r}")
    return value


def vae_method(value: Any, name: str) -> str:
    """One of :data:`refvpng.experiments.vae.METHODS` (the shared methods and the ``*_authors`` ones)."""
    from refvpng.experiments.vae import METHODS

    if not isinstance(value, str) or value not in METHODS:
        raise ValueError(f"{name} must be one of {METHODS}, got {value!r}")
    return value


def positive(value: Any, name: str) -> float:
    """A finite number > 0."""
    return as_positive_scalar(value, name)


def count(value: Any, name: str) -> int:
    """An integer >= 1."""
    return as_int(value, name)


def flag(value: Any, name: str) -> bool:
    """A bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def text(value: Any, name: str) -> str:
    """A str."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value


def function(value: Any, name: str) -> Callable:
    """A callable."""
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__}")
    return value


def mapping(value: Any, name: str) -> dict:
    """A dict (a results document, the finished cells)."""
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict, got {type(value).__name__}")
    return value


def chain(value: Any, name: str) -> Any:
    """A :class:`refvpng.nn.Chain`."""
    from refvpng.nn.chain import Chain

    if not isinstance(value, Chain):
        raise TypeError(f"{name} must be a refvpng.nn.Chain, got {type(value).__name__}")
    return value


def likelihood(value: Any, name: str) -> Any:
    """A Bernoulli or Poisson likelihood (those :func:`refvpng.nn.vae_step` trains)."""
    from refvpng.models.likelihoods import Bernoulli, Poisson

    if not isinstance(value, (Bernoulli, Poisson)):
        raise TypeError(f"{name} must be a Bernoulli or Poisson likelihood, got {type(value).__name__}")
    return value


def cell(value: Any, name: str) -> Any:
    """A :class:`refvpng.experiments.harness.Cell` with ``method`` and ``lr`` parameters."""
    from refvpng.experiments.harness import Cell

    if not isinstance(value, Cell) or not isinstance(value.params, dict):
        raise TypeError(f"{name} must be a harness Cell, got {type(value).__name__}")
    missing = {"method", "lr"} - set(value.params)
    if missing:
        raise ValueError(f"{name}.params must hold 'method' and 'lr', missing {sorted(missing)}")
    return value


def data(value: Any, name: str) -> Any:
    """Training data: ``train``, ``train_eval`` and ``test`` finite 2-d arrays of one width."""
    widths = set()
    for part in ("train", "train_eval", "test"):
        if not hasattr(value, part):
            raise TypeError(
                f"{name} must have train, train_eval and test arrays (BinarizedMNIST, MovieLens), "
                f"got {type(value).__name__}"
            )
        a = as_array(getattr(value, part), f"{name}.{part}", ndim=2)
        if a.shape[0] == 0:
            raise ValueError(f"{name}.{part} must hold at least one row")
        widths.add(a.shape[1])
    if len(widths) != 1:
        raise ValueError(f"{name}.train, .train_eval and .test must have one width, got {sorted(widths)}")
    return value
