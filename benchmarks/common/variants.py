"""The variants a benchmark compares: the PyTorch baseline and compressed artifacts.

``torch-fp32`` is what a user runs without this project: the transformers model in eager mode, full
MLM logits at every position for fill-mask, the encoder plus the model's pooling for embeddings.
Every other variant is an artifact made by ``compress`` with that method, cached under ``--cache``.
``pruned-int8`` first removes PRUNE_FRACTION of the encoder's parameters (heads and neurons, ranked
by importance) and recovers by distillation on texts no accuracy suite scores, then quantizes like int8.

A model is a models.yaml name, ``minilm-topic`` (the topic classifier the benchmarks train,
benchmarks/common/topic.py), or a served task's model (``antiberty-region``, ``minilm-rerank``,
``antiberty-sparse``: benchmarks/common/task_models.py); the trained models' directories are cached under
``--cache`` too. For the latter the PyTorch original is the trained head (AntiBERTy's own mlm and splade heads
for ``antiberty-sparse``), run as `compress run` exports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compress.artifact import load_artifact, read_manifest

if TYPE_CHECKING:
    from compress.recipe import Recipe
    from compress.sources import LoadedModel

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
BASELINE = "torch-fp32"
# variant name -> its recipe (compress.recipe.Recipe, short form)
RECIPES: dict[str, dict[str, object]] = {
    "onnx-fp32": {"method": "fp32"},
    "int8": {"method": "int8", "optimize": "O1"},  # the default recipe
    "int8-O2": {"method": "int8", "optimize": "O2"},  # int8 after attention fusion, for comparison
    "int8-noopt": {"method": "int8"},
    "int4": {"method": "int4"},
    "int8-static": {"method": "int8-static"},
    "pruned-int8": {"method": "int8", "optimize": "O1"},
}
# pruned-int8: fraction of encoder parameters removed, by model family (the pruning targets), and how
# much a head's parameters count in the ranking against neurons'. A lower factor keeps more heads and
# loses less accuracy, a higher one removes more heads, whose fp32 attention-score work int8 does not
# speed up. 40 % of AntiBERTy, after repair: 8.0 -> -5.5 points of masked-residue accuracy, 2.0 -> -2.1;
# after 500 steps and int8: 8.0 -> -1.45 points and 1.6-2.0x int8's speed, 2.0 -> -0.34 and 1.1-1.5x;
# 8.0 is kept for the speed target and distilled longer. 30 % of MiniLM (cosine on Lee-50 after
# repair): 2.0 -> 0.73, 0.5 -> 0.82 (keeps nearly every head; no speed target there).
CALIBRATION_TEXTS = 256  # int8-static: calibration texts, drawn from the recovery texts
PRUNE_FRACTION = {"antiberty": 0.4, "minilm": 0.3}
HEAD_COST_FACTOR = {"antiberty": 8.0, "minilm": 0.5}
# Distillation steps (compress's default is 300), by family, or by model where it differs. The AntiBERTy
# classifiers distil on the logits of 598 germlines, which 500 steps of 16 already pass 13 times:
# species after 500 steps -0.50 points (agreement 94.3 %), after 1,000 -1.67 (93.8 %), after 1,000 on
# the germlines plus 15 mutated copies of each -0.83 (92.2 %).
# MiniLM, distilled on single BBC sentences (Lee-50 cosine of the fp32 student, hidden-state weight):
# 300 steps 0.908 (1), 0.913 (10); 1,000 steps 0.925 after int8 (1); 3,000 steps 0.954 (10; 0.951 after
# int8); 10,000 steps 0.966 after int8 (10; BBC 0.970). A GPU sweep of the same student (fp32, weights
# rounded to fp16; Lee-50 / BBC test cosine) then compared recovery texts at hidden-state weight 10:
# sentences 0.962 / 0.968 at step 4,750 of 10,000; with Lee's background corpus 0.967 / 0.968, plus 15 %
# of tokens masked or replaced 0.961 / 0.966, plus Wikipedia 0.966 / 0.967, at lr 5e-4 0.961 / 0.963;
# passages of 1-4 sentences 0.972 / 0.971. Run to the end: sentences and background 0.974 / 0.975 at
# step 8,000 of 10,000; passages 0.978 / 0.977 at step 8,000 of 10,000, 0.975 / 0.974 after 5,000 of 5,000.
# Passages at 8,000 steps, batched by length, it is: after int8 Lee-50 0.975 / BBC 0.976 in the benchmark
# (68 minutes of distillation on 2 cores, 0.5 s a step).
RECOVER_STEPS = {"antiberty": 1000, "minilm": 8000, "antiberty-species": 500, "antiberty-chain": 500,
                 "minilm-topic": 1000}
RECOVER_HIDDEN_WEIGHT = {"minilm": 10.0}  # by model; the others keep compress's default (1)
# By family, stated rather than left to compress's default (grouped where that pads a quarter less):
# AntiBERTy's figures above were measured on random batches (its germlines, 91-102 residues, would not
# be grouped anyway); MiniLM's passages are grouped (1,093 padded tokens a batch against 1,979).
RECOVER_GROUP_BY_LENGTH = {"antiberty": False, "minilm": True}


def _family(model: str) -> str:
    return "antiberty" if model.startswith("antiberty") else "minilm"


def load_bench_model(model: str, cache: Path, catalog: str = "models.yaml", threads: int = 2) -> LoadedModel:
    """The fp32 original of a benchmark model: a models.yaml entry, or the trained topic classifier."""
    from benchmarks.common import task_models, topic
    from compress.catalog import entry_or_head, load_catalog
    from compress.sources import load_entry, load_model

    if task_models.is_task_model(model):
        return task_models.head_model(model, cache, catalog).loaded
    if model == topic.NAME:
        return load_model(str(topic.build_topic_model(cache / f"{topic.NAME}-model", threads=threads)))
    return load_entry(entry_or_head(load_catalog(catalog), model))  # antiberty-species: one head of antiberty


def _stale(artifact: Path, model: str, variant: str, cache: Path) -> bool:
    """True when a cached artifact was made by another recipe than the variant's today, or (the
    topic classifier) from an older trained model."""
    from benchmarks.common import topic
    from compress.sources import sha256_file

    manifest = read_manifest(artifact)
    recipe = RECIPES[variant]
    if (manifest.method, manifest.recipe.get("optimize")) != (recipe["method"], recipe.get("optimize")):
        return True
    if _method_options_changed(manifest.recipe.get("quantize", {}), recipe):
        return True
    trained = cache / f"{model}-model" / "benchmark.json"  # a task model trained after the artifact was made
    if trained.is_file() and trained.stat().st_mtime > (artifact / "manifest.json").stat().st_mtime:
        return True
    weights = cache / f"{topic.NAME}-model" / "model.safetensors"
    return model == topic.NAME and weights.is_file() and manifest.source.get("sha256") != sha256_file(weights)


def _method_options_changed(stored: dict[str, Any], recipe: dict[str, object]) -> bool:
    """True when the method's options (today's defaults, or the variant's) differ from those stored."""
    from compress.quantize import get_method

    fields = get_method(str(recipe["method"])).config_cls.model_fields
    want = {k: recipe.get(k, f.get_default()) for k, f in fields.items() if not f.is_required()}
    return set(stored) != set(fields) or any(stored.get(k) != v for k, v in want.items())


def build_artifact(model: str, variant: str, cache: Path, catalog: str = "models.yaml",
                   rebuild: bool = False) -> Path:
    """Make (or reuse) the artifact of ``variant`` for benchmark model ``model`` (see load_bench_model)."""
    from benchmarks.common import task_models, topic
    from compress.pipeline import compress_model

    if variant not in RECIPES:
        raise ValueError(f"unknown variant {variant!r}; known: {BASELINE}, {', '.join(RECIPES)}")
    out = cache / f"{model}-{variant}"
    if model == topic.NAME:  # (re)train first, so that a cached artifact is judged against the current model
        topic.build_topic_model(cache / f"{topic.NAME}-model")
    if task_models.is_task_model(model):
        task_models.build_task_model(model, cache, catalog)
    if out.exists() and not rebuild and not _stale(out, model, variant, cache):
        return out
    if task_models.is_task_model(model):
        heads = task_models.head_model(model, cache, catalog)
        compress_model(heads, out, name=model, recipe=variant_recipe(model, variant, heads.loaded, cache),
                       force=True, bench=False)
        return out
    loaded = load_bench_model(model, cache, catalog)
    compress_model(loaded, out, name=model, recipe=variant_recipe(model, variant, loaded, cache), force=True,
                   bench=False)
    return out


def variant_recipe(model: str, variant: str, loaded: LoadedModel, cache: Path) -> Recipe:
    """The recipe of ``variant`` for ``model``: RECIPES, plus the data it needs (written to the cache)."""
    from benchmarks.common import task_models, topic
    from compress.recipe import Recipe

    data: dict[str, object] = dict(RECIPES[variant])
    if task_models.is_task_model(model):
        data["validation"] = task_models.validation_step(model)
    if model == topic.NAME:
        data["validation"] = topic.validation_step(cache / f"{topic.NAME}-model")
    if variant.startswith("pruned"):
        data["prune"] = _prune_step(model, loaded, cache)
    if data["method"] == "int8-static":
        data["calibration"] = str(_recovery_file(model, loaded, cache, limit=CALIBRATION_TEXTS))
    return Recipe.model_validate(data)


def _recovery_file(model: str, loaded: LoadedModel, cache: Path, limit: int | None = None) -> Path:
    """Texts no accuracy suite of ``model`` scores (distillation, calibration), written to the cache."""
    from benchmarks.common.datasets import draw, recovery_texts

    suite = {"antiberty": "masked_residue", "antiberty-species": "species", "antiberty-chain": "chain"}.get(model)
    texts = recovery_texts(loaded.tokenizer, suite)
    name = f"{model}-recovery.txt" if limit is None else f"{model}-calibration.txt"
    data = cache / name
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("\n".join(texts if limit is None else draw(texts, limit, seed=0)) + "\n")
    return data


def _prune_step(model: str, loaded: LoadedModel, cache: Path) -> dict[str, object]:
    """The ``prune:`` step of ``model`` for pruned-int8, distilled on the recovery texts (written to the cache)."""
    data = _recovery_file(model, loaded, cache)
    family = _family(model)
    steps = RECOVER_STEPS.get(model, RECOVER_STEPS[family])
    return {"fraction": PRUNE_FRACTION[family], "recover_data": str(data), "recover_steps": steps,
            "recover_hidden_weight": RECOVER_HIDDEN_WEIGHT.get(model),
            "recover_group_by_length": RECOVER_GROUP_BY_LENGTH.get(family),
            "head_cost_factor": HEAD_COST_FACTOR[family]}


@dataclass
class Original:
    """The torch-fp32 baseline of a benchmark model: its runner, tokenizer, labels and task."""

    runner: Runner
    tokenizer: Any
    labels: list[str] | None
    task: str
    max_length: int


def torch_original(model: str, cache: Path, catalog: str = "models.yaml", threads: int = 2) -> Original:
    """The PyTorch model a benchmark model's variants are made from: the transformers model (torch_baseline), or
    for a served task's model its trained head, as `compress run` exports it."""
    import torch

    from benchmarks.common import task_models

    if task_models.is_task_model(model):
        torch.set_num_threads(threads)
        heads = task_models.head_model(model, cache, catalog)
        graph, tok = heads.graph.eval(), heads.loaded.tokenizer

        def run(enc: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            with torch.inference_mode():
                out = graph(**{k: torch.from_numpy(v) for k, v in enc.items()
                               if k in ("input_ids", "attention_mask", "token_type_ids")})
            return {k: v.numpy() for k, v in out.items()}
        return Original(run, tok, heads.heads[0].labels, task_models.served_task(model),
                        int(min(tok.model_max_length, 512)))
    loaded = load_bench_model(model, cache, catalog, threads)
    return Original(torch_baseline(loaded, threads), loaded.tokenizer, loaded.labels, loaded.task,
                    int(min(loaded.tokenizer.model_max_length, 512)))


def torch_baseline(loaded: LoadedModel, threads: int) -> Runner:
    """The plain transformers model in eager fp32, with the artifacts' output names."""
    import torch

    from compress.export import pool

    torch.set_num_threads(threads)
    model = loaded.model.eval()
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if "token_type_ids" in
                                                loaded.tokenizer.model_input_names else [])

    def run(enc: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = model(**{n: torch.from_numpy(enc[n]) for n in names})
            if loaded.task == "embedding":
                emb = pool(out.last_hidden_state, torch.from_numpy(enc["attention_mask"]), loaded.pooling)
                return {"sentence_embedding": emb.numpy()}
            if loaded.task == "fill-mask":  # full logits at every position, then read the masks
                ids = torch.from_numpy(enc["input_ids"])
                pos = torch.nonzero(ids == loaded.tokenizer.mask_token_id)
                return {"mask_logits": out.logits[pos[:, 0], pos[:, 1]].numpy(), "mask_positions": pos.numpy()}
            return {"logits": out.logits.numpy()}
    return run


def artifact_runner(directory: Path, threads: int) -> Runner:
    return load_artifact(directory).runner(threads=threads)
