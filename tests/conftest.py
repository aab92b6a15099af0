"""Shared fixtures: tiny random models built in the test (unit tests), packaged real models (integration)."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import numpy as np
import pytest
import torch

WORDS = (
    "the a of to in and is was for on that with as by at from it be are has have not but this said "
    "year new people more government world first also time two would over last after game film music "
    "market company bank sales profit club team player show band win"
).split()
SENTENCES = [" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(5 + i % 9)) for i in range(48)]


def _wordpiece_tokenizer(directory: Path):
    from transformers import BertTokenizerFast

    # distinct entries: a repeated one ("a") would leave an id past the model's vocab_size (len(tokenizer))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys([*WORDS, *"abcdefghijklmnopqrstuvwxyz"])]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizerFast(vocab_file=str(directory / "vocab.txt"), do_lower_case=True)


def _bpe_tokenizer(directory: Path):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(SENTENCES, vocab_size=400, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(directory))
    return RobertaTokenizerFast(vocab_file=str(directory / "vocab.json"), merges_file=str(directory / "merges.txt"))


def build_tiny(directory: Path, family: str = "bert", task: str = "fill-mask", num_labels: int = 3,
               save: str = "dir", seed: int = 0):
    """A 2-layer random model of ``family`` saved to ``directory``; returns (model, tokenizer).

    ``save``: "dir" (save_pretrained + tokenizer), "bin" (state dict .bin + config.json + tokenizer),
    "pickle" (whole module pickled with torch.save).
    """
    from transformers import (
        AlbertConfig,
        AutoModel,
        AutoModelForMaskedLM,
        AutoModelForSequenceClassification,
        BertConfig,
        DebertaV2Config,
        DistilBertConfig,
        ElectraConfig,
        ModernBertConfig,
        RobertaConfig,
        XLMRobertaConfig,
    )

    directory.mkdir(parents=True, exist_ok=True)
    tok = _bpe_tokenizer(directory) if family in ("roberta", "xlm-roberta") else _wordpiece_tokenizer(directory)
    common = dict(vocab_size=len(tok), max_position_embeddings=66, num_labels=num_labels)
    if family == "bert":
        cfg = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, **common)
    elif family == "distilbert":
        cfg = DistilBertConfig(dim=64, n_layers=2, n_heads=4, hidden_dim=128, **common)
    elif family == "roberta":
        cfg = RobertaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                            pad_token_id=tok.pad_token_id, bos_token_id=0, eos_token_id=2, **common)
    elif family == "xlm-roberta":
        cfg = XLMRobertaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                               pad_token_id=tok.pad_token_id, bos_token_id=0, eos_token_id=2, **common)
    elif family == "albert":
        cfg = AlbertConfig(embedding_size=32, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=128, pad_token_id=tok.pad_token_id, **common)
    elif family == "deberta-v2":
        cfg = DebertaV2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                              pad_token_id=tok.pad_token_id, relative_attention=True, position_buckets=16,
                              pos_att_type=["p2c", "c2p"], max_relative_positions=-1, **common)
    elif family == "electra":
        cfg = ElectraConfig(embedding_size=32, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=128, **common)
    elif family == "modernbert":
        ids = {f"{k}_token_id": getattr(tok, f"{k}_token_id") for k in ("pad", "cls", "sep", "mask")}
        common.pop("max_position_embeddings")
        cfg = ModernBertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                               max_position_embeddings=128, bos_token_id=ids["cls_token_id"],
                               eos_token_id=ids["sep_token_id"], **ids, **common)
    else:
        raise ValueError(family)
    auto = {"fill-mask": AutoModelForMaskedLM, "classification": AutoModelForSequenceClassification,
            "embedding": AutoModel}[task]
    torch.manual_seed(seed)
    model = auto.from_config(cfg).eval()
    if save == "dir":
        model.save_pretrained(directory)
    elif save == "bin":
        torch.save(model.state_dict(), directory / "weights.bin")
        cfg.save_pretrained(directory)
    elif save == "pickle":
        torch.save(model, directory / "whole.pt")
        cfg.save_pretrained(directory)
    tok.save_pretrained(directory)
    return model, tok


TAGS = ["O", "B-X", "I-X"]


def build_tiny_heads(directory: Path, family: str = "bert", seed: int = 0) -> Path:
    """A tiny random masked-LM of ``family`` with two random heads, written as `compress train` writes a model
    directory (``directory``/model): ``tags`` (token-classification, labels TAGS) and ``rr`` (rerank, [CLS]
    pooling). Returns the model directory."""
    from compress.train.model import HeadRecord
    from compress.train.store import load_source, save_trained

    build_tiny(directory / "src", family, "fill-mask", seed=seed)
    model, tok, _ = load_source(str(directory / "src"))
    torch.manual_seed(seed + 1)
    for record, outputs in ((HeadRecord("tags", "token-classification", labels=TAGS), len(TAGS)),
                            (HeadRecord("rr", "rerank", pooling="cls"), 1)):
        model.new_head(record, outputs)
        torch.nn.init.normal_(model.linears[record.name].weight, std=0.5)  # margins an fp32 export keeps
    save_trained(model.eval(), tok, directory / "model")
    return directory / "model"


def add_linear_heads(weights: Path) -> None:
    """AntiBERTy's layout: species (6) and chain (2) linear heads on the pooled output."""
    sd = torch.load(weights, weights_only=True)
    gen = torch.Generator().manual_seed(1)
    for name, n in (("species", 6), ("chain", 2)):
        sd[f"cls.{name}.weight"] = torch.randn(n, 64, generator=gen)
        sd[f"cls.{name}.bias"] = torch.randn(n, generator=gen)
    sd["bert.pooler.dense.weight"] = torch.randn(64, 64, generator=gen) * 0.2
    sd["bert.pooler.dense.bias"] = torch.randn(64, generator=gen)
    torch.save(sd, weights)


def splade_reference(model: torch.nn.Module, enc: dict) -> np.ndarray:
    """A SPLADE vector per row of ``enc`` straight from PyTorch: transformers' *ForMaskedLM logits -> log(1 +
    relu) -> max over the real (attention-masked) tokens, as naver's SPLADE computes it."""
    names = model.forward.__code__.co_varnames
    tensors = {k: torch.from_numpy(np.asarray(v, dtype=np.int64)) for k, v in enc.items() if k in names}
    with torch.no_grad():
        logits = model(**tensors).logits
    mask = tensors["attention_mask"].unsqueeze(-1)
    return (torch.log1p(torch.relu(logits)) * mask).max(dim=1).values.numpy()  # type: ignore[no-any-return]


@pytest.fixture
def tiny(tmp_path):
    """Factory: tiny(family, task, save) -> model directory."""
    def make(family: str = "bert", task: str = "fill-mask", save: str = "dir", **kw) -> Path:
        d = tmp_path / f"{family}-{task}-{save}"
        build_tiny(d, family, task, save=save, **kw)
        return d
    return make


@pytest.fixture
def texts_file(tmp_path) -> Path:
    p = tmp_path / "texts.txt"
    p.write_text("\n".join(SENTENCES) + "\n")
    return p


ROOT = Path(__file__).resolve().parent.parent
# .ci/run points this at the benchmark's --cache, so the quick benchmark after the tests reuses the
# int8 artifacts (same recipe, same names) and the topic classifier the tests built.
SHARED_CACHE = os.environ.get("MLM_COMPRESS_CACHE")


def shared_cache(tmp_path_factory, name: str) -> Path:
    """The shared cache directory when MLM_COMPRESS_CACHE is set, else a fresh temporary one."""
    if SHARED_CACHE:
        path = Path(SHARED_CACHE)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp(name)


def _made_with(artifact: Path, recipe) -> bool:
    """A cached artifact made with this very recipe (an older recipe's is made again)."""
    from compress.artifact import read_manifest

    return (artifact / "manifest.json").is_file() and read_manifest(artifact).recipe == recipe.stored()


@pytest.fixture(scope="session")
def packaged_artifact(tmp_path_factory):
    """Factory: packaged_artifact(name, method="int8") -> artifact dir of a models.yaml model.

    Each (name, method) is compressed once per test session (the packaged models are real and take
    tens of seconds each).
    """
    from compress.catalog import entry_or_head, load_catalog
    from compress.pipeline import compress_model
    from compress.quantize import method_config
    from compress.sources import load_entry

    catalog = load_catalog(ROOT / "models.yaml")
    base = tmp_path_factory.mktemp("artifacts")
    cache: dict[tuple[str, str], Path] = {}

    def make(name: str, method: str = "int8") -> Path:
        if (name, method) not in cache:
            entry = entry_or_head(catalog, name)  # antiberty-species: that head of antiberty, alone
            recipe = entry.recipe.model_copy(update={"quantize": method_config({"method": method})})
            # share with the benchmark's int8 variant only what is made the same way
            from benchmarks.common.variants import RECIPES

            shared = method == "int8" and recipe.optimize == RECIPES["int8"]["optimize"]
            out = (shared_cache(tmp_path_factory, "artifacts") if shared else base) / f"{name}-{method}"
            if not (shared and _made_with(out, recipe)):
                compress_model(load_entry(entry), out, name=name, recipe=recipe, force=shared, bench=False)
            cache[name, method] = out
        return cache[name, method]

    return make


@pytest.fixture(scope="session")
def packaged_model():
    """Factory: packaged_model(name) -> LoadedModel (the fp32 original), loaded once per session."""
    from compress.catalog import entry_or_head, load_catalog
    from compress.sources import load_entry

    catalog = load_catalog(ROOT / "models.yaml")
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = load_entry(entry_or_head(catalog, name))
        return cache[name]

    return get
