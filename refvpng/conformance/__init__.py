r"""Conformance kit: golden fixtures, a checker that names convention mistakes, interop helpers.

For people who implement VPNG, the q-natural gradient or K-FAC in another framework and want to
know that their numbers are refvpng's:

- :mod:`~refvpng.conformance.fixture_io`: the shipped fixtures (``NAME.npz`` + ``NAME.json``,
  readable with numpy and json alone; manifest schema documented there) and
  :func:`export_fixtures` (``refvpng fixtures export DIR``);
- :mod:`~refvpng.conformance.registry` and :mod:`~refvpng.conformance.cases`: the named cases
  (every estimator on every model of the paper) and :mod:`~refvpng.conformance.generate`, the
  script that made the fixtures;
- :mod:`~refvpng.conformance.checker`: :func:`check` (``refvpng check PATH``) with the
  diagnoses of :mod:`~refvpng.conformance.diagnose`;
- :mod:`~refvpng.conformance.interop`: :class:`ParamSpec` (named slices of :math:`\eta`,
  ``spec.slice("decoder.layer2.W")``) and conversion to PyTorch and JAX/flax layouts;
- :mod:`~refvpng.conformance.models`: models named by JSON-ready specs.

See ``docs/porting.md`` for the conventions a port must follow.
"""

from refvpng.conformance.checker import Report, Row, check
from refvpng.conformance.diagnose import Diagnosis, diagnose
from refvpng.conformance.fixture_io import (
    SCHEMA_VERSION,
    export_fixtures,
    fixtures_dir,
    list_fixtures,
    read_fixture,
)
from refvpng.conformance.interop import (
    Block,
    ParamSpec,
    from_flax_layout,
    from_torch_layout,
    to_flax_layout,
    to_torch_layout,
)
from refvpng.conformance.models import build_model, param_spec

__all__ = [
    "SCHEMA_VERSION",
    "Block",
    "Diagnosis",
    "ParamSpec",
    "Report",
    "Row",
    "build_model",
    "check",
    "diagnose",
    "export_fixtures",
    "fixtures_dir",
    "from_flax_layout",
    "from_torch_layout",
    "list_fixtures",
    "param_spec",
    "read_fixture",
    "to_flax_layout",
    "to_torch_layout",
]
