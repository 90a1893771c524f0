"""Sphinx helpers for the sobolev_flow documentation.

- :func:`render_config_reference` renders :data:`sobolev_flow.config.SCHEMA` (every section,
  key, default and description) as reStructuredText; the ``config-reference`` directive inserts
  it at build time, so the reference cannot drift from the schema.
- The ``api-modules`` directive documents a list of modules, one section each; a name followed
  by ``?`` is documented only if the module exists.
- Docstrings write their mathematics in Unicode plain text (|k|, max|∇ψ|, (n, *shape)): bars and
  unmatched asterisks are escaped before reST reads them (:func:`escape_plain_math`).
- Module docstrings may use numpydoc-style headings (``Conventions`` underlined by dashes), which
  docutils does not accept inside an autodoc entry: they are turned into rubrics.
- Docstring sections that numpydoc does not know (and would drop silently) are reported as
  Sphinx warnings, so that ``-W`` catches them.

The rendering functions import neither Sphinx nor docutils: the tests call them directly.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import re

__all__ = ["render_config_reference", "format_default", "choices_of", "rubricate_headings", "escape_plain_math",
           "setup"]

_HEADING_UNDERLINE = re.compile(r"^([-=~^])\1{2,}\s*$")


# ----------------------------------------------------------------------------- configuration
def format_default(value) -> str:
    """A default as the TOML value that sets it; ``None`` (unset: see the key's description) as ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_default(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {format_default(v)}" for k, v in value.items()) + "}"
    return repr(value)


def choices_of(convert):
    """The admissible values of a key whose converter is ``config.choice(...)``, else None."""
    code = getattr(convert, "__code__", None)
    closure = getattr(convert, "__closure__", None)
    if code is None or not closure or "options" not in code.co_freevars:
        return None
    options = closure[code.co_freevars.index("options")].cell_contents
    return tuple(options) if isinstance(options, tuple) else None


def _escape(text: str) -> str:
    """Plain text for a reST paragraph: no inline markup, substitutions or references."""
    return re.sub(r"([\\`*_|\[\]])", r"\\\1", text)


def render_config_reference(schema=None) -> str:
    """reStructuredText of the configuration reference: one section per schema section.

    Parameters
    ----------
    schema : dict, optional
        ``{section: {key: Key}}`` as :data:`sobolev_flow.config.SCHEMA` (the default).

    Returns
    -------
    str
        For every section a heading ``[section]`` (underlined with ``-``) and a table with a row
        per key: ``section.key``, its default as a TOML value ("(unset)" when the key has no
        value by default: its description says what then applies), and its description with
        the admissible values of a choice.
    """
    if schema is None:
        from sobolev_flow.config import SCHEMA as schema
    out = []
    for section, keys in schema.items():
        title = f"``[{section}]``"
        out += [f".. _config-{section}:", "", title, "-" * len(title), "",
                ".. list-table::", "   :header-rows: 1", "   :widths: 22 28 50", "",
                "   * - key", "     - default", "     - description"]
        for name, key in keys.items():
            default = format_default(key.default)
            description = _escape(key.doc)
            options = choices_of(key.convert)
            if options is not None:
                description += "; one of " + ", ".join(f"``{format_default(o)}``" for o in options)
            out += [f"   * - ``{section}.{name}``",
                    f"     - ``{default}``" if default else "     - (unset)",
                    f"     - {description}"]
        out.append("")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- docstrings
# The docstrings write mathematics in Unicode plain text: |k|, |ρ_k|², max|∇ψ|, (n, *shape). In
# reST a pair of bars is a substitution reference and a lone * or ** starts emphasis, so before
# numpydoc and docutils see a docstring, bars are escaped and unmatched asterisks too (outside
# inline literals, roles and literal, math, code and doctest blocks). No docstring of the package
# uses substitutions.
_PROTECTED_DIRECTIVES = ("math", "code-block", "code", "sourcecode", "literalinclude", "doctest",
                         "testcode", "testoutput", "highlight", "parsed-literal")
_DIRECTIVE = re.compile(r"^\s*\.\.\s+([\w:-]+)::")
_INLINE = re.compile(r"(``.+?``|:[\w:.+-]+:`[^`]*`|`[^`]*`_{0,2})")


def _escape_inline(text: str) -> str:
    """Escape bars and unmatched asterisks in one line outside inline literals and roles."""
    parts = _INLINE.split(text)
    for i in range(0, len(parts), 2):
        part = re.sub(r"(?<!\\)\|", r"\\|", parts[i])
        parts[i] = _escape_unmatched_stars(part)
    return "".join(parts)


_BEFORE_START = " \t([{<'\"-/:"
_AFTER_END = " \t-.,:;!?\\/'\")]}>"


def _emphasis_end(text: str, i: int, run: int) -> int:
    """Index of the end-string of the emphasis (run 1) or strong (run 2) opening at i, or -1.

    As docutils: an end-string follows a non-blank character and is followed by a blank, the
    end of the line or closing punctuation.
    """
    j = text.find("*" * run, i + run + 1)
    while j >= 0:
        after = text[j + run:j + run + 1]
        if not text[j - 1].isspace() and text[j - 1] != "*" and (not after or after in _AFTER_END):
            return j
        j = text.find("*" * run, j + 1)
    return -1


def _escape_unmatched_stars(text: str) -> str:
    """Escape * and ** that would open emphasis or strong text that never closes."""
    out = []
    i = 0
    while i < len(text):
        if text[i] != "*" or (i > 0 and text[i - 1] == "\\"):
            out.append(text[i])
            i += 1
            continue
        run = 2 if text.startswith("**", i) else 1
        following = text[i + run:i + run + 1]
        opens = (i == 0 or text[i - 1] in _BEFORE_START) and following and not following.isspace() and following != "*"
        end = _emphasis_end(text, i, run) if opens else -1
        if opens and end < 0:
            out.append("\\*" * run)
            i += run
        elif opens:  # a complete *emphasis* or **strong**: keep it whole
            out.append(text[i:end + run])
            i = end + run
        else:
            out.append(text[i:i + run])
            i += run
    return "".join(out)


def escape_plain_math(lines: list[str]) -> list[str]:
    """Make a Unicode-math docstring safe for reST (see the comment above)."""
    out = []
    protect_indent = None  # lines indented deeper than this (or blank) are a protected block
    doctest = False
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if protect_indent is not None:
            if not stripped or indent > protect_indent:
                out.append(line)
                continue
            protect_indent = None
        if doctest:
            if stripped:
                out.append(line)
                continue
            doctest = False
        if stripped.startswith(">>>"):
            doctest = True
            out.append(line)
            continue
        directive = _DIRECTIVE.match(line)
        if directive:
            if directive.group(1).split(":")[-1] in _PROTECTED_DIRECTIVES:
                protect_indent = indent
            out.append(line)
            continue
        out.append(_escape_inline(line))
        if stripped.endswith("::"):
            protect_indent = indent
    return out


def rubricate_headings(lines: list[str]) -> list[str]:
    """Replace underlined headings (a line, then a line of - or =) by rubrics.

    Inside an autodoc entry docutils accepts no section titles; module docstrings use them the
    numpydoc way (``Conventions`` underlined by dashes).
    """
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        below = lines[i + 1] if i + 1 < len(lines) else ""
        above_blank = i == 0 or not lines[i - 1].strip()
        if line.strip() and above_blank and _HEADING_UNDERLINE.match(below) and not line[:1].isspace():
            out += [f".. rubric:: {line.strip()}", ""]
            i += 2
            if i < len(lines) and not lines[i].strip():
                i += 1
            continue
        out.append(line)
        i += 1
    return out


def _prepare(app, what, name, obj, options, lines):
    if what == "module":
        lines[:] = rubricate_headings(lines)
    lines[:] = escape_plain_math(lines)


def _unknown_sections(app, what, name, obj, options, lines):
    """Warn (as Sphinx) about docstring sections numpydoc would drop, before it runs."""
    if what == "module" or not lines:
        return
    import warnings

    from numpydoc.docscrape import NumpyDocString
    from sphinx.util import logging

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            NumpyDocString("\n".join(lines))
        except Exception as err:  # numpydoc raises on malformed sections
            caught.append(warnings.WarningMessage(str(err), UserWarning, "", 0))
    for item in caught:  # "Unknown section ...", "potentially wrong underline length", ...
        message = str(item.message).split("\n")[0].strip()
        logging.getLogger(__name__).warning("numpydoc: %s (docstring of %s)", message, name,
                                            type="numpydoc", subtype="section")


# ----------------------------------------------------------------------------- directives
def _directives():
    from docutils import nodes
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective
    from sphinx.util.nodes import nested_parse_with_titles

    def parse(directive, text):
        node = nodes.section()
        node.document = directive.state.document
        nested_parse_with_titles(directive.state, StringList(text.splitlines(), source="<generated>"), node)
        return node.children

    class ConfigReference(SphinxDirective):
        """``.. config-reference::``: the tables of every configuration section and key."""

        has_content = False

        def run(self):
            from sobolev_flow import config

            self.env.note_dependency(config.__file__)
            return parse(self, render_config_reference(config.SCHEMA))

    class ApiModules(SphinxDirective):
        """``.. api-modules::`` with one module name a line (``?`` after it: only if it exists)."""

        has_content = True

        def run(self):
            text = []
            for line in self.content:
                name = line.strip()
                if not name:
                    continue
                optional = name.endswith("?")
                name = name.rstrip("?").strip()
                if optional and not _module_exists(name):
                    continue
                spec = importlib.util.find_spec(name)
                if spec is not None and spec.origin:
                    self.env.note_dependency(spec.origin)
                text += [f".. _api-{name}:", "", f"``{name}``", "-" * (len(name) + 4), "",
                         f".. automodule:: {name}", "   :members:", "   :show-inheritance:", ""]
            return parse(self, "\n".join(text))

    return ConfigReference, ApiModules


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def setup(app):
    config_reference, api_modules = _directives()
    app.add_directive("config-reference", config_reference)
    app.add_directive("api-modules", api_modules)
    # before numpydoc's own handler (priority 500): it needs the docstring as written
    app.connect("autodoc-process-docstring", _prepare, priority=400)
    app.connect("autodoc-process-docstring", _unknown_sections, priority=450)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
