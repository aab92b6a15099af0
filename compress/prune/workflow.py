"""Prune, repair and recover in one call, with the figures the manifest records: what ``--prune`` runs.

    loaded2, record = prune_and_recover(loaded, StructuredConfig(fraction=0.4), texts,
                                        DistillConfig(steps=300, checkpoint="prune.ckpt"))

``compress run --prune`` calls it through :func:`compress.prune.options.prune_for_run` and exports
``loaded2``, with ``record`` as the manifest's ``pruning``.

An interrupted run given the same checkpoint resumes: the pruned structure and weights come from the
checkpoint (no new scoring), and distillation continues at the step it reached.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compress.prune import PruneResult, method_for, prune_model
from compress.prune.batches import BatchStream
from compress.prune.distill import DistillConfig, DistillReport, distill, load_checkpoint, save_checkpoint
from compress.prune.model_parts import encoder_params, nonzero_encoder_params
from compress.prune.plan import PrunePlan, apply_plan, describe, plan_shape

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from compress.sources import LoadedModel

Progress = Callable[[str], None]


def texts_fingerprint(texts: list[str]) -> str:
    """Short hash of the training texts, so a checkpoint is not resumed on other data."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def recovery_texts(tokenizer: Any, exclude: Sequence[str] = (), n: int = 3000, seed: int = 1) -> list[str]:
    """Default in-domain texts to score and distil on when the user gives none, minus ``exclude``
    (pass the validation texts so the before/after figures stay held out).

    Protein vocabularies get every anarci germline V gene (spaced), others up to ``n`` BBC News sentences.
    """
    from compress.data import antibody_germlines, bbc_sentences, is_residue_vocab, space_residues

    skip = set(exclude)
    if is_residue_vocab(tokenizer):
        texts = [space_residues(a.sequence) for a in antibody_germlines()]
    else:
        texts = bbc_sentences(n, seed)
    return [t for t in texts if t not in skip]


def evaluate(teacher: PreTrainedModel, student: PreTrainedModel, loaded: LoadedModel, texts: list[str],
             max_length: int = 256) -> dict[str, float]:
    """The pipeline's validation figures of ``student`` against ``teacher`` (both PyTorch fp32) on ``texts``.

    Returns:
        :func:`compress.validate.compare`'s figures, e.g. top1_agreement and top1_accuracy for fill-mask.
    """
    from compress.export import TaskGraph
    from compress.runtime import TorchRunner
    from compress.validate import build_validation_set, collect, compare

    tok = loaded.tokenizer
    vs = build_validation_set(loaded.task, tok, texts, max_length=max_length)
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if "token_type_ids" in tok.model_input_names else [])

    def runner(model: PreTrainedModel) -> TorchRunner:
        return TorchRunner(TaskGraph(model, loaded.task, mask_token_id=tok.mask_token_id, pooling=loaded.pooling),
                           names)

    return compare(vs, collect(runner(teacher), vs, "original"), collect(runner(student), vs, "pruned"))


def _config_dict(config: Any) -> Any:
    return asdict(config) if is_dataclass(config) and not isinstance(config, type) else config


def _rebuild(loaded: LoadedModel, state: dict[str, Any], prune_config: Any, texts: list[str],
             progress: Progress | None) -> PruneResult:
    """The pruned model of a checkpoint: its plan applied to a copy of the original, then its weights."""
    method = method_for(prune_config)
    if state.get("plan") is not None:
        model = apply_plan(copy.deepcopy(loaded.model), PrunePlan.from_dict(state["plan"]))
        plan = PrunePlan.from_dict(state["plan"])
        before = encoder_params(loaded.model)
        result = PruneResult(model, method.name, prune_config, plan, before, encoder_params(model),
                             describe(plan, plan_shape(loaded.model)), dict(state.get("details", {})))
    else:  # unstructured: cheap to redo, and it gives back the step hook
        result = prune_model(loaded, prune_config, texts, progress)
    result.model.load_state_dict(state["student"])
    return result


def _layer_map(plan: PrunePlan | None) -> list[int] | None:
    return plan.layers if plan is not None else None


def prune_and_recover(loaded: LoadedModel, prune_config: Any, texts: list[str],
                      recover: DistillConfig | None = None, *, validate_texts: list[str] | None = None,
                      data_name: str = "", progress: Progress | None = None,
                      seed: int = 0) -> tuple[LoadedModel, dict[str, Any]]:
    """Prune ``loaded.model`` (a copy), distil it from the original, and measure both steps.

    Args:
        loaded: the original model, not modified.
        prune_config: a registered method's config, e.g. ``StructuredConfig(fraction=0.4)``.
        texts: unlabelled in-domain texts for scoring, refitting and distillation (keep test data out).
        recover: distillation settings; None or ``steps=0``: no recovery.
        validate_texts: texts for the before/after figures (None: not measured).
        data_name: how the manifest names ``texts`` (e.g. the ``--recover-data`` file).
        progress: called with progress lines.
        seed: of the sample batches.

    Returns:
        A copy of ``loaded`` holding the pruned model (and a note saying so), and the ``pruning``
        record for the manifest: method, config, parameters before and after, per-layer heads and
        neurons kept, the plan, recovery figures, and validation figures after pruning and after recovery.

    Raises:
        ValueError: bad config, unknown family, or a checkpoint from another recipe.
    """
    recover = recover or DistillConfig(steps=0)
    say = progress or (lambda _m: None)
    identity = {"prune": _config_dict(prune_config), "method": method_for(prune_config).name,
                "data": texts_fingerprint(texts), "seed": seed}
    state = load_checkpoint(recover.checkpoint) if recover.checkpoint else None
    if state is not None and state.get("identity", {}).get("prune") == identity["prune"] \
            and state["identity"].get("data") == identity["data"]:
        say(f"rebuilding the pruned model from checkpoint {recover.checkpoint} (step {state['step']})")
        result = _rebuild(loaded, state, prune_config, texts, progress)
    else:
        if state is not None:
            raise ValueError(f"checkpoint {recover.checkpoint} was made for another pruning recipe or data; "
                             "delete it or give another checkpoint path")
        result = prune_model(loaded, prune_config, texts, progress, seed=seed)
        say(f"pruned {result.removed_fraction:.1%} of encoder parameters ({result.method})")
    record = result.record()
    pooling = loaded.pooling
    if validate_texts:
        record["validation"] = {"pruned": evaluate(loaded.model, result.model, loaded, validate_texts)}
    report = DistillReport(steps=0)
    if recover.steps:
        stream = BatchStream(loaded.task, loaded.tokenizer, texts, recover.batch_size, recover.max_length,
                             recover.mask_rate, seed=seed + 1, group_by_length=recover.group_by_length)
        extra = {"plan": result.plan.to_dict() if result.plan is not None else None, "details": result.details}
        if recover.checkpoint and state is None:
            Path(recover.checkpoint).parent.mkdir(parents=True, exist_ok=True)
            save_checkpoint(Path(recover.checkpoint), {"step": 0, "student": result.model.state_dict(), "history": [],
                                             "first_loss": None, "identity": identity, **extra})
        report = distill(result.model, loaded.model, loaded.task, stream, recover,
                         layer_map=_layer_map(result.plan), pooling=pooling,
                         identity=identity, on_step=result.on_step, checkpoint_extra=extra, progress=progress)
    if result.on_step is not None:
        result.on_step(max(recover.steps, 1), max(recover.steps, 1))  # the final sparsity, with or without recovery
    if result.plan is None:  # unstructured: count what is left now
        result.params_after = nonzero_encoder_params(result.model)
        record.update(encoder_params_after=result.params_after, removed_fraction=round(result.removed_fraction, 4))
    record["recovery"] = {**report.record(), "data": data_name or f"{len(texts)} texts",
                          "texts": len(texts), "config": _config_dict(recover)}
    if validate_texts and recover.steps:
        record["validation"]["recovered"] = evaluate(loaded.model, result.model, loaded, validate_texts)
    note = (f"pruned ({result.method}): {result.removed_fraction:.1%} of encoder parameters removed"
            + (f", recovered by distillation for {recover.steps} steps" if recover.steps else ", not recovered"))
    if result.plan is None:
        note += "; unstructured zeros do not make dense ONNX Runtime inference faster"
    pruned = dataclasses.replace(loaded, model=result.model.eval(), notes=[*loaded.notes, note])
    return pruned, record
