"""Self-supervised pairs from unlabeled text: Mirror-BERT span masking and Contriever cropping."""
import random

from embedbench.config import DataConfig
from embedbench.data.unlabeled import masked_span, random_crop, self_supervised_pairs


def test_mirror_masks_one_span_and_cropping_takes_contiguous_crops():
    text = " ".join(f"w{i}" for i in range(40))
    rng = random.Random(0)
    masked = masked_span(text, rng, 5, "[MASK]").split()
    assert len(masked) == 40 and masked.count("[MASK]") == 5
    start = masked.index("[MASK]")
    assert masked[start:start + 5] == ["[MASK]"] * 5 and masked[:start] == text.split()[:start]
    for _ in range(20):
        crop = random_crop(text, rng, 0.1, 0.5)
        words = crop.split()
        assert 4 <= len(words) <= 20 and crop in text  # a contiguous run of 10-50 % of the words


def test_self_supervised_pairs_from_a_text_file(tmp_path):
    texts = [f"sentence number {i} with several more words here" for i in range(7)]
    (tmp_path / "texts.txt").write_text("\n".join(texts))
    data = DataConfig(name="mine", format="cropping", text_file=str(tmp_path / "texts.txt"), min_ratio=0.3,
                      max_ratio=0.6)
    pairs = self_supervised_pairs(data, 5, seed=0)
    assert pairs.column_names == ["anchor", "positive"] and len(pairs) == 5
    assert all(a in f"sentence number {i} with several more words here" for i, a in enumerate(pairs["anchor"]))
