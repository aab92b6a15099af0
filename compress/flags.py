"""`compress run`'s recipe flags: the method flags and their options are generated from the registry, and
the flags given become a :class:`~compress.recipe.Recipe` over the models.yaml entry's own.

A method's config field ``block_size: int`` becomes ``--block-size N``, a ``bool`` field
``--quantize-embeddings/--no-quantize-embeddings``, a ``Literal`` field a choice; fields of other types
(tuples, nested models) stay recipe-only (models.yaml).
"""

from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from compress import CompressError
from compress.quantize import get_method, methods
from compress.recipe import Recipe

PRUNE_FLAGS = {"prune_method": "method", "recover_steps": "recover_steps", "recover_data": "recover_data",
               "recover_checkpoint": "checkpoint", "recover_hidden_weight": "recover_hidden_weight",
               "recover_group_by_length": "recover_group_by_length", "target_speedup": "target_speedup"}
VALIDATION_FLAGS = {"validate": "data", "n_validate": "n", "min_agreement": "min_agreement",
                    "min_cosine": "min_cosine", "gate": "gate", "gates": "gates"}
OPTION_PREFIX = "method_option_"


def _flag_kind(annotation: Any) -> dict[str, Any] | None:
    """argparse keywords for a config field's type; None when it has no flag."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if typing.get_origin(annotation) is Literal:
        return {"choices": typing.get_args(annotation)}
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if annotation in (int, float, str):
        return {"type": annotation}
    return None


def method_options() -> dict[str, tuple[list[str], Any]]:
    """Each flag-able config field: the methods that have it, and one of its field infos (for type and help)."""
    options: dict[str, tuple[list[str], Any]] = {}
    for name in methods():
        for field, info in get_method(name).config_cls.model_fields.items():
            if field != "method" and _flag_kind(info.annotation) is not None:
                owners, known = options.setdefault(field, ([], info))
                owners.append(name)
                if info.description and not known.description:
                    options[field] = (owners, info)
    return options


def add_method_flags(parser: argparse.ArgumentParser) -> None:
    """The mutually exclusive method flags and every method option, from the registry."""
    group = parser.add_mutually_exclusive_group()
    for name in methods():
        group.add_argument(f"--{name}", dest="method", action="store_const", const=name,
                           help=get_method(name).summary)
    opts = parser.add_argument_group("method options (each applies to the methods named)")
    for field, (owners, info) in sorted(method_options().items()):
        about = (info.description or field.replace("_", " ")).rstrip(".")
        default = "" if info.default is None or info.is_required() or len(owners) > 1 else f"; default {info.default}"
        kind = _flag_kind(info.annotation) or {}
        if "type" in kind:
            kind["metavar"] = "FILE" if kind["type"] is str else "N" if kind["type"] is int else "X"
        opts.add_argument(f"--{field.replace('_', '-')}", dest=OPTION_PREFIX + field, default=None,
                          help=f"{about} ({', '.join(owners)}{default})", **kind)


def _quantize_part(args: argparse.Namespace, base: Recipe) -> dict[str, Any]:
    method = args.method or base.method
    given = {k[len(OPTION_PREFIX):]: v for k, v in vars(args).items() if k.startswith(OPTION_PREFIX) and v is not None}
    fields = get_method(method).config_cls.model_fields
    for field in given:
        if field not in fields:
            owners = method_options()[field][0]
            raise CompressError(f"--{field.replace('_', '-')} applies to {', '.join(owners)}, not {method}")
    kept = base.quantize.model_dump() if method == base.method else {"method": method}
    return {**kept, **given}


def _prune_part(args: argparse.Namespace, base: Recipe) -> dict[str, Any] | None:
    given = {step: getattr(args, flag) for flag, step in PRUNE_FLAGS.items() if getattr(args, flag) is not None}
    prune = "auto" if args.prune is None and args.target_speedup is not None else args.prune
    if prune == "auto" and args.prune_method:
        raise CompressError("--prune auto picks the layers and the width itself: drop --prune-method")
    if prune == "auto" and args.recover_checkpoint:
        raise CompressError("--prune auto does not checkpoint its candidates (each is one short recovery): "
                            "drop --recover-checkpoint")
    if prune is None and base.prune is None:
        if given:
            raise CompressError("--prune-method/--recover-* need --prune FRACTION, --prune SPEEDUPx or --prune auto")
        return None
    if args.recover_data and not Path(args.recover_data).is_file():
        raise CompressError(f"--recover-data {args.recover_data}: no such file")
    part = base.prune.model_dump() if base.prune is not None else {}
    if prune == "auto":
        part.update(method="auto", fraction=None, speedup=None)
    elif isinstance(prune, tuple):
        part["fraction"], part["speedup"] = prune
        if part.get("method") == "auto":
            part["method"], part["target_speedup"] = "structured", None
    return {**part, **given}


def recipe_from_flags(args: argparse.Namespace, base: Recipe | None = None) -> Recipe:
    """The recipe ``args`` ask for: the flags given, over ``base`` (a models.yaml entry's recipe).

    Raises:
        CompressError: a flag that does not apply to the method, or a value the recipe refuses.
    """
    base = base or Recipe()
    data = base.model_dump()
    data["quantize"] = _quantize_part(args, base)
    data["prune"] = _prune_part(args, base)
    data.update({k: getattr(args, k) for k in ("optimize", "opset") if getattr(args, k) is not None})
    given = {step: getattr(args, flag) for flag, step in VALIDATION_FLAGS.items() if getattr(args, flag) is not None}
    data["validation"] = {**data["validation"], **given}
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        raise CompressError("; ".join(_flag_message(err) for err in e.errors())) from None


def _flag_message(err: Any) -> str:
    """A pydantic error as the flag it came from: ``--block-size: ...``."""
    loc = [str(p) for p in err["loc"]]
    if loc[:2] == ["validation", "gates"]:
        loc = ["gate"]  # --gate TEXT: the message names the gate
    flag = {v: k for k, v in {**PRUNE_FLAGS, **VALIDATION_FLAGS}.items()}.get(loc[-1], loc[-1]) if loc else ""
    if loc[:1] == ["prune"] and loc[-1] in ("fraction", "speedup"):
        flag = "prune"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"--{flag.replace('_', '-')}: {msg}" if flag else msg
