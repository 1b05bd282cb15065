"""A kernel described for people: each parameter's meaning, type and default, each output.

The meaning of a parameter is the first line of its entry in the numpydoc ``Parameters``
section of its dataclass (or of the family class it inherits it from): the docstring is
the one place it is written, and the contract suite checks every parameter has one.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from typing import Any, Literal

from kernels.base import Kernel

_SECTION = re.compile(r"\n([A-Z][A-Za-z ]+)\n-{3,}\n")


def parameter_meanings(params_class: type) -> dict[str, str]:
    """``{name: first sentence of its description}`` over the numpydoc sections of the MRO.

    A class's own entry for a name replaces the entry of a class it inherits from.
    """
    texts: dict[str, list[str]] = {}
    for klass in reversed(params_class.__mro__):
        doc = inspect.cleandoc(klass.__dict__.get("__doc__") or "")
        parts = _SECTION.split("\n" + doc)
        for body in (b for t, b in zip(parts[1::2], parts[2::2]) if t == "Parameters"):
            names: list[str] = []
            for line in body.splitlines():
                if line and not line[0].isspace():
                    names = [n.strip() for n in line.split(",")]
                    texts.update({n: [] for n in names})
                elif line.strip():
                    for n in names:
                        texts[n].append(line.strip())
    return {n: _first_sentence(" ".join(t)).replace("``", "`") for n, t in texts.items() if t}


def _first_sentence(text: str) -> str:
    end = re.search(r"(?<!\bal)(?<!\b[a-z])\.(\s+(?=[A-Z`(])|$)", text)
    return text[: end.start() + 1] if end else text


def type_name(hint: Any) -> str:
    """``float``, ``int``, ``one of 'a', 'b'``, ``float or none``, ``list of float``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("none" if a is type(None) else type_name(a) for a in args)
    if origin is tuple:
        return "list of " + (type_name(args[0]) if args else "values")
    return getattr(hint, "__name__", str(hint))


def describe(kernel_class: type[Kernel]) -> str:
    """Parameters (``*`` = shape parameter: cannot be swept) and every output a kernel can produce."""
    doc = (kernel_class.__doc__ or "").strip().splitlines()
    lines = [f"{kernel_class.name} (v{kernel_class.version}): {doc[0] if doc else ''}"]
    lines.append("  parameters (* sets output shapes: fix it, do not sweep it):")
    meanings = parameter_meanings(kernel_class.Params)
    hints = typing.get_type_hints(kernel_class.Params)
    for f in dataclasses.fields(kernel_class.Params):
        star = "*" if f.name in kernel_class.shape_params else " "
        lines.append(f"   {star} {f.name} = {f.default!r}  ({type_name(hints[f.name])})")
        lines.append(f"        {meanings.get(f.name, '(undocumented)')}")
        if f.name == kernel_class.parts:
            lines.append("        A point's parts: each runs as a task of its own, on any free worker.")
    lines.append("  outputs (name(dims): meaning [units]; `if p`: only when shape parameter p is set):")
    for name, out in kernel_class.outputs.items():
        units = f" [{out.units}]" if out.units else ""
        when = f"  if {out.when}" if out.when else ""
        formula = _formula(out.description)
        symbol = out.long_name.split(" ")[-1]
        if formula.startswith(f"{symbol} = "):  # "overlap Q" and "Q = W W^T / d": "overlap Q = W W^T / d"
            formula = formula[len(symbol) + 1 :]
        codes = ", ".join(f"{i} {m}" for i, m in enumerate(out.flags or ()))
        lines.append(
            f"    {name}({', '.join(out.dims)}): {out.long_name}"
            f"{f' {formula}' if formula else ''}{units}{f' (codes: {codes})' if codes else ''}{when}"
        )
    return "\n".join(lines)


def _formula(description: str | None) -> str:
    """The formula a description opens with ("Q = W W^T / d; ..."), if it is short; else ""."""
    clause = (description or "").split(";")[0].split(", ")[0].strip()
    short = 0 < len(clause) <= 32 and clause.count("(") == clause.count(")")
    return clause if short and any(c in clause for c in "=[^/") else ""
