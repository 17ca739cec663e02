"""Every config group composes; bad choices are refused with the valid ones listed."""
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException

from embedbench.cli import CONF_DIR

GROUPS = {g.name: sorted(p.stem for p in g.glob("*.yaml")) for g in CONF_DIR.iterdir()
          if g.is_dir() and g.name != "experiment"}
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml") if not p.stem.startswith("recipe_"))
RECIPES = {"recipe_infonce": ("infonce", None, None, None), "recipe_mined": ("infonce", "mined", None, None),
           "recipe_gradcache": ("cached_infonce", None, None, None),
           "recipe_margin_mse": ("margin_mse", "mined", "bm25", None),
           "recipe_tas_b": ("margin_mse", "mined", "bm25", "tas_balanced"),
           "recipe_kl_distill": ("kl_distill", "mined", "bm25", None),
           "recipe_wasserstein": ("wasserstein", "mined", "grades", None),
           "recipe_mirror": ("infonce", None, None, None), "recipe_cropping": ("infonce", None, None, None)}


def compose_cfg(name, overrides=()):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(name, overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize("group,option", [(g, o) for g, options in GROUPS.items() for o in options])
def test_every_option_composes_into_train(group, option):
    cfg = compose_cfg("train", [f"{group}={option}"])
    assert cfg[group] is not None
    assert cfg.task == "train"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_pins_its_recipe(experiment):
    cfg = compose_cfg("train", [f"experiment={experiment}"])
    model, task = experiment.split("_")
    assert cfg.model.name == model
    recipe = {"retrieval": ("scifact", "infonce", {"beir"}), "sts": ("stsb", "cosent", {"stsb"})}[task]
    assert (cfg.data.name, cfg.loss.name, set(cfg.eval.tasks)) == recipe
    assert list(cfg.eval.grid.dims) == [384, 256, 192, 128, 64, 32]


def test_every_retrieval_recipe_composes_at_the_same_budget():
    assert set(RECIPES) == {p.stem for p in (CONF_DIR / "experiment").glob("recipe_*.yaml")}
    for name, (loss, negatives, teacher, sampler) in RECIPES.items():
        cfg = compose_cfg("train", [f"experiment={name}"])
        assert (cfg.loss.name, cfg.data.negatives, cfg.data.teacher.kind, cfg.data.sampler) == (
            loss, negatives, teacher, sampler), name
        assert cfg.model.name == "mrl" and list(cfg.eval.tasks) == ["beir"] and cfg.data.name == "scifact"
        # the same number of training examples: GradCache takes 4x batches, 1/4 the steps
        assert cfg.trainer.max_steps * cfg.trainer.batch_size == 640, name
    assert compose_cfg("train", ["experiment=recipe_mirror"]).data.format == "mirror"
    assert compose_cfg("train", ["experiment=recipe_cropping"]).data.format == "cropping"


def test_eval_has_no_training_parts():
    cfg = compose_cfg("eval")
    assert "loss" not in cfg and "trainer" not in cfg
    assert set(cfg.eval.tasks) == {"beir", "stsb"}


def test_mrl_declares_nested_dims_with_weights():
    cfg = compose_cfg("train", ["model=mrl"])
    assert list(cfg.model.views.dims) == [384, 256, 128, 64, 32]
    assert len(cfg.model.views.weights) == 5
    assert cfg.model.name_or_path == "default"  # inherited from minilm


def test_debug_trainer_shrinks_training_and_eval():
    cfg = compose_cfg("train", ["trainer=debug"])
    assert cfg.trainer.max_steps > 0 and cfg.trainer.max_examples
    assert cfg.eval.max_queries and cfg.eval.max_docs
    assert cfg.trainer.lr == 2e-5  # the rest comes from trainer/default


def test_data_root_points_training_and_evaluation_at_one_folder():
    cfg = compose_cfg("train", ["data.root=/some/folder"])
    assert cfg.data.root == "/some/folder"
    assert cfg.eval.tasks.beir.name == "scifact"


def test_unknown_choice_lists_valid_options():
    with pytest.raises(MissingConfigException) as err:
        compose_cfg("train", ["model=nope"])
    assert "mrl" in str(err.value) and "minilm" in str(err.value)


def test_mteb_lite_loads_five_task_types_with_their_main_scores():
    from embedbench.tasks import load_tasks

    cfg = compose_cfg("eval", ["eval=mteb_lite"])
    assert cfg.eval.suite == "mteb_lite"
    assert {(t.name, type(t).__name__, t.main_metric) for t in load_tasks(cfg)} == {
        ("scifact", "RetrievalTask", "ndcg_at_10"), ("stsb", "STSTask", "spearman"),
        ("banking77", "ClassificationTask", "accuracy"), ("stackoverflow", "ClusteringTask", "v_measure"),
        ("mrpc", "PairClassificationTask", "ap")}


def test_reranking_without_a_candidates_file_names_it():
    from embedbench.errors import EmbedbenchError
    from embedbench.tasks import load_tasks

    with pytest.raises(EmbedbenchError, match=r"scifact/candidates/test\.tsv: file not found"):
        load_tasks(compose_cfg("eval", ["eval=rerank"]))


def test_slurm_launcher_composes_for_submitit():
    cfg = compose_cfg("train", ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.array_parallelism) == ("gpu", 1, 16)
