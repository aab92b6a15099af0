"""`compress adapt`: load a model, continue its masked-LM training on new-domain text with replay,
score both held-out sets before and after, and write a model directory with its record and report."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compress import CompressError
from compress.adapt.data import AdaptTexts, MixedBatches, load_texts, sha256_text
from compress.adapt.evaluate import masked_scores, torch_predict
from compress.adapt.options import AdaptOptions
from compress.adapt.report import ADAPTATION, write_report
from compress.adapt.train import TrainLog, make_collator, train
from compress.data import is_residue_vocab
from compress.staging import check_writable, staged_directory

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from compress.sources import LoadedModel

Progress = Callable[[str], None]


def load_source(spec: str, models: str | Path = "models.yaml", trust_pickle: bool = False) -> LoadedModel:
    """What ``compress run`` takes: a models.yaml name, a model directory, a state dict or a hub id."""
    from compress.catalog import load_catalog
    from compress.sources import load_entry, load_model

    if not Path(spec).exists() and Path(models).is_file():
        catalog = load_catalog(Path(models))
        if spec in catalog.names():
            return load_entry(catalog.get(spec), trust_pickle=trust_pickle)
    return load_model(spec, trust_pickle=trust_pickle)


def masked_lm(loaded: LoadedModel, add_head: bool) -> PreTrainedModel:
    """The model to train: ``loaded``'s own masked-LM, or its encoder under a new head tied to the embeddings.

    Raises:
        CompressError: no masked-LM head and ``add_head`` off, or a head asked for where there is one.
    """
    from transformers import AutoModelForMaskedLM

    if loaded.task == "fill-mask":
        if add_head:
            raise CompressError("the model already has a masked-LM head: drop --add-mlm-head")
        return loaded.model
    if not add_head:
        raise CompressError(f"the model loads as {loaded.task}, without a masked-LM head: pass --add-mlm-head "
                            "to train one (tied to the input embeddings)")
    if loaded.tokenizer.mask_token_id is None:
        raise CompressError("the tokenizer has no mask token, so the model cannot be trained as a masked LM")
    config = loaded.model.config
    config.tie_word_embeddings = True
    mlm = AutoModelForMaskedLM.from_config(config)
    encoder = getattr(loaded.model, loaded.model.base_model_prefix, loaded.model)
    missing, _ = getattr(mlm, mlm.base_model_prefix).load_state_dict(encoder.state_dict(), strict=False)
    if missing:
        raise CompressError(f"the encoder's weights do not fit a {type(mlm).__name__}: missing {missing[:3]}")
    mlm.tie_weights()
    return mlm


def _record(loaded: LoadedModel, opts: AdaptOptions, texts: AdaptTexts, log: TrainLog, command: str
            ) -> dict[str, Any]:
    """adaptation.json: how the model was made, and what it gained and forgot."""
    before, after = log.evals[0], log.evals[-1]
    per_batch = opts.replay_per_batch
    return {
        "base_model": {"spec": loaded.source.spec, "sha256": loaded.source.sha256, "kind": loaded.source.kind},
        "data": {"path": opts.data, "sha256": sha256_text(opts.data), "train_texts": len(texts.train),
                 "held_out_texts": len(texts.held_out), "held_out": texts.sources["held_out"]},
        "replay": {"source": texts.sources["replay"], "ratio": per_batch / opts.batch_size,
                   "per_batch": per_batch, "texts": len(texts.replay)},
        "original_held_out": {"source": texts.sources["original_held_out"], "texts": len(texts.original_held_out)},
        "steps": opts.steps, "resumed_from": log.resumed_from, "train_seconds": round(log.seconds, 1),
        "options": opts.model_dump(),
        "before": {k: before[k] for k in ("new", "original")}, "after": {k: after[k] for k in ("new", "original")},
        "gain_points": 100 * (after["new"]["top1"] - before["new"]["top1"]),
        "forgetting_points": 100 * (before["original"]["top1"] - after["original"]["top1"]),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "command": command,
    }


def checkpoint_file(out: Path, opts: AdaptOptions) -> Path:
    """Where the resumable training state of the output ``out`` goes."""
    return Path(opts.checkpoint) if opts.checkpoint else out.parent / f".{out.name}.adapt-checkpoint.pt"


def adapt_model(model: str | LoadedModel, out: str | Path, opts: AdaptOptions, *, force: bool = False,
                models: str | Path = "models.yaml", command: str = "", progress: Progress | None = None
                ) -> dict[str, Any]:
    """Adapt ``model`` to the new domain of ``opts.data`` and write it to the model directory ``out``.

    Args:
        model: a spec that ``compress run`` takes, or a model already loaded.
        out: model directory to write (loadable by ``AutoModelForMaskedLM`` and ``compress run``).
        opts: data, replay, schedule.
        force: replace an existing ``out``.
        models: models.yaml to look names up in.
        command: the command line, recorded.
        progress: called with progress lines.

    Returns:
        The record written to ``out/adaptation.json``.

    Raises:
        CompressError: bad input, with the fix in the message.

    Example:
        >>> adapt_model("antiberty", "models/antiberty-tcr", AdaptOptions(data="tcr.txt"))  # doctest: +SKIP
    """
    out = Path(out)
    opts.check_files()
    check_writable(out, force)  # before the slow part
    loaded = load_source(model, models) if isinstance(model, str) else model
    mlm = masked_lm(loaded, opts.add_mlm_head)
    tok = loaded.tokenizer
    texts = load_texts(opts, tok)
    n_replay = opts.replay_per_batch
    batches = MixedBatches(texts.train, texts.replay, opts.batch_size - n_replay, n_replay, seed=opts.seed)
    predict = torch_predict(mlm, tok.mask_token_id)

    def evaluate() -> dict[str, Any]:
        return {part: masked_scores(predict, tok, held, rate=opts.mask_rate, seed=opts.seed,
                                    max_length=opts.max_length)
                for part, held in (("new", texts.held_out), ("original", texts.original_held_out))}

    if progress:
        progress(f"adapting on {len(texts.train)} texts ({len(texts.held_out)} held out), {n_replay} of "
                 f"{opts.batch_size} per batch replayed from {texts.sources['replay']}")
    checkpoint = checkpoint_file(out, opts)
    identity = {"model": loaded.source.sha256 or loaded.source.path, "data": sha256_text(opts.data)}
    log = train(mlm, tok, batches, opts, collator=make_collator(tok, opts, is_residue_vocab(tok)),
                evaluate=evaluate, checkpoint=checkpoint, identity=identity, progress=progress)
    record = _record(loaded, opts, texts, log, command)
    with staged_directory(out, force) as tmp:
        mlm.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        (tmp / ADAPTATION).write_text(json.dumps(record, indent=2) + "\n")
        write_report(tmp, record, log)
    if not opts.checkpoint:
        checkpoint.unlink(missing_ok=True)  # the model is written: nothing left to resume
    return record


def adapted_model_dir(out: Path) -> Path:
    """Where a recipe's ``adapt:`` step keeps the adapted model of the artifact ``out`` (reused while it fits)."""
    return out.with_name(f"{out.name}.adapted")


def adapt_for_recipe(loaded: LoadedModel, opts: AdaptOptions, out: Path, *, announce: Progress,
                     progress: Progress | None = None) -> LoadedModel:
    """A recipe's ``adapt:`` step for the artifact ``out``: the adapted model, made now or reused while its
    options, data and base model are the ones it was made from."""
    from compress.sources import load_model

    target = adapted_model_dir(out)
    record = target / "adaptation.json"
    made = json.loads(record.read_text()) if record.is_file() else {}
    fits = (made.get("options") == opts.model_dump() and made.get("data", {}).get("sha256") == sha256_text(opts.data)
            and made.get("base_model", {}).get("sha256") == loaded.source.sha256)
    announce(f"adapting to {opts.data} ({opts.steps} steps)" if not fits else f"reusing the adapted model {target}")
    if not fits:
        adapt_model(loaded, target, opts, force=True, progress=progress)
    return load_model(str(target))
