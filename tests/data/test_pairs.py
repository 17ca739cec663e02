"""Training sets: pair and triplet tables, scored pairs, graded lists and their errors."""
import json
import re

import pytest

from embedbench.config import DataConfig
from embedbench.data.pairs import graded_lists, scored_pairs, text_pairs
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
    for record, message in (({"query": "q", "docs": "abc", "grades": [1, 0, 0]}, "docs and grades are lists"),
                            ({"query": "q", "docs": ["a", None, "c"], "grades": [1, 0, 0]}, "are not all strings"),
                            ({"query": "q", "docs": ["a", "b", "c"], "grades": [1, "x", 0]}, "not all finite"),
                            ({"query": None, "docs": ["a", "b", "c"], "grades": [1, 0, 0]}, "'query' is null")):
        path.write_text(json.dumps(record) + "\n")
        with pytest.raises(EmbedbenchError, match=rf"lists.jsonl:1: .*{message}"):
            graded_lists(DataConfig(name="lists", format="graded_lists", train=str(path), list_size=3), None)


def test_pair_and_triplet_tables_read_their_columns_in_the_losss_order(tmp_path):
    path = tmp_path / "triplets.csv"
    path.write_text('neg,query,pos\n"a cat, sleeping",where is the cat,the cat sleeps\nrain,is it sunny,sun\n')
    ds = text_pairs(DataConfig(name="t", format="pairs", train=str(path), columns=["query", "pos", "neg"]), None)
    assert ds.column_names == ["anchor", "positive", "negative_1"]
    assert ds[0] == {"anchor": "where is the cat", "positive": "the cat sleeps", "negative_1": "a cat, sleeping"}
    pairs = text_pairs(DataConfig(name="t", format="pairs", train=str(path), columns=[1, 2]), 1)  # no header
    assert pairs.column_names == ["anchor", "positive"] and pairs["anchor"] == ["query"]
    with pytest.raises(EmbedbenchError, match=r"data.columns=\['query'\]: format=pairs reads an anchor and a"):
        text_pairs(DataConfig(name="t", format="pairs", train=str(path), columns=["query"]), None)
    with pytest.raises(EmbedbenchError, match=r"triplets.csv:1: .*'answer'"):
        text_pairs(DataConfig(name="t", format="pairs", train=str(path), columns=["query", "answer"]), None)
    with pytest.raises(EmbedbenchError, match="data.train: format=pairs reads its examples from a file"):
        text_pairs(DataConfig(name="t", format="pairs", columns=["query", "pos"]), None)


def test_scored_pairs_of_any_table_by_their_columns(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"a": "one", "b": "uno", "sim": 1.0}\n{"a": "two", "b": "tres", "sim": 0.2}\n')
    ds = scored_pairs(DataConfig(name="s", format="scored_pairs", train=str(path), columns=["a", "b", "sim"],
                                 max_score=1.0), None)
    assert ds["sentence1"] == ["one", "two"] and ds["label"] == [1.0, 0.2]
    sick = tmp_path / "sick.csv"  # SICK-R's relatedness runs from 1 to 5
    sick.write_text("a,b,relatedness\none,uno,5\ntwo,dos,4\nthree,tres,1\n")
    sick_cfg = DataConfig(name="s", format="scored_pairs", train=str(sick), columns=["a", "b", "relatedness"],
                          min_score=1, max_score=5)
    assert scored_pairs(sick_cfg, None)["label"] == [1.0, 0.75, 0.0]
    sick.write_text("a,b,relatedness\none,uno,5\ntwo,dos,0.5\n")
    with pytest.raises(EmbedbenchError, match=r"sick.csv:3: score column 'relatedness': 0.5 is outside \[1, 5\]"):
        scored_pairs(sick_cfg, None)
    with pytest.raises(EmbedbenchError, match="data.min_score=5, data.max_score=5: .* needs min_score below"):
        scored_pairs(DataConfig(name="s", format="scored_pairs", train=str(sick), min_score=5), None)


def test_flagembedding_tevatron_and_mteb_groups_give_a_query_a_positive_and_drawn_negatives(tmp_path):
    from embedbench.data.pairs import query_groups

    flag, tevatron = tmp_path / "bge.jsonl", tmp_path / "tevatron.jsonl"
    rows = [("what is a cell", ["Cells are the unit of life."], ["Stocks fell.", "Rain is wet.", "Cats purr."]),
            ("who wrote hamlet", ["Hamlet: Shakespeare wrote it."], ["Paris is in France."])]
    flag.write_text("".join(json.dumps({"query": q, "pos": pos, "neg": neg}) + "\n" for q, pos, neg in rows))

    def passages(texts):  # the same texts as a title and a body
        return [{"docid": str(i), "title": t.split(":")[0] if ":" in t else "", "text": t.split(":")[-1]}
                for i, t in enumerate(texts)]
    tevatron.write_text("".join(json.dumps({"query_id": str(i), "query": q, "positive_passages": passages(pos),
                                            "negative_passages": passages(neg)}) + "\n"
                                for i, (q, pos, neg) in enumerate(rows)))
    config = {"name": "g", "format": "groups", "list_size": 3}
    ours = query_groups(DataConfig(**config, train=str(flag)), None, seed=1)
    assert ours.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    assert ours["anchor"] == ["what is a cell", "who wrote hamlet"]
    assert ours["positive"] == ["Cells are the unit of life.", "Hamlet: Shakespeare wrote it."]
    drawn = {ours["negative_1"][0], ours["negative_2"][0]}
    assert len(drawn) == 2 and drawn < set(rows[0][2])  # two distinct of the three
    assert ours["negative_1"][1] == ours["negative_2"][1] == "Paris is in France."  # one negative, repeated
    assert query_groups(DataConfig(**config, train=str(tevatron)), None, seed=1)["positive"][1] == \
        "Hamlet  Shakespeare wrote it."  # title and text joined as a BEIR document's
    assert query_groups(DataConfig(**config, train=str(flag)), None, seed=1).to_dict() == ours.to_dict()  # seeded
    mteb = tmp_path / "mteb.jsonl"  # mteb's reranking samples hold the same groups under other keys
    mteb.write_text("".join(json.dumps({"query": q, "positive": pos, "negative": neg}) + "\n" for q, pos, neg in rows))
    assert query_groups(DataConfig(**config, train=str(mteb)), None, seed=1).to_dict() == ours.to_dict()
    pairs_only = query_groups(DataConfig(name="g", format="groups", list_size=1, train=str(flag)), None, seed=1)
    assert pairs_only.column_names == ["anchor", "positive"]
    with pytest.raises(EmbedbenchError, match="data.list_size=0: texts per query"):
        query_groups(DataConfig(name="g", format="groups", list_size=0, train=str(flag)), None, seed=1)
    for record, message in (({"query": "q", "pos": [], "neg": ["n"]}, "no positive"),
                            ({"query": "q", "pos": ["p"], "neg": []}, r"no negatives; data.list_size=3 takes 2"),
                            ({"query": "q", "pos": "p", "neg": ["n"]}, "pos and neg are lists of strings"),
                            ({"query": "q", "positives": ["p"]}, "expected pos and neg"),
                            ({"query": "q", "positive_passages": [{"title": "t"}]}, "field 'text' is null")):
        flag.write_text(json.dumps(record) + "\n")
        with pytest.raises(EmbedbenchError, match=rf"bge.jsonl:1: {message}"):
            query_groups(DataConfig(**config, train=str(flag)), None, seed=1)


def test_a_hugging_face_dataset_trains_as_the_file_it_equals(tmp_path):
    """sentence-transformers' triplet sets and Tevatron's groups as ``save_to_disk`` keeps them (the Hub's
    load_dataset gives the same tables online)."""
    from datasets import Dataset, DatasetDict

    from embedbench.data.pairs import query_groups

    triplets = {"anchor": ["where is the cat", "is it sunny"], "positive": ["the cat sleeps", "sun"],
                "negative": ["a cat, sleeping", "rain"]}
    table = tmp_path / "triplets.csv"
    table.write_text("anchor,positive,negative\n" + "".join(
        f'"{a}","{p}","{n}"\n' for a, p, n in zip(*triplets.values())))
    DatasetDict({"train": Dataset.from_dict(triplets)}).save_to_disk(tmp_path / "all-nli" / "triplet")
    hub = {"name": "t", "format": "pairs", "hub": str(tmp_path / "all-nli"), "hub_config": "triplet"}
    columns = ["anchor", "positive", "negative"]
    from_file = text_pairs(DataConfig(name="t", format="pairs", train=str(table), columns=columns), None)
    assert text_pairs(DataConfig(**hub, columns=columns), None).to_dict() == from_file.to_dict()

    groups = [{"query_id": "1", "query": "what is a cell", "positive_passages": [{"title": "", "text": "Cells."}],
               "negative_passages": [{"title": "S", "text": "Stocks fell."}, {"title": "", "text": "Rain."}]}]
    (tmp_path / "groups.jsonl").write_text("".join(json.dumps(g) + "\n" for g in groups))
    Dataset.from_list(groups).save_to_disk(tmp_path / "tevatron")  # one table, no config or split
    config = {"name": "g", "format": "groups", "list_size": 2}
    assert query_groups(DataConfig(**config, hub=str(tmp_path / "tevatron")), None, seed=1).to_dict() == \
        query_groups(DataConfig(**config, train=str(tmp_path / "groups.jsonl")), None, seed=1).to_dict()

    where = re.escape(f"data.hub={tmp_path / 'all-nli'}[triplet/train]")
    with pytest.raises(EmbedbenchError, match=rf"^{where}: no column 'neg' \(columns: anchor, positive, negative\)$"):
        text_pairs(DataConfig(**hub, columns=["anchor", "positive", "neg"]), None)
    with pytest.raises(EmbedbenchError, match=r"config 'triplet' has no split 'dev' \(splits: train\)"):
        text_pairs(DataConfig(**hub, columns=columns, train_split="dev"), None)
    with pytest.raises(EmbedbenchError, match=rf"^{where}: column 0: columns are named here, not numbered$"):
        text_pairs(DataConfig(**hub, columns=[0, 1]), None)
    with pytest.raises(EmbedbenchError, match=r"data.train=.*, data.hub=.*: give one source of examples"):
        text_pairs(DataConfig(**hub, columns=columns, train=str(table)), None)
