"""``python -m serve.bulk``: parse flags, call :func:`serve.bulk.run_bulk`."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from compress.catalog import ModelEntry


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m serve.bulk", description="Embed a corpus with a model's artifact on Ray Data and write "
        "Parquet (id, vector, model_version), one file per shard; a rerun resumes where the last one stopped.")
    p.add_argument("corpus", type=Path, help="JSON lines (.jsonl), Parquet (.parquet) or plain text (.txt), one "
                   "record per line")
    p.add_argument("--model", required=True, help="a models.yaml model name, or an artifact directory")
    p.add_argument("--out", required=True, type=Path, help="output directory of Parquet shards")
    p.add_argument("--config", default="models.yaml", type=Path, help="models.yaml for --model NAME")
    p.add_argument("--format", choices=("jsonl", "parquet", "text"), help="default: from the corpus's suffix")
    p.add_argument("--id-field", default="id", help="JSON field or Parquet column of the id (default id); "
                   "plain text: the line number")
    p.add_argument("--text-field", default="text", help="JSON field or Parquet column of the text (default text)")
    p.add_argument("--shard-size", default=1024, type=int, help="records per shard and output file (default 1024)")
    p.add_argument("--actors", default=1, type=int, help="embedding actors, one ONNX Runtime session each (default 1)")
    p.add_argument("--cpus-per-actor", type=int, help="CPUs (and threads) per actor (default: all over --actors)")
    p.add_argument("--max-shards", type=int, help="stop after this many shards (rerun to go on)")
    p.add_argument("--ray-address", help="join this Ray cluster (default: start a local one on 127.0.0.1)")
    p.add_argument("--force", action="store_true", help="delete what --out holds and start over")
    return p


def model_entry(model: str, config: Path) -> tuple[ModelEntry, Path]:
    """(entry, base directory) for a models.yaml name or an artifact directory.

    Raises:
        ConfigError: neither an artifact directory nor a model of ``config``.
    """
    from compress.catalog import ModelEntry
    from serve.config import ConfigError, load_entries

    path = Path(model)
    if (path / "manifest.json").is_file():
        name = re.sub(r"[^A-Za-z0-9._-]", "-", path.resolve().name).lstrip("._-") or "model"
        return ModelEntry(name=name, source=str(path.resolve()), artifact=str(path.resolve())), Path(".")
    entries = {e.name: e for e in load_entries(config)}
    if model not in entries:
        raise ConfigError(f"{model!r} is neither an artifact directory nor a model of {config} (models: "
                          f"{', '.join(entries)})")
    return entries[model], config.resolve().parent


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from serve.bulk import BulkJob, CorpusError, open_corpus, run_bulk
    from serve.config import ConfigError

    try:
        for flag in ("shard_size", "actors", "cpus_per_actor", "max_shards"):
            if getattr(args, flag) is not None and getattr(args, flag) < 1:
                raise ConfigError(f"--{flag.replace('_', '-')} must be at least 1")
        entry, base = model_entry(args.model, args.config)
        corpus = open_corpus(args.corpus, args.format, args.id_field, args.text_field)
        summary = run_bulk(BulkJob(corpus, entry, args.out, base, args.shard_size, args.actors, args.cpus_per_actor,
                                   args.max_shards, args.force, args.ray_address))
    except (ConfigError, CorpusError) as e:
        print(f"serve.bulk: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("serve.bulk: interrupted; finished shards are kept: rerun the same command to resume", file=sys.stderr)
        return 130
    left = summary.shards - summary.done_before - summary.embedded
    print(f"{summary.embedded} shards ({summary.records} texts) embedded in {summary.seconds:.1f} s "
          f"({summary.texts_per_second:.1f} texts/s), {summary.done_before} done before, {left} left; "
          f"version {summary.version}; output {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
