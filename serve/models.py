"""The served models: made ready at start (compressed on first start if need be), tokenized per request.

:class:`~serve.spec.ModelSpec` (serve/spec.py) is what a backend needs to load and run a model (small,
picklable); :class:`ServedModel` adds the tokenizer, the labels and the request-side checks.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from serve.config import ConfigError, artifact_dir
from serve.errors import ServeError
from serve.spec import ModelSpec
from serve.tokenizer import Spans, Text, TextTokenizer

if TYPE_CHECKING:
    from compress.artifact import HeadInfo, Manifest
    from compress.catalog import ModelEntry

log = logging.getLogger("serve")
ENDPOINTS: dict[str, str] = {"fill-mask": "/v1/fill-mask", "classification": "/v1/classify",
                             "embedding": "/v1/embed", "token-classification": "/v1/token-classify",
                             "rerank": "/v1/rerank", "sparse-embedding": "/v1/embed-sparse"}


class ServedModel:
    """One model as the HTTP side sees it: limits, tokenizer, labels.

    A multi-head artifact is one model (one lane, one backend) with a view per head: the view is a
    ServedModel too, with the head's task and labels, addressed as ``NAME`` (the first head) or
    ``NAME:HEAD`` (the others).
    """

    def __init__(self, spec: ModelSpec, manifest: Manifest, tokenizer: TextTokenizer) -> None:
        self.spec = spec
        self.manifest = manifest
        self.tokenizer = tokenizer
        opts = spec.options
        self.max_length = min(opts.max_length or manifest.tokenizer.max_length, manifest.tokenizer.max_length)
        self.split_chars = manifest.tokenizer.split_chars if opts.split_chars is None else opts.split_chars
        self.mask_token = manifest.tokenizer.mask_token
        self.labels = manifest.labels or []
        self.pair_boundary = tokenizer.pair_boundary()  # where a pair's second segment starts (rerank)
        self._token_text: dict[int, str] = {}
        self._prompt_tokens: dict[str, int] = {}
        self.output_sizes: dict[str, int] = {}  # each 2-D graph output's width, learned at warm-up (serve.engine)
        self.head: HeadInfo | None = None
        self.address = spec.name
        self._views = {h.name: self._view(h, i) for i, h in enumerate(manifest.heads or [])}

    def _view(self, head: HeadInfo, index: int) -> ServedModel:
        view = copy.copy(self)  # shares the tokenizer, spec and token cache
        view.head, view.labels, view._views = head, head.labels or [], {}
        view.address = self.spec.name if index == 0 else f"{self.spec.name}:{head.name}"
        return view

    @property
    def name(self) -> str:
        """The name clients address: the model's, or ``NAME:HEAD`` for a head view past the first."""
        return self.address

    @property
    def task(self) -> str:
        return self.head.task if self.head is not None else self.spec.task

    def view(self, head: str | None) -> ServedModel:
        """The view of ``head`` (None: the model itself, single-head)."""
        return self if head is None else self._views[head]

    def addresses(self) -> dict[str, ServedModel]:
        """Every name a client can address on this model, with the view it answers from."""
        if not self._views:
            return {self.name: self}
        return {v.address: v for v in self._views.values()}

    @property
    def dimensions(self) -> int | None:
        """An embedding model's (or head's) vector size (a sparse-embedding head's: the vocabulary's), once warmed
        up; None otherwise."""
        if self.task == "sparse-embedding" and self.head is not None:
            return self.output_sizes.get(self.head.output)
        if self.task != "embedding":
            return None
        return self.output_sizes.get(self.head.output if self.head is not None else "sentence_embedding")

    def embedding_sizes(self) -> list[int]:
        """The ``dimensions`` a request may ask: the full size, then the smaller Matryoshka sizes of
        models.yaml's ``serve.matryoshka_dimensions`` (only those while the full size is not known)."""
        full, listed = self.dimensions, self.spec.options.matryoshka_dimensions or []
        return [full, *(d for d in listed if d < full)] if full else list(listed)

    def prompt(self, name: str | None) -> str | None:
        """The text of the prompt ``name`` of models.yaml's ``serve.prompts`` (None: no prompt).

        Raises:
            ServeError: 400 for a name the model does not have.
        """
        if name is None:
            return None
        prompts = self.spec.options.prompts
        if name not in prompts:
            have = ", ".join(repr(p) for p in prompts) or "none"
            raise ServeError("unsupported", f"model {self.name!r} has no prompt {name!r}; its prompts: {have} "
                             "(models.yaml serve.prompts)", "prompt_name")
        return prompts[name]

    def tokenize(self, texts: Sequence[Text], param: str = "inputs", prompt: str | None = None) -> list[list[int]]:
        """Token ids of each text or text pair (after ``prompt``), special tokens included; cut or refused past
        ``max_length``.

        Raises:
            ServeError: a text cannot be tokenized, or is too long and the model does not truncate.
        """
        return self.fit(self.encode(texts, param, prompt), texts, param, prompt)

    def encode(self, texts: Sequence[Text], param: str = "inputs", prompt: str | None = None) -> list[list[int]]:
        """Token ids of each text or text pair (after ``prompt``) in one tokenizer call, whatever their length.

        Raises:
            ServeError: a text cannot be tokenized.
        """
        return self._encode(self.prepared(texts, prompt), param)

    def fit(self, ids: list[list[int]], texts: Sequence[Text], param: str = "inputs",
            prompt: str | None = None) -> list[list[int]]:
        """``ids`` of ``texts`` within ``max_length``: a longer one is cut, or refused (413). A single text is
        cut at ``serve.truncation_side`` (the prompt kept); a pair at the end of its second text (the
        document), then of its first, so both segments keep their special tokens.

        Raises:
            ServeError: a text is too long and the model does not truncate.
        """
        opts = self.spec.options
        for i, seq in enumerate(ids):
            if len(seq) <= self.max_length:
                continue
            if not opts.truncate:
                raise ServeError("input_too_long", f"{param}[{i}] is {len(seq)} tokens long; model {self.name!r} "
                                 f"takes at most {self.max_length} (special tokens included): shorten or split it",
                                 param)
            if isinstance(texts[i], tuple):  # where the segments meet is the tokenizer's to say: encode it again
                ids[i] = self._encode(self.prepared([texts[i]], prompt), param, self.max_length)[0]
            else:
                ids[i] = self.tokenizer.cut(seq, self.max_length, opts.truncation_side, self._prompt_length(prompt))
        return ids

    def prepared(self, texts: Sequence[Text], prompt: str | None = None) -> list[Text]:
        """The texts as the tokenizer takes them (:meth:`prepared_text`); a pair's prompt goes before its first
        text (the query) alone."""
        return [self.prepared_text(t, prompt) if isinstance(t, str)
                else (self.prepared_text(t[0], prompt), self.prepared_text(t[1])) for t in texts]

    def prepared_text(self, text: str, prompt: str | None = None) -> str:
        """One text as the tokenizer takes it: residues spaced out (``split_chars``), after the prompt."""
        if self.split_chars:
            from compress.data import space_residues

            text = space_residues(text, self.mask_token or "[MASK]")
        return prompt + text if prompt else text

    def _prompt_length(self, prompt: str | None) -> int:
        """Tokens the prompt takes at the start of a text (its trailing space belongs to the next word)."""
        if not prompt:
            return 0
        if prompt not in self._prompt_tokens:
            self._prompt_tokens[prompt] = len(self.tokenizer.encodings([prompt.rstrip()], False)[0].ids)
        return self._prompt_tokens[prompt]

    def spans(self, text: str) -> tuple[str, Spans, list[tuple[int, int]]]:
        """(the text as tokenized, its tokens' :class:`Spans` in it, their offsets in the client's ``text``):
        a per-residue model tokenizes the residues spaced out, and its offsets are mapped back. The tokens
        are those :meth:`tokenize` keeps (no prompt)."""
        prepared = self.prepared_text(text)
        opts = self.spec.options
        spans = self.tokenizer.spans(prepared, self.max_length if opts.truncate else None, opts.truncation_side)
        if prepared == text:
            return prepared, spans, spans.offsets
        at = [i for i, c in enumerate(text) if not c.isspace()]  # the k-th non-space character's index
        k_of = {i: k for k, i in enumerate(i for i, c in enumerate(prepared) if not c.isspace())}
        return prepared, spans, [(at[k_of[a]], at[k_of[b - 1]] + 1) if b > a else (0, 0) for a, b in spans.offsets]

    def _encode(self, texts: Sequence[Text], param: str, max_length: int | None = None) -> list[list[int]]:
        try:
            return self.tokenizer.encode(texts, max_length)
        except Exception as e:  # the Rust tokenizer rejects e.g. unpaired surrogates, with varied types
            raise ServeError("invalid_request", f"{param} could not be tokenized ({type(e).__name__}); send "
                             "plain UTF-8 text", param) from None

    def token_text(self, token_id: int) -> str:
        """A vocabulary entry as text (``##`` continuation marks and byte-level spaces resolved)."""
        text = self._token_text.get(token_id)
        if text is None:
            text = self.tokenizer.decode([token_id]).strip()
            self._token_text[token_id] = text
        return text

    def example(self) -> str | None:
        """A text the model reads well, for the try page (None: any English text will do): an antibody
        sequence for a per-residue vocabulary, with a residue masked for fill-mask."""
        if not self.split_chars:
            return None
        if self.task == "fill-mask":
            return f"{RESIDUE_EXAMPLE[:25]}{self.mask_token or '[MASK]'}{RESIDUE_EXAMPLE[26:]}"
        return RESIDUE_EXAMPLE

    def describe(self) -> dict[str, object]:
        m = self.manifest
        return {"task": self.task, "endpoint": ENDPOINTS[self.task], "max_length": self.max_length,
                "truncate": self.spec.options.truncate,
                "truncation_side": self.spec.options.truncation_side, "prompts": self.spec.options.prompts or None,
                "dimensions": self.dimensions, "matryoshka_dimensions": self.spec.options.matryoshka_dimensions,
                "mask_token": self.mask_token if self.task == "fill-mask"
                else None, "labels": self.labels or None, "pooling": m.pooling, "normalize": m.normalize,
                "method": m.method, "backend": self.spec.backend,
                "device": self.spec.options.device, "example": self.example(),
                **({"model": self.spec.name, "head": self.head.name} if self.head is not None else {})}


RESIDUE_EXAMPLE = "EVQLVESGGGLVQPGGSLRLSCAASGFTFSSYAMSWVRQAPGKGLEWVS"  # a human heavy chain's FR1 to FR2


def _warmup_ids(tokenizer: TextTokenizer, task: str, split_chars: bool, mask_id: int | None) -> list[int]:
    text = "E V Q L V E S G G G L V Q P G G" if split_chars else "the quick brown fox jumps over the lazy dog"
    ids = tokenizer.encode([text])[0]
    if task == "fill-mask" and mask_id is not None:
        ids[len(ids) // 2] = mask_id
    return ids


def compress_entry(entry: ModelEntry, out: Path, full_recipe: bool = False) -> None:
    """Compress a models.yaml entry into ``out`` (first start); progress on stderr.

    The plain recipe (:meth:`compress.recipe.Recipe.plain`: no adapt or prune step) unless ``full_recipe``
    or the entry's ``serve.first_start: full`` asks for the whole one, as `compress run NAME` runs it:
    never minutes of distillation by surprise.

    Raises:
        compress.CompressError: the compress extra is not installed, or compression failed.
    """
    from compress.extras import require_compress

    require_compress(f"{entry.name}: compressing the missing artifact at {out} (or make it elsewhere with "
                     f"`compress run {entry.name}`)")
    from compress.head_graph import load_heads
    from compress.pipeline import compress_model
    from compress.sources import load_entry

    if entry.recipe.train is not None:  # never minutes of training by surprise at start
        raise ConfigError(f"{entry.name}: no artifact at {out}, and its recipe trains heads first (train:); "
                          f"make it with `compress run {entry.name}`, then start serve")
    whole = full_recipe or entry.serve.first_start == "full"
    recipe = entry.recipe if whole else entry.recipe.plain()
    skipped = [step for step in ("adapt", "prune") if getattr(entry.recipe, step) and not whole]
    log.warning("%s: no artifact at %s; compressing it now with method %s (first start, this takes a while)%s",
                entry.name, out, entry.recipe.method,
                f"; the recipe's {' and '.join(skipped)} step skipped: start with --compress, or run "
                f"`compress run {entry.name}`, for the whole recipe" if skipped else "")
    model = load_heads(entry.heads, entry=entry) if entry.heads else load_entry(entry)
    compress_model(model, out, name=entry.name, recipe=recipe, command=f"serve (first start: {entry.name})")


def _resolve_backend(entry: ModelEntry, m: Manifest, directory: Path) -> tuple[str, bool]:
    """(backend, runs the source weights): ``serve.backend`` if set, else the artifact's own."""
    from serve.backends import check_available

    backend = entry.serve.backend or m.backend
    if backend == "onnxruntime" and m.backend != "onnxruntime":
        raise ConfigError(f"{entry.name}: the artifact at {directory} is a {m.backend} artifact (method "
                          f"{m.method}) without an ONNX graph; drop serve.backend or set it to torch")
    from_source = backend == "torch" and m.backend == "onnxruntime"
    if entry.serve.precision != "fp32" and not from_source:
        raise ConfigError(f"{entry.name}: serve.precision applies to the source weights; the artifact at "
                          f"{directory} already is {m.method}: drop serve.precision")
    check_available(backend, entry.serve, entry.name)
    return backend, from_source


def _check_heads(entry: ModelEntry, m: Manifest, directory: Path) -> None:
    """The artifact has the heads the entry asks for (an artifact made before ``heads:`` was added has none)."""
    want = [h.name for h in entry.heads or []]
    have = [h.name for h in m.heads or []]
    if want and want != have:
        raise ConfigError(f"{entry.name}: models.yaml asks for heads {', '.join(want)} but the artifact at {directory} "
                          f"has {', '.join(have) or 'one task'}: rebuild it with `compress run {entry.name} --force`")
    if m.heads and entry.serve.backend == "torch":
        raise ConfigError(f"{entry.name}: a multi-head artifact runs on onnxruntime; drop serve.backend: torch")


def prepare_model(entry: ModelEntry, base: Path, compress_missing: bool = True,
                  full_recipe: bool = False) -> ServedModel:
    """Make one entry ready to serve: artifact (compressing it if missing, see :func:`compress_entry`),
    manifest checks, tokenizer.

    Raises:
        ConfigError: no artifact and compression is off, or the artifact does not fit the entry.
        compress.CompressError: compression failed.
    """
    from compress.artifact import load_artifact
    from serve.backends import check_available

    directory = artifact_dir(entry, base)
    if not (directory / "manifest.json").is_file():
        if not compress_missing:
            raise ConfigError(f"{entry.name}: no artifact at {directory}; make it with `compress run {entry.name}` "
                              "or start without --no-compress")
        from compress.quantize import get_method

        made = get_method(entry.recipe.method).backend
        check_available(entry.serve.backend or made, entry.serve, entry.name)
        compress_entry(entry, directory, full_recipe)
    art = load_artifact(directory)
    m = art.manifest
    backend, from_source = _resolve_backend(entry, m, directory)
    if entry.task is not None and entry.task != m.task:
        raise ConfigError(f"{entry.name}: models.yaml says task {entry.task} but the artifact at {directory} is "
                          f"{m.task}; fix the entry or rebuild the artifact")
    _check_heads(entry, m, directory)
    if m.task == "fill-mask" and not m.tokenizer.mask_token:
        raise ConfigError(f"{entry.name}: a fill-mask artifact without a mask token cannot be served")
    tok = TextTokenizer.from_directory(directory)
    split = m.tokenizer.split_chars if entry.serve.split_chars is None else entry.serve.split_chars
    mask_id = tok.token_to_id(m.tokenizer.mask_token) if m.tokenizer.mask_token else None
    spec = ModelSpec(name=entry.name, task=m.task, artifact=str(directory), graph_file=m.graph.file, entry=entry,
                     options=entry.serve, input_names=list(m.graph.inputs), pad_id=int(tok.pad_token_id or 0),
                     backend=backend, from_source=from_source, mask_id=mask_id, pooling=m.pooling,
                     warmup=[_warmup_ids(tok, m.task, split, mask_id)])
    return ServedModel(spec, m, tok)


def prepare_models(entries: list[ModelEntry], base: Path, compress_missing: bool = True,
                   full_recipe: bool = False) -> list[ServedModel]:
    return [prepare_model(e, base, compress_missing, full_recipe) for e in entries]


def reload_model(model: ServedModel) -> ServedModel:
    """``model`` read again from its artifact directory (a live swap), never compressing.

    Raises:
        ConfigError: the artifact is gone or no longer fits the entry.
    """
    entry = model.spec.entry.model_copy(update={"artifact": model.spec.artifact})
    return prepare_model(entry, Path(model.spec.artifact), compress_missing=False)
