"""Training sets: graded lists and their errors."""
import json

import pytest

from embedbench.config import DataConfig
from embedbench.data.pairs import graded_lists
from embedbench.errors import EmbedbenchError


def test_graded_lists_reader(tmp_path):
    path = tmp_path / "lists.jsonl"
    path.write_text(json.dumps({"query": "q1", "docs": ["a", "b", "c"], "grades": [2, 1, 0]}) + "\n"
                    + json.dumps({"query": "q2", "docs": ["d", "e", "f", "g"], "grades": [0, 3, 1, 0]}) + "\n")
    ds = graded_lists(DataConfig(name="lists", format="graded_lists", train=str(path), list_size=3), None)
    assert ds.column_names == ["anchor", "candidate_1", "candidate_2", "candidate_3", "label"]
    assert ds["label"] == [[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]]
    with pytest.raises(EmbedbenchError, match=r"lists.jsonl:1: 3 docs; data.list_size=4"):
        graded_lists(DataConfig(name="lists", format="graded_lists", train=str(path), list_size=4), None)
