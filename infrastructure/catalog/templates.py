"""Message templates: compiled once in a Jinja2 sandbox; arguments are only ever data."""

from collections.abc import Mapping

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from domain.errors import CatalogError, PromptRenderError


def template_environment() -> ImmutableSandboxedEnvironment:
    """The one environment prompt templates are compiled in."""
    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,  # output is plain text for an LLM, never HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def compile_template(
    env: ImmutableSandboxedEnvironment, source: str, *, allowed: frozenset[str], field: str
) -> Template:
    """Compile ``source``; it may only refer to the prompt's declared arguments."""
    try:
        used = meta.find_undeclared_variables(env.parse(source))
        template = env.from_string(source)
    except TemplateSyntaxError as exc:
        raise CatalogError(
            f"template syntax error on line {exc.lineno}: {exc.message}", field=field
        ) from None
    unknown = sorted(used - allowed)
    if unknown:
        raise CatalogError(f"template uses undeclared variables: {', '.join(unknown)}", field=field)
    return template


def render_template(prompt: str, template: Template, values: Mapping[str, object]) -> str:
    """Render with validated values, translating template failures to a domain error."""
    try:
        return template.render(values).strip()
    except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        raise PromptRenderError(prompt, str(exc)) from None
