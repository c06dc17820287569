"""Checkpoints: exact round trip of state trees, atomic writes, corrupted files."""

import math
import os
import subprocess
import sys
import textwrap
from typing import NamedTuple

import numpy as np
import pytest

import refvpng.optim.checkpoint as ckmod
from refvpng.optim import (
    AdamState,
    LMDampingState,
    load_checkpoint,
    make_optimizer,
    save_checkpoint,
)


def bits(x):
    """Type and exact bytes of a leaf, so NaN payloads and -0.0 compare too."""
    if isinstance(x, np.ndarray):
        return ("nd", x.dtype.str, x.shape, x.tobytes())
    if isinstance(x, np.generic):
        return ("np", x.dtype.str, x.tobytes())
    if isinstance(x, float):
        return ("float", x.hex())
    return (type(x).__name__, x)


def tree_bits(t):
    if isinstance(t, tuple) and hasattr(type(t), "_fields"):
        return (type(t), tuple(type(t)._fields), tuple(tree_bits(v) for v in t))
    if isinstance(t, (tuple, list)):
        return (type(t), tuple(tree_bits(v) for v in t))
    if isinstance(t, dict):
        return (dict, tuple((k, tree_bits(v)) for k, v in sorted(t.items())))
    return bits(t)


def test_round_trip_of_optimizer_states(tmp_path):
    opt = make_optimizer("vpng", "adam", 0.1, damping=0.5, adapt_damping=True)
    x = np.array([0.1, -0.2, 0.3])
    state = opt.init(x)
    state = opt.update(np.array([1.0, 2.0, 3.0]), state, x, value=-1.0, curvature=np.eye(3))[1]
    path = tmp_path / "c.npz"
    save_checkpoint(path, x, state, step=1, seed=2**100 + 3, history=[-1.0])
    ck = load_checkpoint(path)
    assert isinstance(ck.state, LMDampingState)
    assert isinstance(ck.state.inner[1], AdamState)
    assert tree_bits(ck.state) == tree_bits(state)
    assert ck.step == 1 and ck.seed == 2**100 + 3
    assert np.array_equal(ck.params, x) and np.array_equal(ck.history, [-1.0])


class Inner(NamedTuple):
    a: np.ndarray
    b: float


class Outer(NamedTuple):
    inner: Inner
    rest: tuple
    count: int


def test_round_trip_of_all_leaf_types(tmp_path):
    state = Outer(
        inner=Inner(a=np.arange(6, dtype=np.float32).reshape(2, 3), b=-0.0),
        rest=(
            math.nan,
            math.inf,
            0.1,
            None,
            True,
            "name",
            np.float32(1.5),
            np.int64(-3),
            [1, 2.5],
            {"k": np.zeros(0)},
            np.array(2.0),
        ),
        count=2**70,
    )
    path = tmp_path / "c.npz"
    save_checkpoint(path, np.zeros(1), state, step=0)
    ck = load_checkpoint(path)
    assert tree_bits(ck.state) == tree_bits(state)
    assert ck.seed is None and ck.history.shape == (0,)


def test_unsupported_leaves_rejected(tmp_path):
    with pytest.raises(TypeError, match="object array"):
        save_checkpoint(tmp_path / "c.npz", np.zeros(1), (np.array([None]),), step=0)
    with pytest.raises(TypeError, match="unsupported type"):
        save_checkpoint(tmp_path / "c.npz", np.zeros(1), (object(),), step=0)
    with pytest.raises(ValueError, match="step"):
        save_checkpoint(tmp_path / "c.npz", np.zeros(1), (), step=-1)
    assert not os.listdir(tmp_path)


def test_local_state_class_needs_like(tmp_path):
    class Local(NamedTuple):
        x: np.ndarray

    path = tmp_path / "c.npz"
    save_checkpoint(path, np.zeros(1), Local(np.ones(2)), step=0)
    with pytest.raises(ValueError, match="like="):
        load_checkpoint(path)
    ck = load_checkpoint(path, like=Local(np.zeros(2)))
    assert type(ck.state) is Local and np.array_equal(ck.state.x, np.ones(2))
    with pytest.raises(ValueError, match="structure of like"):
        load_checkpoint(path, like=(np.zeros(2),))


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    save_checkpoint(path, np.array([1.0, 2.0]), (np.ones(2),), step=3, seed=1)
    good = path.read_bytes()

    def partial_write(f, arrays):
        f.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt  # interrupted mid-write

    monkeypatch.setattr(ckmod, "_write_npz", partial_write)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, np.array([9.0, 9.0]), (np.zeros(2),), step=4, seed=1)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["c.npz"]  # the temporary file was removed
    assert load_checkpoint(path).step == 3


def test_killed_process_leaves_good_checkpoint(tmp_path):
    """A process killed (no cleanup at all) while writing leaves the old file intact."""
    path = tmp_path / "c.npz"
    script = textwrap.dedent(
        f"""
        import os
        import numpy as np
        import refvpng.optim.checkpoint as ck

        path = {str(path)!r}
        ck.save_checkpoint(path, np.array([1.0, 2.0]), (np.ones(2),), step=3, seed=1)

        def dying_write(f, arrays):
            f.write(b"PK\\x03\\x04 partial")
            f.flush()
            os._exit(17)

        ck._write_npz = dying_write
        ck.save_checkpoint(path, np.array([9.0, 9.0]), (np.zeros(2),), step=4, seed=1)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == 17, proc.stderr.decode()
    stray = [n for n in os.listdir(tmp_path) if n != "c.npz"]
    assert len(stray) == 1 and ".tmp" in stray[0]  # the partial temporary of the killed process
    ck = load_checkpoint(path)
    assert ck.step == 3 and np.array_equal(ck.params, [1.0, 2.0])
    # the next save works, and removes the dead process's temporary: none survives
    save_checkpoint(path, np.array([5.0, 5.0]), (np.ones(2),), step=5, seed=1)
    assert load_checkpoint(path).step == 5
    assert os.listdir(tmp_path) == ["c.npz"]


def test_corrupted_or_foreign_files_raise(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, np.zeros(2), (np.ones(2),), step=1)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(path)
    other = tmp_path / "o.npz"
    np.savez(other, x=np.zeros(2))
    with pytest.raises(ValueError, match="not a refvpng checkpoint"):
        load_checkpoint(other)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.npz")
