"""Answers over HTTP against the fp32 originals, on real antibodies and real news sentences."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from compress.artifact import load_artifact
from compress.data import antibody_germlines, bbc_sentences, encode, space_residues
from compress.export import TaskGraph
from compress.runtime import TorchRunner
from tests.serve.conftest import API_KEY, LIMITS

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _antibodies(n: int, seed: int, species_only: bool = False) -> list:
    seqs = [a for a in antibody_germlines() if a.species or not species_only]
    rng = np.random.default_rng(seed)
    return [seqs[i] for i in sorted(rng.choice(len(seqs), size=n, replace=False))]


def _mask_residues(seq: str, rng: np.random.Generator, rate: float = 0.15) -> tuple[str, list[int]]:
    """The raw sequence with ``rate`` of its residues replaced by [MASK] (clients may send it unspaced)."""
    k = max(1, round(rate * len(seq)))
    where = set(rng.choice(len(seq), size=k, replace=False).tolist())
    return "".join("[MASK]" if i in where else c for i, c in enumerate(seq)), sorted(where)


def _reference(packaged_model, artifact, name: str, task: str, texts: list[str], max_length: int) -> list[dict]:
    """The fp32 PyTorch model's outputs on ``texts``, in batches of 32."""
    loaded = packaged_model(name)
    art = load_artifact(artifact)
    tok = art.tokenizer()
    graph = TaskGraph(loaded.model, task, mask_token_id=tok.mask_token_id, pooling=loaded.pooling)
    run = TorchRunner(graph, art.manifest.graph.inputs)
    return [run(encode(tok, texts[i: i + 32], max_length)) for i in range(0, len(texts), 32)]


def _post_all(server, path: str, bodies: list[dict], workers: int = 4) -> list[dict]:
    def post(body: dict) -> dict:
        status, data = server.client().post(path, body)
        assert status == 200, data
        return data
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(post, bodies))


def test_fill_mask_matches_fp32_top1(server, packaged_artifact, packaged_model):
    rng = np.random.default_rng(7)
    masked = [_mask_residues(a.sequence, rng)[0] for a in _antibodies(120, seed=4321)]
    step = LIMITS["max_items"]
    bodies = [{"model": "antiberty", "inputs": masked[i: i + step], "top_k": 5} for i in range(0, len(masked), step)]
    results = [r for data in _post_all(server, "/v1/fill-mask", bodies) for r in data["results"]]
    got = np.array([m["ids"][0] for r in results for m in r["masks"]])
    ref = _reference(packaged_model, packaged_artifact("antiberty"), "antiberty", "fill-mask",
                     [space_residues(t) for t in masked], 512)
    want = np.concatenate([o["mask_logits"] for o in ref]).argmax(-1)
    assert len(got) == len(want) > 1500
    assert float(np.mean(got == want)) >= 0.99
    for r, text in zip(results[:5], masked[:5], strict=True):  # filled sequences keep the client's format
        assert "[MASK]" not in r["sequence"] and len(r["sequence"]) == len(text.replace("[MASK]", "X"))
        assert all(len(m["tokens"]) == 5 and m["scores"] == sorted(m["scores"], reverse=True) for m in r["masks"])
        assert r["masks"][0]["sequence"].count("[MASK]") == len(r["masks"]) - 1


def test_fill_mask_spaced_and_raw_inputs_agree(server):
    raw = "EVQLVESGGGLVQPGG[MASK]LRLSCAAS"
    status, data = server.client().post("/v1/fill-mask", {"inputs": [raw, space_residues(raw)], "top_k": 3})
    assert status == 200
    a, b = data["results"]
    assert a["masks"][0]["ids"] == b["masks"][0]["ids"]
    assert a["masks"][0]["tokens"][0] == "S"  # the germline residue, predicted with high confidence
    assert a["sequence"] == raw.replace("[MASK]", "S") and b["sequence"] == space_residues(raw.replace("[MASK]", "S"))
    assert data["usage"]["prompt_tokens"] == 2 * (len(raw) - len("[MASK]") + 1 + 2)


def test_classify_matches_fp32(server, packaged_artifact, packaged_model):
    abs_ = _antibodies(256, seed=99, species_only=True)  # one label is 0.4 points: the bar is not a coin toss
    texts = [a.sequence for a in abs_]
    step = LIMITS["max_items"]
    bodies = [{"model": "antiberty-species", "inputs": texts[i: i + step]} for i in range(0, len(texts), step)]
    results = [r for data in _post_all(server, "/v1/classify", bodies) for r in data["results"]]
    ref = _reference(packaged_model, packaged_artifact("antiberty-species"), "antiberty-species", "classification",
                     [space_residues(t) for t in texts], 512)
    labels = ["Camel", "Human", "Mouse", "Rabbit", "Rat", "Rhesus"]
    want = [labels[i] for i in np.concatenate([o["logits"] for o in ref]).argmax(-1)]
    got = [r["labels"][0] for r in results]
    assert sorted(results[0]["labels"]) == labels and abs(sum(results[0]["scores"]) - 1) < 1e-4
    assert float(np.mean(np.array(got) == np.array(want))) >= 0.97
    status, data = server.client().post("/v1/classify", {"inputs": texts[0], "top_k": 2})
    assert status == 200 and len(data["results"][0]["labels"]) == 2


def test_embed_matches_fp32(server, packaged_artifact, packaged_model):
    texts = bbc_sentences(48, seed=5)
    bodies = [{"inputs": texts[i: i + 8]} for i in range(0, len(texts), 8)]
    datas = _post_all(server, "/v1/embed", bodies)
    got = np.array([v for d in datas for v in d["embeddings"]])
    ref = _reference(packaged_model, packaged_artifact("minilm"), "minilm", "embedding", texts,
                     LIMITS["minilm_max_length"])
    want = np.concatenate([o["sentence_embedding"] for o in ref])
    cos = (got * want).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(want, axis=-1)
    assert got.shape == (48, 384) and datas[0]["dimensions"] == 384 and datas[0]["normalized"]
    assert np.allclose(np.linalg.norm(got, axis=-1), 1, atol=1e-4)
    assert cos.mean() >= 0.99 and cos.min() >= 0.97
    status, raw = server.client().post("/v1/embed", {"inputs": texts[0], "normalize": False})
    assert status == 200 and not raw["normalized"] and abs(np.linalg.norm(raw["embeddings"][0]) - 1) > 1e-3


def test_truncation_when_the_entry_says_so(server):
    long_text = " ".join(["word"] * 200)
    status, data = server.client().post("/v1/embed", {"inputs": long_text})
    assert status == 200
    assert data["usage"]["prompt_tokens"] == LIMITS["minilm_max_length"]


def test_openai_client(server):
    import openai

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0)
    texts = ["The food was delicious.", "Shares fell sharply on Monday."]
    resp = client.embeddings.create(model="minilm", input=texts)  # the SDK asks for base64 by default
    floats = client.embeddings.create(model="minilm", input=texts, encoding_format="float")
    assert [d.index for d in resp.data] == [0, 1] and resp.model == "minilm"
    assert resp.usage.prompt_tokens == resp.usage.total_tokens > 4
    a, b = np.array(resp.data[0].embedding), np.array(floats.data[0].embedding)
    assert a.shape == (384,) and np.allclose(a, b, atol=1e-3)
    _, native = server.client().post("/v1/embed", {"inputs": texts})  # same batch, same dynamic int8 scales
    assert float(np.dot(a, native["embeddings"][0])) > 0.9999
    single = client.embeddings.create(model="minilm", input="just one")
    assert len(single.data) == 1
    assert "minilm" in {m.id for m in client.models.list()}
    with pytest.raises(openai.NotFoundError, match="antiberty-species"):
        client.embeddings.create(model="no-such-model", input="x")
    with pytest.raises(openai.UnprocessableEntityError):
        client.embeddings.create(model="minilm", input="")


def test_openai_base64_is_little_endian_float32(server):
    status, data = server.client().post("/v1/embeddings", {"model": "minilm", "input": "hello",
                                                           "encoding_format": "base64"})
    assert status == 200
    vec = np.frombuffer(base64.b64decode(data["data"][0]["embedding"]), dtype="<f4")
    assert vec.shape == (384,) and abs(np.linalg.norm(vec) - 1) < 1e-4


def test_models_listing(server):
    status, data = server.client().get("/v1/models")
    assert status == 200 and data["object"] == "list"
    by_id = {m["id"]: m for m in data["data"]}
    assert set(by_id) == {"antiberty", "antiberty-species", "minilm"}
    assert by_id["antiberty"]["endpoint"] == "/v1/fill-mask"
    assert by_id["antiberty"]["details"]["mask_token"] == "[MASK]"
    assert by_id["antiberty-species"]["details"]["labels"][0] == "Camel"
    assert by_id["minilm"]["details"]["max_length"] == LIMITS["minilm_max_length"]
    status, one = server.client().get("/v1/models/minilm")
    assert status == 200 and one["task"] == "embedding"


def test_first_start_compresses_a_missing_artifact(open_server):
    log = open_server.log.read_text()
    assert "compressing it now" in log and "[5/5] writing the artifact" in log
    assert (open_server.config.parent / "artifacts" / "tiny-fp32" / "manifest.json").is_file()
    status, data = open_server.client().post("/v1/fill-mask", {"model": "tiny", "inputs": "the [MASK] said"})
    assert status == 200 and len(data["results"][0]["masks"]) == 1
