"""The corpus split is a fixed rule of the path: stable, about 30 % validation, disjoint."""

import pytest

from agent.errors import UserError
from evals import corpus


def test_split_is_a_fixed_function_of_the_path(tmp_path):
    names = [f"folder{i % 7}/photo{i}.jpg" for i in range(400)]
    first = [corpus.split_of(n) for n in names]
    assert first == [corpus.split_of(n) for n in names]
    share = first.count("val") / len(first)
    assert 0.22 < share < 0.38


def test_photos_lists_each_split_disjointly(tmp_path):
    for i in range(40):
        (tmp_path / f"d{i % 3}").mkdir(exist_ok=True)
        (tmp_path / f"d{i % 3}" / f"p{i}.jpg").write_bytes(b"x")
    (tmp_path / "d0" / "COPYRIGHT").write_text("licence")
    train, val = corpus.photos("train", tmp_path), corpus.photos("val", tmp_path)
    assert not set(train) & set(val)
    assert sorted(train + val) == corpus.photos("all", tmp_path)
    assert len(train + val) == 40


def test_missing_corpus_names_the_fix(tmp_path):
    with pytest.raises(UserError, match="make photos"):
        corpus.photos("all", tmp_path / "absent")
