"""`compress` command line: parse flags, call the library. Heavy imports happen after parsing."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any

from compress import CompressError
from compress.flags import add_method_flags, recipe_from_flags

TASKS = ("fill-mask", "classification", "embedding")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="compress", description="Compress MLM encoders to validated ONNX artifacts.")
    p.add_argument("--debug", dest="debug_top", action="store_true", help="show tracebacks and library warnings")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="export, quantize and validate a model into an artifact directory")
    run.add_argument("model", nargs="?", help="model dir, .pt/.bin/.safetensors file, models.yaml name or hub id")
    run.add_argument("--all", action="store_true", help="compress every model in models.yaml with its recipe")
    run.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    add_method_flags(run)  # --int8, --int4, … and their options, from the registry
    run.add_argument("--out", type=Path, help="artifact directory (default artifacts/NAME-METHOD)")
    run.add_argument("--force", action="store_true", help="replace an existing artifact")
    run.add_argument("--models", default="models.yaml", help="models.yaml to look names up in")
    src = run.add_argument_group("source")
    src.add_argument("--config", help="config.json of the weights, when not beside them")
    src.add_argument("--tokenizer", help="tokenizer dir or vocab.txt (default: beside the weights, or one up)")
    src.add_argument("--task", choices=TASKS, help="default: read off the weights")
    src.add_argument("--head", help="export this extra linear head as the classifier (e.g. species)")
    src.add_argument("--labels", help="comma-separated class names for the head, in output order")
    src.add_argument("--heads", help="one artifact with several heads on one encoder, e.g. mlm,species,chain "
                     "(mlm: the fill-mask head; splade: a sparse-embedding head beside it; labels from the "
                     "models.yaml entry's heads)")  # compress/task_heads.py
    src.add_argument("--trust-pickle", action="store_true",
                     help="allow loading pickled modules (runs code from the file: only for files you trust)")
    q = run.add_argument_group("recipe")
    q.add_argument("--optimize", choices=("O1", "O2", "O3"), help="ONNX Runtime graph optimization level")
    q.add_argument("--opset", type=int, help="ONNX opset (default: optimum's for the family)")
    pr = run.add_argument_group("pruning (before quantization)")
    pr.add_argument("--prune", type=_prune_target, metavar="FRACTION|SPEEDUPx|auto",
                    help="remove this fraction of the encoder's parameters (0.4), or enough for this estimated "
                         "int8 CPU speed-up (1.6x), as whole heads and neurons ranked by importance on sample "
                         "data, then recover by distillation; auto: search layers removed (bisection, about "
                         "log2(layers) candidates) then width (one more) for the fastest model inside the --gate "
                         "tolerances, each candidate pruned, distilled for --recover-steps and scored on the gates; "
                         "speed is the int8 CPU cost model's estimate")
    pr.add_argument("--target-speedup", type=float, metavar="X",
                    help="with --prune auto (implied): stop at the first candidate inside the gates at X times the "
                    "estimated speed, or fail (writing nothing) saying by how much the best one missed")
    pr.add_argument("--prune-method", choices=("structured", "heads", "neurons", "layers", "magnitude"),
                    default=None, help="structured (default: heads and neurons ranked together), heads, neurons, "
                    "layers, or magnitude (unstructured zeros: smaller stored sparsely, not faster)")
    pr.add_argument("--recover-steps", type=int, default=None, help="distillation steps (default 300; 0: none)")
    pr.add_argument("--recover-data", help="text file, one example per line, or a task data file (JSONL, CSV, "
                    "TSV: its text fields), to score and distil on (default: in-domain data fitting the vocabulary)")
    pr.add_argument("--recover-hidden-weight", type=float, default=None, metavar="W",
                    help="weight of the hidden-state MSE against the task's distillation loss (default 1)")
    pr.add_argument("--recover-group-by-length", action=argparse.BooleanOptionalAction, default=None,
                    help="distil on batches of texts of similar length: less padding, faster (default: "
                    "when that saves a quarter of the padded tokens)")
    pr.add_argument("--recover-checkpoint", help="checkpoint file; an interrupted run resumes from it "
                    "(default: beside the artifact, removed when it is written)")
    v = run.add_argument_group("validation")
    v.add_argument("--validate", help="text file of validation examples (default: data fitting the vocabulary)")
    v.add_argument("--n-validate", type=int, default=None, help="size of the default validation set (256)")
    v.add_argument("--min-agreement", type=float, default=None,
                   help="gate for fill-mask/classification (default 0.99; 0.97 for int4)")
    v.add_argument("--min-cosine", type=float, default=None, help="gate for embeddings (default 0.99)")
    v.add_argument("--no-gate", dest="gate", action="store_false", default=None,
                   help="write the artifact even when it fails the accuracy gate (marked as failing)")
    v.add_argument("--gate", dest="gates", action="append", metavar="KIND[:FILE][:head=NAME][@TOL]",
                   help="a task gate, judging the artifact on your task against the original PyTorch model instead "
                   "of by agreement: retrieval:FILE (query/anchor + positive: MRR@10, nDCG@10), classification:FILE "
                   "(text, label: accuracy, macro-F1), token-classification:FILE (tokens, labels: accuracy), "
                   "fill-mask[:FILE] (top-1 of masked true tokens; default in-domain texts); TOL: points each "
                   "metric may lose (default 1); head=NAME picks a head of a multi-head artifact; repeat for "
                   "several (replaces the recipe's gates)")
    v.add_argument("--no-bench", dest="bench", action="store_false", help="skip the speed measurement")
    v.add_argument("--threads", type=int, help="CPU threads for validation and speed (default: all)")

    ad = sub.add_parser("adapt", help="continue masked-LM training on new-domain text, with replay, into a model dir")
    ad.add_argument("model", help="model dir, .pt/.bin/.safetensors file, models.yaml name or hub id")
    ad.add_argument("--data", required=True, help="new-domain text file, one text per line")
    ad.add_argument("--held-out", help="new-domain texts to score on, never trained on (default: 10%% of --data)")
    ad.add_argument("--replay", default="auto", help="original-domain text file, auto (packaged data fitting the "
                    "vocabulary) or none")
    ad.add_argument("--replay-ratio", type=float, help="fraction of each batch replayed (default 0.25)")
    ad.add_argument("--steps", type=int, help="optimizer steps (default 400)")
    ad.add_argument("--lr", type=float, help="peak learning rate (default 1e-4)")
    ad.add_argument("--batch-size", type=int, help="texts per step (default 16)")
    ad.add_argument("--add-mlm-head", action="store_true", help="give an encoder without a masked-LM head one, "
                    "tied to the input embeddings")
    ad.add_argument("--checkpoint", help="checkpoint file; an interrupted run resumes from it (default: beside --out)")
    ad.add_argument("--out", type=Path, required=True, help="model directory to write")
    ad.add_argument("--force", action="store_true", help="replace an existing --out")
    ad.add_argument("--models", default="models.yaml", help="models.yaml to look names up in")

    _train_parser(sub)

    show = sub.add_parser("show", help="print an artifact's report")
    show.add_argument("artifact", type=Path)
    return p


def _train_parser(sub: Any) -> None:
    tr = sub.add_parser("train", help="fine-tune task heads on one shared encoder, into a model dir")
    tr.add_argument("model", help="model dir (also one `compress train` wrote), weights file, models.yaml name "
                    "or hub id")
    tr.add_argument("--task", dest="tasks", action="append", required=True, metavar="NAME:KIND:FILE",
                    help="a head to train: KIND is classification, token-classification, embedding, rerank or mlm "
                    "(mlm's FILE may be auto); FILE is JSONL, CSV/TSV with a header, or text; repeat for several")
    tr.add_argument("--held-out", action="append", default=[], metavar="NAME=FILE",
                    help="task NAME's held-out examples (default: 10%% of its file, never trained on)")
    tr.add_argument("--weight", action="append", default=[], metavar="NAME=W", help="task NAME's loss weight (1)")
    tr.add_argument("--labels", action="append", default=[], metavar="NAME=A,B,…",
                    help="task NAME's class names in output order (default: sorted as found)")
    tr.add_argument("--keep-heads", default="", metavar="A,B",
                    help="heads the model has (e.g. species,chain, or embedding for a sentence embedder's output) "
                    "kept where they were: the original's outputs on the training texts are soft targets")
    tr.add_argument("--keep-weight", type=float, help="loss weight of each kept head (default 1)")
    tr.add_argument("--keep-on", metavar="FILE|auto", help="hold the kept heads on these texts (a batch a step) "
                    "instead of each step's inputs; then a trained head can be kept too (e.g. --keep-heads embedding "
                    "while training it contrastively)")
    tr.add_argument("--blend", type=float, metavar="SHARE",
                    help="after training, average the encoder's weights with the original's, the trained ones "
                    "weighing SHARE (WiSE-FT: less forgetting for a little less gain; default 1, no averaging)")
    tr.add_argument("--freeze-heads", default="", metavar="A,B", help="heads whose weights are not trained")
    tr.add_argument("--freeze-encoder", action="store_true", help="train the new heads only")
    tr.add_argument("--no-probe", dest="probe", action="store_false", default=None,
                    help="start new classification heads at random, not as a linear probe on the frozen encoder")
    tr.add_argument("--sampling", choices=("proportional", "uniform", "temperature"),
                    help="which task a step trains (default proportional to its examples)")
    tr.add_argument("--temperature", type=float, help="for --sampling temperature: size ** (1/T) (default 2)")
    tr.add_argument("--steps", type=int, help="optimizer steps (default: --epochs passes over the data, at least 100)")
    tr.add_argument("--epochs", type=float, help="passes over every task's data without --steps (default: 3, or 1 for "
                    "embedding and rerank tasks)")
    tr.add_argument("--batch-size", type=int, help="examples per step (default 16)")
    tr.add_argument("--lr", type=float, help="peak learning rate of the encoder (default 5e-5)")
    tr.add_argument("--head-lr", type=float, help="peak learning rate of new heads (default 1e-3)")
    tr.add_argument("--max-length", type=int, help="tokens per input (default 256)")
    tr.add_argument("--label-all-tokens", action="store_true", help="token-classification: label every "
                    "sub-token of a word, not only the first")
    tr.add_argument("--crop", type=float, help="token-classification: up to this fraction of a training example's "
                    "words dropped at either end, afresh each time, so labels come from context, not position "
                    "(default 0: off)")
    tr.add_argument("--negatives", type=int, help="rerank: irrelevant passages per query a step (default 3; mined "
                    "with BM25 when the file gives none)")
    tr.add_argument("--eval-every", type=int, help="steps between held-out scores (default 50; the last step is "
                    "always scored, so none falls in the half interval before it)")
    tr.add_argument("--seed", type=int, help="of the split, the batches and the masks (default 0)")
    tr.add_argument("--checkpoint", help="checkpoint file; an interrupted run resumes from it (default: beside --out)")
    tr.add_argument("--out", type=Path, required=True, help="model directory to write")
    tr.add_argument("--force", action="store_true", help="replace an existing --out")
    tr.add_argument("--models", default="models.yaml", help="models.yaml to look names up in")
    tr.add_argument("--trust-pickle", action="store_true", help="allow a pickled module as the source (runs code)")


def _default_name(spec: str) -> str:
    path = Path(spec)
    if path.suffix in (".bin", ".pt", ".pth", ".safetensors"):
        generic = path.stem in ("pytorch_model", "model")
        return (path.parent.name if generic else path.stem) or "model"
    return path.name or spec.replace("/", "-")


def _prune_target(value: str) -> tuple[float | None, float | None] | str:
    """``--prune``: "0.4" -> (fraction, None); "1.6x" -> (None, speed-up); "auto" -> "auto"."""
    text = value.strip().lower()
    if text == "auto":
        return "auto"
    try:
        number = float(text[:-1] if text.endswith("x") else text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: give a fraction of parameters (0.4), a speed-up (1.6x) "
                                         "or auto") \
            from None
    if text.endswith("x"):
        if not number > 1:
            raise argparse.ArgumentTypeError(f"{value!r}: a speed-up must be above 1x, e.g. 1.6x")
        return None, number
    if not 0 < number < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: a fraction lies between 0 and 1 (exclusive), e.g. 0.4; "
                                         "for a speed-up write 1.6x")
    return number, None


def _run_one(args: argparse.Namespace, spec: str) -> None:
    from compress.catalog import DEFAULT_CATALOG, load_catalog, requested_heads
    from compress.head_graph import load_heads
    from compress.pipeline import compress_model
    from compress.sources import load_entry, load_model

    entry = None
    models_file = Path(args.models)
    if not Path(spec).exists() and (models_file.is_file() or models_file != DEFAULT_CATALOG):
        catalog = load_catalog(models_file)
        if spec in catalog.names():
            entry = catalog.get(spec)
        elif "/" not in spec and not spec.endswith((".pt", ".bin", ".pth", ".safetensors")):
            catalog.get(spec)  # raises: unknown name, listing the known ones
    recipe = recipe_from_flags(args, entry.recipe if entry else None)
    method, prune = recipe.method, recipe.prune
    labels = args.labels.split(",") if args.labels else (entry.labels if entry else None)
    name = entry.name if entry else _default_name(spec)
    if args.out:
        out = args.out
    elif entry and (args.method is None or args.method == entry.recipe.method) and args.prune is None \
            and args.target_speedup is None:
        out = entry.default_artifact()
    else:
        tag = ("" if not prune else "pruned-auto-" if prune.method == "auto" else f"pruned{prune.speedup:g}x-"
               if prune.speedup
               else f"pruned{round(100 * (prune.fraction or 0))}-")
        out = Path("artifacts") / f"{name}-{tag}{method}"
    from compress.staging import check_writable

    check_writable(out, args.force)  # before the slow part
    overrides = dict(config=args.config, tokenizer=args.tokenizer, task=args.task, head=args.head, labels=labels,
                     trust_pickle=args.trust_pickle)
    print(f"loading {entry.source if entry else spec}", file=sys.stderr)
    from compress.catalog import resolve_location
    from compress.train.store import is_trained_dir

    location = resolve_location(entry.source, entry.requires) if entry else spec
    if entry and entry.recipe.train:  # the recipe trains heads first, into a model directory beside the artifact
        from compress.train.step import train_step

        location = str(train_step(entry, out, models=args.models, progress=_say))
        entry = None
    heads = requested_heads(args.heads, entry)
    if is_trained_dir(location):  # every head `compress train` recorded (or those --heads names)
        from compress.head_graph import trained_heads

        given = [f for f in ("task", "head", "labels", "config", "tokenizer") if getattr(args, f)]
        if given:
            raise CompressError(f"{location} records its heads, tokenizer and config (heads.json): drop --{given[0]}")
        sparse = [h for h in heads or [] if h.task == "sparse-embedding"]  # made from the LM head, not recorded
        model: Any = trained_heads(Path(location), [h.name for h in heads if h not in sparse] if heads else None,
                                   sparse)
        heads = model.heads
    elif heads:  # one encoder graph with several heads
        model = load_heads(heads, entry=entry, spec=spec, **overrides)
    else:
        model = load_entry(entry, **overrides) if entry else load_model(spec, **overrides)
    for note in (model.loaded if heads else model).notes:
        print(f"note: {note}", file=sys.stderr)
    compress_model(model, out, name=name, recipe=recipe, force=args.force, threads=args.threads, bench=args.bench,
                   command="compress " + " ".join(shlex.quote(a) for a in sys.argv[1:]))


def _run(args: argparse.Namespace) -> None:
    if args.all == bool(args.model):
        raise CompressError("give a MODEL or --all (not both)")
    if not args.all:
        _run_one(args, args.model)
        return
    from compress.catalog import load_catalog

    if args.out:
        raise CompressError("--out names one artifact; with --all each goes to its models.yaml path")
    for entry in load_catalog(args.models).models:
        _run_one(args, entry.name)


def _adapt(args: argparse.Namespace) -> None:
    from pydantic import ValidationError

    from compress.adapt import AdaptOptions, adapt_model

    given = {"held_out": args.held_out, "replay_ratio": args.replay_ratio, "steps": args.steps, "lr": args.lr,
             "batch_size": args.batch_size, "checkpoint": args.checkpoint}
    try:
        opts = AdaptOptions(data=args.data, replay=None if args.replay == "none" else args.replay,
                            add_mlm_head=args.add_mlm_head, **{k: v for k, v in given.items() if v is not None})
    except ValidationError as e:
        raise CompressError("; ".join(f"{'.'.join(map(str, x['loc'])) or 'options'}: {x['msg']}"
                                      for x in e.errors())) from None
    try:
        adapt_model(args.model, args.out, opts, force=args.force, models=args.models, progress=_say,
                    command="compress " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    except KeyboardInterrupt:
        _say("the last checkpoint is kept: rerun the same command to resume from it")
        raise
    print(f"wrote {args.out} (report: {args.out / 'adapt_report.md'})", file=sys.stderr)


def _per_task(values: list[str], flag: str) -> dict[str, str]:
    """``--flag NAME=VALUE`` repeated -> {NAME: VALUE}."""
    pairs = {}
    for v in values:
        name, sep, value = v.partition("=")
        if not sep or not name or not value:
            raise CompressError(f"{flag} {v!r}: write NAME=VALUE, NAME being a --task's name")
        pairs[name] = value
    return pairs


def _train_options(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from compress.train import TaskSpec, TrainOptions

    tasks = [TaskSpec.parse(t) for t in args.tasks]
    names = {t.name for t in tasks}
    extra: dict[str, dict[str, Any]] = {
        "held_out": _per_task(args.held_out, "--held-out"), "weight": _per_task(args.weight, "--weight"),
             "labels": {k: v.split(",") for k, v in _per_task(args.labels, "--labels").items()}}
    for field, given in extra.items():
        for name in set(given) - names:
            raise CompressError(f"--{field.replace('_', '-')} {name}=…: no --task is named {name!r}")
    given = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "head_lr": args.head_lr,
             "max_length": args.max_length, "negatives": args.negatives, "eval_every": args.eval_every,
             "seed": args.seed, "checkpoint": args.checkpoint, "sampling": args.sampling,
             "temperature": args.temperature, "keep_weight": args.keep_weight, "keep_on": args.keep_on,
             "crop": args.crop, "epochs": args.epochs, "blend": args.blend, "probe": args.probe}
    try:
        tasks = [t.model_copy(update={k: v[t.name] for k, v in extra.items() if t.name in v}) for t in tasks]
        return TrainOptions.model_validate({
            "tasks": [t.model_dump() for t in tasks], "label_all_tokens": args.label_all_tokens,
            "keep_heads": [h for h in args.keep_heads.split(",") if h],
            "freeze_heads": [h for h in args.freeze_heads.split(",") if h], "freeze_encoder": args.freeze_encoder,
            **{k: v for k, v in given.items() if v is not None}})
    except (ValidationError, ValueError) as e:
        errors = e.errors() if isinstance(e, ValidationError) else [{"loc": (), "msg": str(e)}]
        raise CompressError("; ".join(f"{'.'.join(map(str, x['loc'])) or 'options'}: {x['msg']}"
                                      for x in errors)) from None


def _train(args: argparse.Namespace) -> None:
    from compress.train import train_model

    opts = _train_options(args)
    try:
        train_model(args.model, args.out, opts, force=args.force, models=args.models, trust_pickle=args.trust_pickle,
                    progress=_say, command="compress " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    except KeyboardInterrupt:
        _say("the last checkpoint is kept: rerun the same command to resume from it")
        raise
    print(f"wrote {args.out} (report: {args.out / 'train_report.md'})", file=sys.stderr)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    debug = args.debug_top or getattr(args, "debug", False)
    logging.basicConfig(level=logging.INFO if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not debug:
        warnings.filterwarnings("ignore")
        import os

        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        if args.command in ("run", "adapt"):
            from compress.extras import require_compress

            require_compress(f"compress {args.command}")
        if args.command == "run":
            _run(args)
        elif args.command == "adapt":
            _adapt(args)
        elif args.command == "train":
            _train(args)
        elif args.command == "show":
            from compress.artifact import read_manifest

            read_manifest(args.artifact)
            print((args.artifact / "report.md").read_text())
        return 0
    except CompressError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; no artifact was written", file=sys.stderr)
        return 130
    except Exception as e:
        if debug:
            raise
        print(f"error: {type(e).__name__}: {e}\n(rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
