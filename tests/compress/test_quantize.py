from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compress.cpu import detect_isa
from compress.data import encode, mask_tokens
from compress.export import TaskGraph, export_onnx, optimize_graph
from compress.quantize import QuantContext, get_method, methods, quantize
from compress.quantize.embedding_rows import quantize_rows
from compress.quantize.fp16 import Fp16Config
from compress.quantize.graph import file_bytes, group_nodes, op_counts, weight_nodes
from compress.quantize.int4 import Int4Config
from compress.quantize.int8_dynamic import REDUCE_RANGE, Int8DynamicConfig
from compress.quantize.int8_static import Int8StaticConfig
from compress.quantize.smooth import smooth_activations
from compress.runtime import OnnxRunner
from tests.conftest import SENTENCES, build_tiny


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    """A BERT fill-mask graph wide enough for weights to dominate the file (hidden 256, 4 layers)."""
    from transformers import BertConfig, BertForMaskedLM

    d = tmp_path_factory.mktemp("q")
    _, tok = build_tiny(d / "src", "bert", "fill-mask")
    import torch

    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=256, num_hidden_layers=4,
                                       num_attention_heads=4, intermediate_size=1024,
                                       max_position_embeddings=64)).eval()
    graph = TaskGraph(model, "fill-mask", mask_token_id=tok.mask_token_id)
    export_onnx(graph, d / "fp32.onnx")
    enc, _ = mask_tokens(encode(tok, SENTENCES[:16], 64), tok, rate=0.3)
    return d / "fp32.onnx", enc


def _snr_db(a: Path, b: Path, enc) -> float:
    """Signal-to-noise ratio of b's logits against a's (random models have near-tied top-1s, so
    agreement is the wrong yardstick here; the integration tests assert agreement on real models)."""
    x = OnnxRunner(a, threads=1)(enc)["mask_logits"]
    y = OnnxRunner(b, threads=1)(enc)["mask_logits"]
    return float(10 * np.log10(np.sum(x**2) / np.sum((x - y) ** 2)))


def test_registry_lists_methods_on_a_miss():
    assert {"int8", "int8-static", "int4", "fp16"} <= set(methods())
    with pytest.raises(ValueError, match=r"registered: .*int4"):
        get_method("int3")


def test_int8_quantizes_every_weight_matmul(fp32, tmp_path):
    src, enc = fp32
    n_weight_matmuls = len(weight_nodes(src, ("MatMul",)))
    assert n_weight_matmuls == 4 * 6 + 2  # q, k, v, o, up, down per layer + LM transform + decoder
    preset = Int8DynamicConfig().for_cpu(detect_isa())  # what compress picks on this CPU
    info = quantize("int8", src, tmp_path / "q.onnx", preset, QuantContext())
    counts = op_counts(tmp_path / "q.onnx")
    assert counts.get("MatMulInteger", 0) + counts.get("DynamicQuantizeMatMul", 0) == n_weight_matmuls
    assert counts.get("MatMul", 0) == op_counts(src)["MatMul"] - n_weight_matmuls  # attention scores stay fp32
    assert info["weight_type"] == "int8"
    assert file_bytes(src) / file_bytes(tmp_path / "q.onnx") > 3.5
    assert _snr_db(src, tmp_path / "q.onnx", enc) > 30


def test_int8_after_fusion_quantizes_attention_and_embedding_tables(fp32, tmp_path):
    from types import SimpleNamespace

    src, enc = fp32
    optimize_graph(src, tmp_path / "o2.onnx", "O2", SimpleNamespace(num_attention_heads=4, hidden_size=256))
    fused = op_counts(tmp_path / "o2.onnx")
    assert fused.get("Attention") == 4 and fused.get("EmbedLayerNormalization") == 1
    groups = group_nodes(weight_nodes(tmp_path / "o2.onnx", get_method("int8").op_types))
    assert all(any(n.startswith("Attention_") for n in groups[f"layer.{i}"]) for i in range(4))
    preset = Int8DynamicConfig().for_cpu(detect_isa())
    quantize("int8", tmp_path / "o2.onnx", tmp_path / "q.onnx", preset, QuantContext())
    counts = op_counts(tmp_path / "q.onnx")
    assert counts.get("QAttention") == 4 and counts.get("QEmbedLayerNormalization") == 1
    assert "Attention" not in counts and "EmbedLayerNormalization" not in counts
    assert file_bytes(src) / file_bytes(tmp_path / "q.onnx") > 3.5  # the tables are int8 too
    assert _snr_db(src, tmp_path / "q.onnx", enc) > 25


def test_excluded_nodes_stay_fp32(fp32, tmp_path):
    src, _ = fp32
    nodes = weight_nodes(src, ("MatMul",))
    groups = group_nodes(nodes)
    assert {"layer.0", "layer.1", "layer.2", "layer.3"} <= set(groups)
    keep = groups["layer.0"]
    quantize("int8", src, tmp_path / "q.onnx", Int8DynamicConfig(), QuantContext(), exclude=keep)
    counts = op_counts(tmp_path / "q.onnx")
    assert counts.get("MatMulInteger", 0) + counts.get("DynamicQuantizeMatMul", 0) == len(nodes) - len(keep)


def test_int8_presets_follow_the_instruction_set():
    assert REDUCE_RANGE["avx512_vnni"] is False and REDUCE_RANGE["avx2"] is True
    assert Int8DynamicConfig().for_cpu("avx512_vnni").reduce_range is False
    assert Int8DynamicConfig().for_cpu("avx2").reduce_range is True
    assert Int8DynamicConfig(reduce_range=False).for_cpu("avx2").reduce_range is False  # a recipe's choice wins


def test_int4_uses_matmulnbits_and_is_small(fp32, tmp_path):
    src, enc = fp32
    n = len(weight_nodes(src, ("MatMul",)))
    quantize("int4", src, tmp_path / "q4.onnx", Int4Config(block_size=32), QuantContext())
    counts = op_counts(tmp_path / "q4.onnx")
    assert counts.get("MatMulNBits", 0) == n
    assert file_bytes(src) / file_bytes(tmp_path / "q4.onnx") > 4.5
    assert _snr_db(src, tmp_path / "q4.onnx", enc) > 14
    with pytest.raises(ValueError, match="power of two"):
        quantize("int4", src, tmp_path / "bad.onnx", Int4Config(block_size=24), QuantContext())


def test_static_int8_is_qdq_and_needs_calibration(fp32, tmp_path):
    src, enc = fp32
    with pytest.raises(ValueError, match="calibration"):
        quantize("int8-static", src, tmp_path / "s.onnx", Int8StaticConfig(calibration="texts.txt"), QuantContext())
    shorter = {k: v[:, : v.shape[1] // 2].copy() for k, v in enc.items()}  # batches differ in length
    quantize("int8-static", src, tmp_path / "s.onnx", Int8StaticConfig(calibration="texts.txt"),
             QuantContext(calibration=[enc, shorter]))
    counts = op_counts(tmp_path / "s.onnx")
    assert counts.get("QuantizeLinear", 0) > 0 and counts.get("DequantizeLinear", 0) > 0
    assert _snr_db(src, tmp_path / "s.onnx", enc) > 24


def test_fp16_halves_the_file(fp32, tmp_path):
    src, enc = fp32
    quantize("fp16", src, tmp_path / "h.onnx", Fp16Config(), QuantContext())
    assert 1.8 < file_bytes(src) / file_bytes(tmp_path / "h.onnx") < 2.2
    assert _snr_db(src, tmp_path / "h.onnx", enc) > 50


def test_row_scales_keep_small_rows_precise_where_one_scale_cannot():
    rng = np.random.default_rng(0)
    table = rng.normal(0, 0.02, (100, 64)).astype(np.float32)
    table[0] *= 50  # one loud row, as embedding tables have
    q, scale = quantize_rows(table)
    assert q.dtype == np.int8 and scale.shape == (100, 1)
    err = np.abs(q * scale - table)
    assert np.all(err <= scale / 2 + 1e-7)  # every row within half its own step
    one_scale = np.abs(table).max() / 127
    per_tensor_err = np.abs(np.rint(table / one_scale) * one_scale - table)
    assert err[1:].mean() < per_tensor_err[1:].mean() / 10


def test_int8_embedding_tables_become_int8_rows(fp32, tmp_path):
    import onnx

    src, enc = fp32
    info = quantize("int8", src, tmp_path / "q.onnx", Int8DynamicConfig(), QuantContext())
    tables = weight_nodes(src, ("Gather",))
    assert sorted(info["embedding_rows"]) == sorted(tables) and tables
    model = onnx.load(str(tmp_path / "q.onnx"))
    dtypes = {i.name: i.data_type for i in model.graph.initializer}
    assert all(dtypes[n] == onnx.TensorProto.INT8 for n in dtypes if n.endswith("_int8_rows"))
    assert not any(n.endswith("word_embeddings.weight") for n in dtypes)  # the fp32 table is gone
    assert _snr_db(src, tmp_path / "q.onnx", enc) > 30
    kept = quantize("int8", src, tmp_path / "k.onnx", Int8DynamicConfig(), QuantContext(), exclude=tables[:1])
    assert tables[0] not in kept["embedding_rows"] and len(kept["embedding_rows"]) == len(tables) - 1


@pytest.fixture(scope="module")
def outlier_fp32(fp32, tmp_path_factory):
    """The fp32 graph with one hidden channel 40x louder after every LayerNorm, as trained encoders have."""
    import onnx
    from onnx import numpy_helper

    src, enc = fp32
    model = onnx.load(str(src))
    norms = {n.input[1] for n in model.graph.node if n.op_type == "LayerNormalization"}
    for init in model.graph.initializer:
        if init.name in norms:
            gamma = numpy_helper.to_array(init).copy()
            gamma[7] *= 40
            init.CopyFrom(numpy_helper.from_array(gamma, init.name))
    path = tmp_path_factory.mktemp("outlier") / "fp32.onnx"
    onnx.save(model, str(path))
    return path, enc


def test_smoothing_is_exact_in_fp32_and_evens_out_the_channels(outlier_fp32, tmp_path):
    import onnx

    from compress.quantize.smooth import channel_peaks, weight_matmuls_by_input

    src, enc = outlier_fp32
    model = onnx.load(str(src))
    inputs = list(weight_matmuls_by_input(model))
    before = channel_peaks(model, inputs, [enc])
    done = smooth_activations(model, [enc], alpha=0.7)
    assert sorted(done) == sorted(inputs)
    assert sum(n.op_type == "Mul" and n.name.endswith("_smooth") for n in model.graph.node) == len(inputs)
    onnx.save(model, str(tmp_path / "s.onnx"))
    assert _snr_db(src, tmp_path / "s.onnx", enc) > 80  # the same function, up to float rounding
    after = channel_peaks(model, [f"{x}_smoothed" for x in inputs], [enc])
    spread = [p.max() / np.median(p) for p in before.values()]
    spread_after = [p.max() / np.median(p) for p in after.values()]
    assert np.median(spread_after) < np.median(spread) / 3


def test_int8_smooths_on_calibration_batches_and_gains_accuracy(outlier_fp32, tmp_path):
    src, enc = outlier_fp32
    plain = quantize("int8", src, tmp_path / "plain.onnx", Int8DynamicConfig(smooth_alpha=None),
                     QuantContext(calibration=[enc]))
    smooth = quantize("int8", src, tmp_path / "smooth.onnx", Int8DynamicConfig(), QuantContext(calibration=[enc]))
    # per layer: query, key and value read one input, then attention output, FFN up, FFN down; plus the LM head
    assert "smoothed_activations" not in plain and smooth["smoothed_activations"] == 4 * 4 + 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.onnx", "smooth.onnx"]  # no temporary left
    assert _snr_db(src, tmp_path / "smooth.onnx", enc) > _snr_db(src, tmp_path / "plain.onnx", enc) + 3


def test_smoothing_a_graph_too_large_for_one_file_keeps_its_weights_beside_it(outlier_fp32, tmp_path, monkeypatch):
    from compress.quantize import graph

    src, enc = outlier_fp32
    monkeypatch.setattr(graph, "ONE_FILE_BYTES", 0)  # as if over protobuf's 2 GiB
    info = quantize("int8", src, tmp_path / "q.onnx", Int8DynamicConfig(), QuantContext(calibration=[enc]))
    assert info["smoothed_activations"] == 4 * 4 + 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.onnx"]  # the smoothed graph and its data are gone
    assert _snr_db(src, tmp_path / "q.onnx", enc) > 25
