"""Every shipped option composes into typed settings; bad settings stop at composition with one line naming
the key and what it accepts; defaults live in the schemas only."""
import re

import pytest
from omegaconf import OmegaConf

from embedbench import config
from embedbench.cli import CONF_DIR, compose_config
from embedbench.composition import load
from embedbench.errors import EmbedbenchError
from tests.helpers import REPO

GROUPS = {g.name: sorted(p.stem for p in g.glob("*.yaml")) for g in CONF_DIR.iterdir()
          if g.is_dir() and g.name not in ("experiment", "hydra", "stage")}  # stage: a recipe's sweep
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*_retrieval.yaml")) + sorted(  # the 2-D papers'
    p.stem for p in (CONF_DIR / "experiment").glob("*_sts.yaml"))
RECIPES = {"recipe_infonce": ("infonce", None, None, None), "recipe_mined": ("infonce", "mined", None, None),
           "recipe_gradcache": ("cached_infonce", None, None, None),
           "recipe_margin_mse": ("margin_mse", "mined", "bm25", None),
           "recipe_tas_b": ("margin_mse", "mined", "bm25", "tas_balanced"),
           "recipe_kl_distill": ("kl_distill", "mined", "bm25", None),
           "recipe_wasserstein": ("wasserstein", "mined", "grades", None),
           "recipe_mirror": ("infonce", None, None, None), "recipe_cropping": ("infonce", None, None, None)}


def typed(name, overrides=()):
    return load(compose_config(name, list(overrides)))


NEEDS = {("loss", "smae"): ["data.format=text"]}  # an option read only with another setting


@pytest.mark.parametrize("group,option", [(g, o) for g, options in GROUPS.items() for o in options])
def test_every_option_composes_into_typed_settings(group, option):
    cfg = typed("train", [f"{group}={option}", *NEEDS.get((group, option), [])])
    assert isinstance(cfg, config.TrainRunConfig) and cfg.job == "train"
    assert getattr(cfg, group) is not None


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_pins_its_recipe(experiment):
    cfg = typed("train", [f"experiment={experiment}"])
    model, task = experiment.split("_")
    assert cfg.model.name == model
    recipe = {"retrieval": ("scifact", "infonce", {"beir"}), "sts": ("stsb", "cosent", {"stsb"})}[task]
    assert (cfg.data.name, cfg.loss.name, set(cfg.eval.tasks)) == recipe
    assert list(cfg.eval.grid["dims"]) == ["full", 256, 192, 128, 64, 32]


def test_the_smae_experiment_pretrains_the_starbucks_diagonal_on_unlabeled_text():
    cfg = typed("train", ["experiment=starbucks_smae"])
    assert (cfg.model.name, cfg.loss.name, cfg.data.format, cfg.data.name) == ("starbucks", "smae", "text", "scifact")
    assert (cfg.loss.mlm_probability, cfg.loss.decoder_mlm_probability, cfg.trainer.lr) == (0.2, 0.4, 1e-4)


def test_every_retrieval_recipe_composes_at_the_same_budget():
    assert set(RECIPES) == {p.stem for p in (CONF_DIR / "experiment").glob("recipe_*.yaml")}
    for name, (loss, negatives, teacher, sampler) in RECIPES.items():
        cfg = typed("train", [f"experiment={name}"])
        assert (cfg.loss.name, cfg.data.negatives, cfg.data.teacher.kind, cfg.data.sampler) == (
            loss, negatives, teacher, sampler), name
        assert cfg.model.name == "mrl" and list(cfg.eval.tasks) == ["beir"] and cfg.data.name == "scifact"
        # the same number of training examples: GradCache takes 4x batches, 1/4 the steps
        assert cfg.trainer.max_steps * cfg.trainer.batch_size == 640, name
    assert typed("train", ["experiment=recipe_mirror"]).data.format == "mirror"
    assert typed("train", ["experiment=recipe_cropping"]).data.format == "cropping"


def test_eval_has_no_training_parts_and_tasks_are_typed_with_their_defaults():
    cfg = typed("eval")
    assert isinstance(cfg, config.RunConfig) and not isinstance(cfg, config.TrainRunConfig)
    assert set(cfg.eval.tasks) == {"beir", "stsb"}
    beir = cfg.eval.tasks["beir"]
    assert isinstance(beir, config.RetrievalTaskConfig) and beir.name == "scifact"
    assert beir.metrics == ["ndcg_at_10", "recall_at_100", "mrr_at_10", "map_at_100"]


def test_mrl_and_2dmse_declare_the_dim_ladder_of_whatever_encoder_they_train():
    for preset in ("mrl", "2dmse"):
        cfg = typed("train", [f"model={preset}"])
        assert cfg.model.views.dims == "ladder" and cfg.model.views.weights is None, preset
        assert cfg.model.name_or_path == "default"


def test_debug_trainer_shrinks_training_and_eval():
    cfg = typed("train", ["trainer=debug"])
    assert cfg.trainer.max_steps > 0 and cfg.trainer.max_examples
    assert cfg.eval.max_queries and cfg.eval.max_docs
    assert cfg.trainer.lr == 2e-5  # the rest from the schema


def test_a_data_folder_names_the_scores_unless_a_name_is_given():
    assert typed("eval", ["data.root=/some/cranfield"]).eval.tasks["beir"].name == "cranfield"
    assert typed("eval", ["data.root=/some/cranfield", "data.name=cran"]).eval.tasks["beir"].name == "cran"
    assert typed("eval").eval.tasks["beir"].name == "scifact"


def test_index_entries_are_typed_and_named_after_their_keys():
    cfg = typed("eval", ["index=zoo"])
    assert cfg.index["hnsw"].name == "hnsw" and cfg.index["hnsw"].params == "efSearch=128"
    assert cfg.index["funnel_d64"].funnel_dim == 64 and cfg.index["binary"].binary


def test_slurm_launcher_composes_for_submitit():
    cfg = compose_config("train", ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"], with_hydra=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.array_parallelism) == ("gpu", 1, 16)


BAD = {  # overrides: the one line they must give
    "mistyped number": (["trainer.epochs=one"], "trainer.epochs=one: expected a number"),
    "misspelt key added with +": (["+trainer.epoch=2"],
                                  "trainer.epoch: unknown key (trainer takes attention_dropout, batch_size,"),
    "unknown key in a task": (["eval=beir", "+eval.tasks.beir.rooot=/tmp"],
                              "eval.tasks.beir.rooot: unknown key (eval.tasks.beir takes data, ignore_identical_ids, "
                              "instruction, metrics, name, root, split, type); did you mean eval.tasks.beir.root?"),
    "unknown choice": (["model=mrll"], "model=mrll: no such option; choose one of 2dmse, bge_small, bm25, e5_base, "
                                       "e5_mistral, gte_qwen2, minilm, mrl, nv_embed, separate, starbucks (did you "
                                       "mean model=mrl?)"),
    "unknown enum value": (["encode.precision=fp16"], "encode.precision=fp16: choose one of auto, fp32, bf16"),
    "auto or a number": (["encode.batch_size=big"], "encode.batch_size=big: expected a positive integer or auto"),
    "auto or a boolean": (["trainer.bf16=maybe"], "trainer.bf16=maybe: expected auto, true or false"),
    "range of a loss setting": (["loss.temperature=0"], "loss.temperature=0.0: must be > 0"),
    "unknown loss key": (["+loss.scale=3"], "loss.scale: unknown key (loss takes compat, gather_across_devices"),
    "device": (["device=gpu"], "device=gpu: expected auto, cpu, mps, cuda or cuda:N"),
    "grid": (["eval.grid=diagonal"], "eval.grid=diagonal: expected full, or {layers: [...], dims: [...]}"),
    "grid dims": (["eval.grid={dims:[64,half]}"], "eval.grid.dims=[64, 'half']: expected null, ladder or a list"),
    "index key": (["index=funnel", "+index.funnel_d64.nprobe=4"], "index.funnel_d64.nprobe: unknown key"),
    "funnel without shortlist": (["index=funnel", "index.funnel_d64.shortlist=0"],
                                 "index.funnel_d64: a funnel needs shortlist > 0"),
    "teacher without negatives": (["data.teacher.kind=bm25"], "data.teacher scores a candidate list: set "
                                                              "data.negatives=mined"),
    "negatives choice": (["data.negatives=random"], "data.negatives=random: choose one of mined"),
    "rank band": (["data.mining.ranks=[5,6]", "data.mining.count=2"], "data.mining: ranks [5, 6] must be"),
    "views layers": (["model.views.layers=last"], "model.views.layers=last: expected null, all or a list"),
    "views dims": (["model.views.dims=half"], "model.views.dims=half: expected null, ladder or a list of dims"),
    "views dim": (["model.views.dims=[64,half]"], "model.views.dims=[64, 'half']: expected null, ladder or a list"),
    "full as a number": (["model.views.dims=[64,384.0]"], "model.views.dims=[64, 384.0]: expected null, ladder"),
    "task type": (["eval.tasks.stsb.type=stss"], "eval.tasks.stsb.type=stss: choose one of classification,"),
    "task without its file": (["+eval.tasks.x.type=sts"], "eval.tasks.x.path: missing (no default; set it)"),
    "clustering without data": (["+eval.tasks.c.type=clustering"], "eval.tasks.c: give path (a labelled table)"),
    "mistyped task number": (["eval=stackoverflow", "eval.tasks.stackoverflow.rounds=ten"],
                             "eval.tasks.stackoverflow.rounds=ten: expected an integer"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_settings_stop_with_one_line_naming_the_key(case, capsys):
    overrides, expected = BAD[case]
    try:
        typed("train", overrides)
    except EmbedbenchError as exc:
        message = str(exc)
    except SystemExit:  # composition errors are printed by the CLI's fail()
        message = capsys.readouterr().err.strip().removeprefix("embedbench: error: ")
    else:
        pytest.fail("accepted")
    assert expected in message and "\n" not in message, message


def _leaves(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@pytest.mark.parametrize("path", sorted(p.relative_to(CONF_DIR).as_posix() for p in CONF_DIR.rglob("*.yaml")
                                        if p.parts[-2] in {"model", "data", "encode", "logger", "loss", "eval",
                                                           "index"} or p.name == "default.yaml"))
def test_no_option_restates_a_schema_default(path):
    """A default lives in the schema only; an option's YAML says what it changes. (Experiments and trainer
    presets pin their budgets on purpose and are not checked.)"""
    group = path.split("/")[0]
    raw = OmegaConf.to_container(OmegaConf.load(CONF_DIR / path))
    schemas = {}  # where in this YAML a schema named in its defaults list applies
    for entry in raw.pop("defaults", []):
        match = re.fullmatch(r"/schema/(task|loss)/(\w+)@(\S+)", str(entry))
        if match:
            kind, name, package = match.groups()
            schema = (config.TASK_SCHEMAS if kind == "task" else config.LOSS_SCHEMAS)[name]
            schemas["" if package == "_here_" else package + "."] = OmegaConf.structured(schema)
    base = OmegaConf.structured(config.TrainRunConfig)
    for key, value in _leaves(raw):
        prefix = next((p for p in schemas if key.startswith(p)), None)
        if prefix is not None:
            default = OmegaConf.select(schemas[prefix], key[len(prefix):], default=None)
        elif group == "index":
            default = OmegaConf.select(OmegaConf.structured(config.IndexConfig), key.split(".", 1)[1], default=None)
        else:
            default = OmegaConf.select(base, f"{group}.{key}", default=None)
        assert value is None or value != default, f"{path}: {key}: {value} is the schema's default"


def test_every_example_of_the_custom_tasks_guide_composes(tmp_path):
    """Each YAML of docs/custom-tasks.md, saved where its first line says, composes and loads typed."""
    guide = (REPO / "docs" / "custom-tasks.md").read_text()
    examples = re.findall(r"```yaml\n# ~/my_conf/(\w+)/(\w+)\.yaml\n(.*?)```", guide, re.S)
    assert len(examples) == 7
    for group, name, text in examples:
        (tmp_path / group).mkdir(exist_ok=True)
        (tmp_path / group / f"{name}.yaml").write_text(text)
    for group, name, _ in examples:
        extra = ["eval=collections"] if group == "data" else []
        typed = load(compose_config("eval", [f"{group}={name}", *extra], str(tmp_path)))
        assert typed.eval.tasks or typed.data.name == name
    forums = load(compose_config("eval", ["data=forums"], str(tmp_path))).data
    assert forums.subsets == ["cooking", "travel"] and forums.md5.startswith("0123")
    sick = load(compose_config("eval", ["eval=sick"], str(tmp_path))).eval.tasks["sick"]
    assert (sick.text1_column, sick.score_column, sick.min_score) == ("sentence_A", "relatedness_score", 1)
