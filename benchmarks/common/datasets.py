"""The held-out data the accuracy suites run on: fixed draws, the same for every variant and every run.

- Antibodies: anarci's germline V genes, minus the 256 that ``compress`` validates on by default (so a
  suite never scores a variant on the texts its accuracy gate saw), drawn with a fixed seed.
- BBC News: the 2,225 articles (2,107 once duplicates are dropped) split once, per topic with a fixed
  seed, into a train part (the topic classifier and the linear probe learn from it) and a test part
  (200 per topic) that only evaluates. An article's text is its title and first lines (48 words,
  cut at 64 tokens).
- Recovery texts: what a pruned variant scores importance and distils on: held-out germlines minus
  the ones its own suite scores, or passages of 1 to RECOVERY_WINDOW consecutive sentences of BBC
  train-split articles and of gensim's Lee background corpus (300 news documents from Lee-50's
  source, none of them among the 50).
- Lee-50: gensim's 50 news documents with the human similarity matrix; the upper triangle (1,225
  pairs) is the reference, as in gensim's ``test_lee.py``.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from compress.data import Antibody, antibody_germlines, bbc_articles, default_texts, is_residue_vocab, space_residues

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SEED = 2024
FILL_MASK_SEQUENCES = 400
CLASSIFY_SEQUENCES = 600
BBC_TEST_PER_TOPIC = 200
BBC_PROBE_TRAIN_PER_TOPIC = 60
BBC_MAX_LENGTH = 64
BBC_WORDS = 48
LEE_MAX_LENGTH = 256
COMPRESS_VALIDATION_TEXTS = 256  # compress's ValidationStep.n: the gate's default validation set


def draw(items: list, n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(items), size=min(n, len(items)), replace=False)
    return [items[i] for i in sorted(idx)]


def held_out_germlines(tokenizer: PreTrainedTokenizerBase) -> list[Antibody]:
    """Germlines that compress's default validation set does not contain."""
    seen = {t.replace(" ", "") for t in default_texts(tokenizer, COMPRESS_VALIDATION_TEXTS)}
    return [a for a in antibody_germlines() if a.sequence not in seen]


def fill_mask_germlines(tokenizer: PreTrainedTokenizerBase) -> list[Antibody]:
    return draw(held_out_germlines(tokenizer), FILL_MASK_SEQUENCES, SEED)


def labelled_germlines(tokenizer: PreTrainedTokenizerBase, attribute: str) -> list[Antibody]:
    """Held-out germlines that carry ``attribute`` ("species" or "chain"), a fixed draw."""
    pool = [a for a in held_out_germlines(tokenizer) if getattr(a, attribute)]
    return draw(pool, CLASSIFY_SEQUENCES, SEED + 1)


def bbc_text(article: str) -> str:
    """Title and first lines on one line: BBC_WORDS words, about BBC_MAX_LENGTH tokens."""
    return " ".join(article.split()[:BBC_WORDS])


@functools.cache
def bbc_split() -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """(train, test) lists of (topic, text); the test part holds BBC_TEST_PER_TOPIC articles per topic.

    Articles whose text repeats an earlier one (the corpus has ~100 duplicates) are dropped, so no
    test article is also a training article.
    """
    seen: set[str] = set()
    articles = []
    for topic, article in bbc_articles():
        text = bbc_text(article)
        if text not in seen:
            seen.add(text)
            articles.append((topic, text))
    rng = np.random.default_rng(SEED)
    train: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    for topic in sorted({t for t, _ in articles}):
        idx = [i for i, (t, _) in enumerate(articles) if t == topic]
        chosen = set(rng.choice(idx, size=BBC_TEST_PER_TOPIC, replace=False).tolist())
        for i in idx:
            (test if i in chosen else train).append(articles[i])
    return tuple(train), tuple(test)


def bbc_probe_train() -> list[tuple[str, str]]:
    """The linear probe's training articles: BBC_PROBE_TRAIN_PER_TOPIC per topic from the train part."""
    train = bbc_split()[0]
    out = []
    for topic in sorted({t for t, _ in train}):
        out += draw([x for x in train if x[0] == topic], BBC_PROBE_TRAIN_PER_TOPIC, SEED + 2)
    return out


RECOVERY_WINDOW = 4  # sentences per English recovery passage, at most


def _sentences(text: str) -> list[str]:
    """The sentences of ``text`` of 6 words or more."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 6]


def recovery_texts(tokenizer: PreTrainedTokenizerBase, scored_on: str | None = None) -> list[str]:
    """In-domain texts for a pruned variant's importance scores and distillation: none of the items
    its own accuracy suite scores.

    Antibodies: held-out germlines minus the draw of ``scored_on`` ("masked_residue", "species" or
    "chain"). English: every run of 1 to RECOVERY_WINDOW consecutive sentences (about 80,000) of the
    BBC train-split articles, leaving out the sentences a test-split article (what the BBC suites
    score) also holds, and of gensim's ``lee_background.cor``: news from Lee-50's source, without its
    50. Passages of mixed length show the pruned model longer texts than single sentences do (Lee-50
    scores documents of up to 256 tokens); see benchmarks/common/variants.py for what they gave.
    """
    if is_residue_vocab(tokenizer):
        draws = {"masked_residue": lambda: fill_mask_germlines(tokenizer),
                 "species": lambda: labelled_germlines(tokenizer, "species"),
                 "chain": lambda: labelled_germlines(tokenizer, "chain")}
        if scored_on not in draws:
            raise ValueError(f"scored_on must be one of {', '.join(draws)} for antibodies, got {scored_on!r}")
        scored = {a.sequence for a in draws[scored_on]()}
        return [space_residues(a.sequence) for a in held_out_germlines(tokenizer) if a.sequence not in scored]
    train, test = ({text for _, text in part} for part in bbc_split())
    scored_text = " ".join(test)  # near-duplicate articles share sentences across the split: drop those
    docs = [[s for para in article.split("\n")[1:] for s in _sentences(para) if s not in scored_text]
            for _, article in bbc_articles() if bbc_text(article) in train]
    docs += [_sentences(doc) for doc in lee_background()]
    passages = (" ".join(doc[i:i + k]) for doc in docs for k in range(1, RECOVERY_WINDOW + 1)
                for i in range(len(doc) - k + 1))
    return list(dict.fromkeys(passages))  # in order, each once (near-duplicate articles repeat runs)


def _gensim_test_data() -> Path:
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("Lee-50 ships with gensim's test data: pip install 'gensim>=4.3'")
    return Path(next(iter(spec.submodule_search_locations))) / "test" / "test_data"


@functools.cache
def lee_background() -> tuple[str, ...]:
    """gensim's Lee background corpus: 300 news documents (unlabelled) from Lee-50's source."""
    path = _gensim_test_data() / "lee_background.cor"
    return tuple(line.strip() for line in path.read_text(encoding="latin1").splitlines() if line.strip())


@functools.cache
def lee50() -> tuple[tuple[str, ...], np.ndarray]:
    """The 50 Lee documents and the 1,225 human similarities of their pairs (upper triangle)."""
    root = _gensim_test_data()
    docs = tuple(line.strip() for line in (root / "lee.cor").read_text(encoding="latin1").splitlines()
                 if line.strip())
    sims = np.loadtxt(root / "similarities0-1.txt")
    if len(docs) != 50 or sims.shape != (50, 50):
        raise ValueError(f"unexpected Lee-50 data in {root}: {len(docs)} documents, matrix {sims.shape}")
    return docs, sims[np.triu_indices(50, 1)]
