"""The d-Simplex fixed classifier: its geometry, its loss against a direct computation, a train run with it."""
import json

import pytest
import torch
import torch.nn.functional as F

from embedbench.errors import EmbedbenchError
from embedbench.losses.dsimplex import DSimplex, simplex
from tests.helpers import run_main


def test_simplex_vertices_are_unit_and_equiangular_in_the_first_k_minus_1_dims():
    vertices = simplex(5, 8)
    assert vertices.shape == (5, 8) and torch.all(vertices[:, 4:] == 0)
    assert torch.allclose(vertices.norm(dim=1), torch.ones(5), atol=1e-6)
    cosines = vertices @ vertices.T
    assert torch.allclose(cosines[~torch.eye(5, dtype=torch.bool)], torch.full((20,), -0.25), atol=1e-6)


def test_dsimplex_loss_is_cross_entropy_over_cosines_to_fixed_vertices():
    g = torch.Generator().manual_seed(0)
    texts = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    loss = DSimplex(5, temperature=0.1)([texts], labels)
    assert loss.item() == pytest.approx(F.cross_entropy(texts @ simplex(5, 8).T / 0.1, labels).item(), rel=1e-6)


def test_a_view_too_narrow_for_the_simplex_stops_with_one_line():
    with pytest.raises(EmbedbenchError, match="loss=dsimplex: 40 classes need at least 39 dims, the view has 32"):
        simplex(40, 32)


def test_training_on_classes_with_the_fixed_simplex(tmp_path, tiny_model_path):
    table = tmp_path / "intents.csv"
    rows = [f"{text},{label}" for label, words in enumerate(["card lost", "refund late", "pin blocked", "fee wrong"])
            for text in (f"my {words}", f"the {words} again", f"why is my {words}", f"help {words} now")]
    table.write_text("text,category\n" + "\n".join(rows) + "\n")
    common = [f"model.name_or_path={tiny_model_path}", "loss=dsimplex", "data=banking77", f"data.train={table}",
              "data.format=classes", "trainer=debug", "trainer.batch_size=4", "eval=sts", "eval.max_pairs=20"]
    run_main("train", *common, "hydra.run.dir=run", cwd=tmp_path)
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    assert result["config"]["loss"]["name"] == "dsimplex" and "stsb/spearman" in result["metrics"]
    proc = run_main("train", *common, "model=mrl", "model.views.dims=[32,2]", "model.views.weights=[1,1]",
                    cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "loss=dsimplex: 4 classes need at least 3 dims, the view has 2" in proc.stderr
