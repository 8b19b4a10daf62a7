"""A griffe extension for the docs build: cnnx's docstrings use two reST habits
that Markdown reads differently, so they are fenced before rendering.

- A paragraph ending in ``::`` followed by an indented block (a literal block):
  the block becomes a fenced ``text`` block.
- Doctest lines (``>>>`` / ``...`` and the output lines after them, up to a blank
  line) at the left margin: they become a fenced ``pycon`` block (Markdown would
  read ``>>>`` as nested quotes and ``[...]`` as links).

- A method that overrides a documented base-class method without a docstring
  of its own shows the base's (as ``help()`` does).

Only the rendered text changes; the source docstrings stay as they are.
"""

from __future__ import annotations

import griffe


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def fence_rst(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith(">>>") and _indent(line) == 0:
            out.append("```pycon")
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
            out.append("```")
            continue
        if stripped.endswith("::") and not stripped.startswith(".."):
            base = _indent(line)
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j < len(lines) and _indent(lines[j]) > base:
                head = line.rstrip()[:-1]  # "text::" -> "text:"; a lone "::" -> ":"
                if head.strip() != ":":
                    out.append(head)
                out.append("")
                body = []
                while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > base):
                    body.append(lines[j])
                    j += 1
                while body and not body[-1].strip():
                    body.pop()
                cut = min(_indent(b) for b in body if b.strip())
                pad = " " * base
                out.append(pad + "```text")
                out.extend(pad + b[cut:] if b.strip() else "" for b in body)
                out.append(pad + "```")
                out.append("")
                i = j
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


class RstFences(griffe.Extension):
    """Rewrites literal blocks and doctests of every loaded docstring into fences."""

    def on_instance(self, *, node, obj, agent, **kwargs) -> None:  # noqa: ARG002
        if obj.docstring is not None:
            obj.docstring.value = fence_rst(obj.docstring.value)


def _classes(obj):
    for member in obj.members.values():
        if member.is_alias:
            continue
        if member.is_class:
            yield member
        if member.is_module or member.is_class:
            yield from _classes(member)


class InheritDocstrings(griffe.Extension):
    """Gives undocumented overrides the docstring of the method they override."""

    def on_package(self, *, pkg, **kwargs) -> None:  # noqa: ARG002
        for cls in _classes(pkg):
            try:
                bases = cls.mro()
            except Exception:  # noqa: BLE001 - a base outside the package: nothing to inherit
                continue
            for name, member in cls.members.items():
                if member.is_alias or not member.is_function or member.docstring is not None:
                    continue
                for base in bases:
                    inherited = base.members.get(name)
                    if inherited is not None and not inherited.is_alias and inherited.docstring:
                        member.docstring = griffe.Docstring(
                            inherited.docstring.value, parent=member
                        )
                        break
