"""`python -m benchmarks e2e`: a running server against the fp32 originals, over HTTP, on real data.

Serves a models.yaml (the native host, or ``--host-kind ray``) with an API key and checks every
served address as a user would see it:

| task | texts | check |
|---|---|---|
| fill-mask | antibody germlines with one residue masked (English: one word) | top-1 token agrees with fp32 |
| classification | antibody germlines (English: BBC paragraphs) | top label agrees with fp32 |
| embedding | BBC News paragraphs | cosine to the fp32 embedding (OpenAI ``/v1/embeddings``) |

and the edges: every bad request is a 4xx in the one error shape, and no key is 401. The fp32
original is the models.yaml source run by transformers in eager PyTorch (see variants.torch_baseline).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.common.endpoints import ENDPOINTS, request_body

if TYPE_CHECKING:
    from benchmarks.common.load import HttpClient
    from benchmarks.common.process import ServeProcess
    from compress.sources import LoadedModel

MIN_AGREEMENT = 0.99
MIN_COSINE = 0.99
PER_REQUEST = 8
SEED = 16
KEY = "e2e-key"


@dataclass
class Check:
    address: str
    task: str
    metric: str
    value: float
    minimum: float
    n: int
    worst: float | None = None  # embeddings: the lowest cosine

    @property
    def passed(self) -> bool:
        return self.value >= self.minimum


@dataclass
class Edge:
    what: str
    status: int
    want: str
    passed: bool


@dataclass
class E2EReport:
    host_kind: str
    catalog: str
    checks: list[Check] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks) and all(e.passed for e in self.edges) and bool(self.checks)


def _texts(tokenizer: Any, task: str, n: int, rng: np.random.Generator, max_length: int) -> list[str]:
    """``n`` real texts for ``task`` in the tokenizer's language, each within the served ``max_length`` (so
    neither side truncates); fill-mask texts carry one mask. Antibody sequences go raw (``EVQLV…``) except
    with a mask (spaced), as users send them."""
    from compress.data import antibody_germlines, bbc_articles, is_residue_vocab, space_residues

    residues = is_residue_vocab(tokenizer)
    if residues:
        candidates = [g.sequence for g in antibody_germlines()]
    else:
        candidates = [p.strip() for _, text in bbc_articles() for p in text.split("\n")[1:] if len(p.split()) >= 8]
    pool: list[str] = []
    for i in rng.permutation(len(candidates)):
        text = candidates[i]
        if len(tokenizer(space_residues(text) if residues else text)["input_ids"]) <= max_length:
            pool.append(text)
        if len(pool) == n:
            break
    if task != "fill-mask":
        return pool
    mask = tokenizer.mask_token
    if residues:
        return [space_residues(s[:k] + mask + s[k + 1:], mask) for s, k in
                ((s, int(rng.integers(len(s)))) for s in pool)]
    words = [p.split() for p in pool]
    return [" ".join(mask if i == k else w for i, w in enumerate(ws)) for ws, k in
            ((ws, int(rng.integers(len(ws)))) for ws in words)]


def _reference(loaded: LoadedModel, texts: list[str], per: int) -> np.ndarray:
    """The fp32 original's answer per text: top-1 token id (fill-mask), class id, or unit embedding."""
    from benchmarks.common.variants import torch_baseline
    from compress.data import is_residue_vocab, space_residues
    from compress.session import default_threads

    if is_residue_vocab(loaded.tokenizer):  # the server takes raw sequences, the tokenizer spaced ones
        texts = [space_residues(t, loaded.tokenizer.mask_token) for t in texts]
    run, out = torch_baseline(loaded, threads=default_threads()), []
    for i in range(0, len(texts), per):
        enc = dict(loaded.tokenizer(texts[i:i + per], padding=True, truncation=True, return_tensors="np"))
        got = run(enc)
        if loaded.task == "fill-mask":
            out.append(got["mask_logits"].argmax(-1))
        elif loaded.task == "embedding":
            v = got["sentence_embedding"]
            out.append(v / np.linalg.norm(v, axis=1, keepdims=True))
        else:
            out.append(got["logits"].argmax(-1))
    return np.concatenate(out)


def _served(client: HttpClient, task: str, address: str, texts: list[str], per: int,
            answer: Callable[[dict], list[Any]]) -> list[Any]:

    out: list[Any] = []
    for i in range(0, len(texts), per):
        status, body = client.post(ENDPOINTS[task], request_body(task, address, texts[i:i + per]))
        if status != 200:
            raise RuntimeError(f"{ENDPOINTS[task]} {address}: {status} {body}")
        out.extend(answer(body))
    return out


def check_address(client: HttpClient, address: str, loaded: LoadedModel, n: int, max_length: int,
                  per: int = PER_REQUEST) -> Check:
    """One served address (a model, or ``MODEL:HEAD``) against its fp32 original on ``n`` texts within the
    served ``max_length``, ``per`` texts a request."""
    rng = np.random.default_rng(SEED)
    tok, task = loaded.tokenizer, loaded.task
    texts = _texts(tok, task, n, rng, max_length)
    ref = _reference(loaded, texts, per)
    if task == "fill-mask":
        got = _served(client, task, address, texts, per,
                      lambda b: [r["masks"][0]["ids"][0] for r in b["results"]])
        return Check(address, task, "top-1 agreement", float(np.mean(np.array(got) == ref)), MIN_AGREEMENT,
                     len(texts))
    if task == "embedding":
        vecs = np.array(_served(client, task, address, texts, per,
                                lambda b: [d["embedding"] for d in b["data"]]), dtype=np.float32)
        cos = (vecs * ref).sum(1) / np.linalg.norm(vecs, axis=1)
        return Check(address, task, "mean cosine", float(cos.mean()), MIN_COSINE, len(texts), worst=float(cos.min()))
    names = loaded.labels or []
    labels = [names[i] for i in ref]
    got = _served(client, task, address, texts, per, lambda b: [r["labels"][0] for r in b["results"]])
    return Check(address, task, "label agreement", float(np.mean([a == b for a, b in zip(got, labels, strict=True)])),
                 MIN_AGREEMENT, len(texts))


def is_error_shape(body: Any) -> bool:
    """The one error shape: ``{"error": {"message", "type", "param"}}`` with a message."""
    err = body.get("error") if isinstance(body, dict) else None
    return isinstance(err, dict) and set(err) == {"message", "type", "param"} and bool(err["message"])


def check_edges(server: ServeProcess, address: str, task: str) -> list[Edge]:
    """Bad requests to ``task``'s endpoint (served by ``address``): each a 4xx in the one error shape; no
    key: 401."""

    route = ENDPOINTS[task]
    key = next(k for k in request_body(task, address, "a") if k != "model")
    cases: list[tuple[str, Any, bytes | None, int]] = [
        ("unknown model", {"model": "no-such-model", key: "a"}, None, 404),
        ("missing input", {"model": address}, None, 422),
        ("empty list", {"model": address, key: []}, None, 422),
        ("not a string", {"model": address, key: [3]}, None, 422),
        ("blank text", {"model": address, key: "  "}, None, 422),
        ("bad option", {"model": address, key: "a", **({"encoding_format": "hex"} if task == "embedding"
                                                         else {"top_k": 0})}, None, 422),
        ("too many items", {"model": address, key: ["a"] * 10_000}, None, 422),
        ("too long", {"model": address, key: "a " * 200_000}, None, 413),
        ("not JSON", None, b"{not json", 400),
    ]
    client, edges = server.client(), []
    for what, body, raw, want in cases:
        status, _, got = client.request("POST", route, body, raw=raw, headers={"Content-Type": "application/json"})
        edges.append(Edge(f"{route} {what}", status, f"4xx (e.g. {want})", 400 <= status < 500 and is_error_shape(got)))
    status, got = server.client(api_key=None).post(route, request_body(task, address, "a"))
    edges.append(Edge(f"{route} without the API key", status, "401",
                      status == 401 and is_error_shape(got) and got["error"]["type"] == "unauthorized"))
    return edges


def check_server(server: ServeProcess, catalog: Path, n: int, host_kind: str) -> E2EReport:
    """Every address ``server`` lists in /v1/models against the fp32 original of its models.yaml entry."""
    from compress.catalog import entry_or_head, load_catalog
    from compress.sources import load_entry

    cat, client = load_catalog(catalog), server.client()
    report = E2EReport(host_kind=host_kind, catalog=str(catalog))
    cards = client.get("/v1/models")[1]["data"]
    for card in cards:
        entry = entry_or_head(cat, card["id"].replace(":", "-"))
        per = min(PER_REQUEST, entry.serve.max_items)
        report.checks.append(check_address(client, card["id"], load_entry(entry), n,
                                           int(card["details"]["max_length"]), per))
        print(f"{card['id']}: {report.checks[-1].metric} {report.checks[-1].value:.4f}", flush=True)
    for task in ("fill-mask", "classification", "embedding"):
        first = next((c["id"] for c in cards if c["task"] == task), None)
        if first:
            report.edges.extend(check_edges(server, first, task))
    return report


def run_e2e(catalog: Path, host_kind: str, n: int, log: Path, extra: tuple[str, ...] = ()) -> E2EReport:
    """Start `serve` on ``catalog`` (127.0.0.1, an API key), check it, stop it."""
    from benchmarks.common.process import start_server

    flags = ("--ray",) if host_kind == "ray" else ("--host-kind", host_kind)
    server = start_server(catalog.resolve(), log, api_key=KEY, extra=(*flags, *extra), wait_s=1800)
    try:
        return check_server(server, catalog, n, host_kind)
    finally:
        server.stop()


def markdown(r: E2EReport) -> str:
    lines = [f"End-to-end over HTTP, {r.host_kind} host, {r.catalog}: **{'PASS' if r.passed else 'FAIL'}**", "",
             "| address | task | check | value | minimum | n |", "|---|---|---|---|---|---|"]
    for c in r.checks:
        worst = f" (min {c.worst:.4f})" if c.worst is not None else ""
        lines.append(f"| {c.address} | {c.task} | {c.metric} | {c.value:.4f}{worst} | {c.minimum} | {c.n} |")
    bad = [e for e in r.edges if not e.passed]
    lines += ["", f"Bad requests and auth: {len(r.edges) - len(bad)} of {len(r.edges)} answered as they should."]
    lines += [f"- {e.what}: got {e.status}, want {e.want} in the error shape" for e in bad]
    return "\n".join(lines)


def write(r: E2EReport, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"e2e-{r.host_kind}"
    data = {"passed": r.passed, **asdict(r)}
    stem.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(r) + "\n")
    return stem.with_suffix(".md")
