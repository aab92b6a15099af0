"""The serving report for people: one table per model, the targets it is judged by, and a plot of
throughput and p99 latency against the number of clients."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# What the serving report is judged by (shown, never asserted: speed varies with the machine).
TARGETS = {"vs_in_process_16": 0.9, "goodput_ratio": 0.95, "rejected_p99_ms": 50.0, "p99_ratio": 2.0}


def _row(lv: dict[str, Any]) -> str:
    return (f"| {lv['clients']} | {lv['throughput']:.1f} | {lv['vs_plain']:.2f} | {lv['vs_in_process']:.2f} | "
            f"{lv['ok_p50_ms']:.0f} | {lv['ok_p99_ms']:.0f} | {lv['rejected']:.0f} | {lv['rejected_p99_ms']:.0f} | "
            f"{lv['server_errors']:.0f} | "
            f"{lv['formed_batch']:.1f} | {lv['pass_size']:.1f} | {lv['server_cpu_ms_per_request']:.1f} | "
            f"{lv['rss_before_bytes'] / 1e6:.0f} → {lv['rss_after_bytes'] / 1e6:.0f} |")


def checks(m: dict[str, Any], patient: bool = True) -> list[str]:
    """The model's figures against :data:`TARGETS`, one line each (✔ or ✗). With clients that ignore
    Retry-After (not ``patient``) the server holds their 429s by design: their speed is shown, not judged."""
    by = {lv["clients"]: lv for lv in m["levels"]}
    out = []
    base = by.get(16)
    if base:
        ok = base["vs_plain"] >= TARGETS["vs_in_process_16"]
        out.append(f"HTTP at 16 clients ÷ a plain session at its best batch: {base['vs_plain']:.2f} (target ≥ "
                   f"{TARGETS['vs_in_process_16']}) {'✔' if ok else '✗'}; ÷ the best in-process run of all "
                   f"(the engine's way, streams at once): {base['vs_in_process']:.2f}")
    for clients, lv in sorted(by.items()):
        if clients <= 16 or not base:
            continue
        good = lv["throughput"] / base["throughput"] if base["throughput"] else 0.0
        p99 = lv["ok_p99_ms"] / base["ok_p99_ms"] if base["ok_p99_ms"] else 0.0
        rss = lv["rss_after_bytes"] / lv["rss_before_bytes"] - 1 if lv["rss_before_bytes"] else 0.0
        fast = lv["probe_rejected_p99_ms"] if lv["probe_rejected"] else lv["rejected_p99_ms"]
        ok = (good >= TARGETS["goodput_ratio"] and p99 <= TARGETS["p99_ratio"] and lv["server_errors"] == 0
              and (fast <= TARGETS["rejected_p99_ms"] or not patient) and abs(rss) <= 0.1)
        held = "" if patient else " (held: the clients ignore Retry-After)"
        out.append(f"{clients} clients: goodput {good:.2f}x of 16's, admitted p99 {p99:.2f}x, "
                   f"429 p99 {fast:.0f} ms{held} "
                   f"(timed by a client in its own process, {lv['probe_rejected']:.0f} 429s; the load's many threads "
                   f"timed {lv['rejected_p99_ms']:.0f} ms), {lv['server_errors']:.0f} 5xx, RSS {rss:+.1%} over the "
                   f"burst {'✔' if ok else '✗'}")
    if "soak" in m:
        s = m["soak"]
        out.append(f"soak {s['seconds']:.0f} s: RSS {s['rss_start_bytes'] / 1e6:.0f} → "
                   f"{s['rss_end_bytes'] / 1e6:.0f} MB ({s['rss_change']:+.1%}; target within ±5 %), "
                   f"{s['errors']} errors "
                   f"{'✔' if abs(s['rss_change']) <= 0.05 and not s['errors'] else '✗'}")
    if "swap" in m:
        w = m["swap"]
        ok = w["errors"] == 0 and w["new_version_after_s"] is not None and w["new_version_after_s"] <= 30
        new = f"{w['new_version_after_s']:.1f} s" if w["new_version_after_s"] is not None else "never"
        out.append(f"live swap under {w['clients']} clients: {w['requests']} requests, {w['errors']} failed, version "
                   f"{w['version_before']} → {w['version_after']} answering after {new} (target: none failed, "
                   f"≤ 30 s) {'✔' if ok else '✗'}")
    if "drain" in m:
        d = m["drain"]
        ok = d["cut"] == 0 and d["other"] == 0 and d["exit_code"] == 0 and (d["ready_503_s"] or 9) < 1
        out.append(f"drain: /ready 503 after {d['ready_503_s'] or float('nan'):.2f} s, {d['answered']} answered "
                   f"({d['told_to_close']} with Connection: close), {d['refused']} refused at connect, "
                   f"{d.get('reset', 0)} reset before the server read them, {d['cut']} cut mid-flight, exit "
                   f"{d['exit_code']} after {d['exit_s']:.1f} s {'✔' if ok else '✗'}")
    return out


def markdown(report: dict[str, Any]) -> str:
    host = report["host_kind"] + (f" (HTTP through {report['ray_ingress']})" if report.get("ray_ingress") else "")
    lines = [f"## Serving: {host} host, {report['threads']} threads, {report['cpu']['model']} "
             f"({report['cpu']['isa']})" + (" — **cut short by --timeout**" if report["timed_out"] else ""), ""]
    ask_again = ("ask again at once after a 429 (ignoring its Retry-After)" if report.get("ignore_retry_after")
                 else "wait out a 429's Retry-After")
    for m in report["models"]:
        ip, t = m["in_process"], m["texts"]
        unit = "(headline, paragraph) pair" if m["task"] == "rerank" else "text"
        picked = ", each vector's terms picked as the server does" if m["task"] == "sparse-embedding" else ""
        lines += [f"### {m['model']} ({m['task']}, POST {m['endpoint']}, {m['method']})", "",
                  f"{t['count']} {unit}s, {t['mean_tokens']:.0f} tokens mean, p95 {t['p95_tokens']}; one {unit} per "
                  f"request, clients {ask_again}. In-process (same artifact, texts sorted by length, "
                  f"tokenization included{picked}): **{ip['per_s']:.1f}/s** at its best batch ({ip['batch_size']}, "
                  f"{ip.get('streams', 1)} at once{', plain session' if ip['plain'] else ''}; "
                  + ", ".join(f"batch {b}: {v:.1f}" for b, v in ip["by_batch"].items()) + "; BxS: S batches at "
                  "once; B plain: one at a time in a session with onnxruntime's defaults). A plain session at its "
                  f"best batch: **{ip['plain_per_s']:.1f}/s**.", "",
                  "| clients | answered/s | ÷ plain session | ÷ best of all | p50 ms | p99 ms | 429s | 429 p99 ms | "
                  "5xx | formed batch | pass size | server CPU ms/answer | RSS MB |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        lines += [_row(lv) for lv in m["levels"]]
        lines += ["", *[f"- {c}" for c in checks(m, not report.get("ignore_retry_after"))], ""]
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> bool:
    """Throughput and p99 against clients, one panel pair per model; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    models = report["models"]
    fig, axes = plt.subplots(len(models), 2, figsize=(11, 3.6 * len(models)), squeeze=False)
    for (ax_t, ax_p), m in zip(axes, models, strict=True):
        xs = [lv["clients"] for lv in m["levels"]]
        ax_t.plot(xs, [lv["throughput"] for lv in m["levels"]], marker="o", label="HTTP, answered/s")
        ax_t.axhline(m["in_process"]["per_s"], color="grey", ls="--", label="in-process, best batch")
        ax_t.set_title(f"{m['model']}: throughput")
        ax_t.set_ylabel("inputs / s")
        ax_t.set_ylim(0, 1.15 * max([m["in_process"]["per_s"], *(lv["throughput"] for lv in m["levels"])]))
        ax_p.plot(xs, [lv["ok_p99_ms"] for lv in m["levels"]], marker="o", color="#c44e52", label="p99 answered")
        ax_p.plot(xs, [lv["ok_p50_ms"] for lv in m["levels"]], marker="s", color="#dd8452", label="p50 answered")
        ax_p.set_title(f"{m['model']}: latency")
        ax_p.set_ylabel("ms")
        ax_p.set_ylim(bottom=0)
        for ax in (ax_t, ax_p):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrent clients")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_reports(report: dict[str, Any], out: Path) -> None:
    """``http.json``, ``http.md`` and ``http.png`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "http.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    (out / "http.md").write_text(markdown(report) + "\n")
    plot(report, out / "http.png")
