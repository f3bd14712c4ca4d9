"""Jinja's output escaping without a Markup object per `{{ }}`.

With autoescaping on, Jinja compiles every `{{ value }}` into `markupsafe.escape(value)`, which
wraps the escaped text in a new Markup object; the template then only joins that text into its
output. A listing page has ~400 of them, and the wrapper is most of escape's cost (~0.4 µs of
~0.5 µs a call). :class:`OutputEscapingCodeGenerator` compiles them into
:func:`escape_output` instead: markupsafe's own escaping of the same value, returned as the plain
text the template joins. Every other use of escaping (the `escape` filter, Markup arithmetic,
`{% set %}` blocks and macros, which still return Markup) is Jinja's own.

:class:`SiteJinjaEnvironment` gives templates the environment's globals as a read-only view
instead of Jinja's ChainMap (see its docstring).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from types import MappingProxyType
from typing import Any

from flask.templating import Environment
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import Expr, Template
from markupsafe import _escape_inner  # markupsafe.escape's own C (or Python) escaping


def escape_output(value: Any) -> str:
    """What `str(markupsafe.escape(value))` returns, without building the Markup."""
    if type(value) is str:
        return _escape_inner(value)
    html = getattr(value, "__html__", None)
    if html is not None:
        return html()
    return _escape_inner(str(value))


class OutputEscapingCodeGenerator(CodeGenerator):
    """Jinja's code generator, with autoescaped output written through :func:`escape_output`."""

    def visit_Template(self, node: Template, frame: Frame | None = None) -> None:
        super().visit_Template(node, frame)
        # Module level of the compiled template: run when the template is loaded, before any
        # render function looks the name up.
        self.writeline(f"from {__name__} import escape_output")

    def _output_child_pre(self, node: Expr, frame: Frame, finalize: Any) -> None:
        if frame.eval_ctx.volatile or not frame.eval_ctx.autoescape:
            super()._output_child_pre(node, frame, finalize)
            return
        self.write("escape_output(")
        if finalize.src is not None:
            self.write(finalize.src)


class SiteJinjaEnvironment(Environment):
    """Flask's Jinja environment, whose templates read its globals through a read-only view.

    Jinja gives every template `ChainMap({}, environment.globals)`, and each render copies it
    into the render's context (`dict(globals, **vars)`, a `set` of its keys) and each
    `{% from ... import %}` compares key sets with it, all through ChainMap's Python methods,
    one call per global: ~0.1 ms per listing page (three renders and an import, ~35 globals).
    A `MappingProxyType` of the environment's dict is read at C speed. Like the ChainMap, it
    shows globals added to the environment later; unlike it, it cannot be written to: a
    template's own globals (`get_template(name, globals=...)`, not used by this site) still get
    Jinja's ChainMap, and adding some to a template first loaded without them raises instead of
    being kept for that template alone.
    """

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        if d:
            return super().make_globals(d)
        return MappingProxyType(self.globals)  # type: ignore[return-value]
