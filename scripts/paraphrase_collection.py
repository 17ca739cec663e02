#!/usr/bin/env python
"""A paraphrase-retrieval collection in BEIR format, built from STS Benchmark files: each pair of the
query file scored at least --min-score asks its first sentence as a query, and its second sentence is the one
relevant document; the corpus is every distinct sentence of all the given files except the queries' own
texts, so the other sentences of the benchmark are the distractors.

    python scripts/paraphrase_collection.py --out outputs/stsb-paraphrase \\
        --queries $EMBEDBENCH_DATA/sts/stsbenchmark/sts-test.csv \\
        --corpus $EMBEDBENCH_DATA/sts/stsbenchmark/sts-train.csv $EMBEDBENCH_DATA/sts/stsbenchmark/sts-dev.csv
    embedbench reduce data.root=outputs/stsb-paraphrase

Used to show `embedbench reduce` on a second collection, one with short documents and one judgement each.
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from embedbench.data.beir import BeirDataset, write_beir
from embedbench.data.tables import read_sts_benchmark


def text_id(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def paraphrase_collection(query_file: Path, other_files: list[Path], min_score: float) -> BeirDataset:
    asked = read_sts_benchmark(query_file)
    queries, qrels = {}, {}
    for first, second, score in zip(asked.sentences1, asked.sentences2, asked.scores):
        if score >= min_score and first != second and text_id(first) not in queries:
            queries[text_id(first)] = first
            qrels[text_id(first)] = {text_id(second): 1}
    texts = {text for pairs in map(read_sts_benchmark, [query_file, *other_files])
             for text in (*pairs.sentences1, *pairs.sentences2)}
    corpus = {text_id(text): {"title": "", "text": text} for text in sorted(texts) if text_id(text) not in queries}
    # a relevant sentence that is itself asked elsewhere is no longer a document: its query is dropped
    qrels = {qid: docs for qid, docs in qrels.items() if set(docs) <= set(corpus)}
    return BeirDataset("stsb-paraphrase", corpus, {qid: queries[qid] for qid in qrels}, qrels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=Path, required=True, help="STS Benchmark file whose pairs ask")
    parser.add_argument("--corpus", type=Path, nargs="*", default=[], help="more STS files: distractors")
    parser.add_argument("--min-score", type=float, default=4.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    ds = paraphrase_collection(args.queries, args.corpus, args.min_score)
    write_beir(args.out, ds)
    print(f"{args.out}: {len(ds.queries):,} queries, {len(ds.corpus):,} documents")


if __name__ == "__main__":
    main()
