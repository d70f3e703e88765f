"""Generate ``docs/hooks.md`` from the hook specifications' docstrings and the operation table.

The docstrings in :mod:`loyaltykit.hookspecs` are the hook contract; this module renders them as
Markdown so the reference page has no second source. ``python -m loyaltykit.hookdoc`` prints the
page; a test compares it with the committed file.
"""

from __future__ import annotations

import inspect
import re
import sys

from . import hookspecs
from .operations import OPERATIONS

INTRO = "# Hook reference\n\nloyaltykit's plugin interface is a set of [pluggy](https://pluggy.readthedocs.io/) hooks, specified in\n`src/loyaltykit/hookspecs.py` under the project name `loyaltykit`. This page has one section per hook,\nheaded by its exact name and signature. It is generated from the hook specifications' docstrings and\nthe operation table (`python -m loyaltykit.hookdoc > docs/hooks.md`); a test fails when it is stale.\n\n## How hooks are answered\n\n* **Operation hooks are first-result-wins and answered by exactly one engine adapter.** The facade\n  checks this when it is built: zero or several non-wrapper implementations of an operation hook is a\n  `ConfigError` naming the hook and the claimants. pluggy's registration order never decides who burns\n  a voucher.\n* **Engine adapters never write hook implementations.** `loyaltykit.EngineAdapter` implements every\n  operation hook once and delegates to a method (`identify`, `evaluate_basket`, `price_products`,\n  `redeem_voucher`, `spend_cashback`, `export_orders`, `reverse`, `sync_products`, and the member\n  operations `enrol_member`, `update_member`, `member_statement`, `member_wallet`, `issue_voucher`)\n  that the adapter overrides.\n* **Every operation hook returns a flow**: a generator that yields `loyaltykit.EngineRequest`\n  descriptions, receives `httpx.Response` objects (or has kit errors thrown into it) and returns the\n  result. The facade drives it with `httpx.Client` (`Loyalty`) or `httpx.AsyncClient` (`AsyncLoyalty`),\n  so one adapter serves both. In-process engines return without yielding (see `loyaltykit.flows.in_process`).\n* **The facade validates first.** Implementations receive validated, frozen models; a call whose\n  capability the adapter did not declare raises `NotSupportedError` without reaching the hook.\n* **Observers wrap.** Audit logs, metrics and tracing implement the same hooks with\n  `@hookimpl(wrapper=True)`, take the adapter's flow and return it wrapped:\n\n  ```python\n  from loyaltykit import hookimpl\n  from loyaltykit.observe import observe_flow\n\n  @hookimpl(wrapper=True)\n  def loyaltykit_redeem_voucher(redemption, ctx):\n      flow = yield\n      return observe_flow(flow, ctx, on_done=lambda ctx, result, error, seconds: audit(ctx, error))\n  ```\n\n  A wrapper must not change the result; it must not catch and swallow errors of writes.\n* **`ctx`** is a `loyaltykit.flows.CallContext`: engine, operation, request id (also sent as\n  `X-Request-ID`), deadline, the idempotency key of a write, and the identifiers to scrub.\n\n"

_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc):`(~?)([^`]+)`")


def _markdown(text: str) -> str:
    def role(match: re.Match[str]) -> str:
        target = match.group(2)
        return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"

    text = _ROLE.sub(role, text)
    return text.replace("``", "`")


def _section(name: str) -> str:
    fn = getattr(hookspecs, name)
    args = ", ".join(inspect.signature(fn).parameters)
    doc = inspect.getdoc(fn) or ""
    paragraphs = [p.strip() for p in doc.split("\n\n") if p.strip()]
    lines = [f"## {name}({args})", ""]
    bullets: list[str] = []
    for paragraph in paragraphs:
        joined = " ".join(line.strip() for line in paragraph.splitlines())
        if joined.startswith(".. versionadded::"):
            bullets.append(f"* Added in version {joined.split('::', 1)[1].strip()}.")
            continue
        if joined.startswith(":param") or joined.startswith(":return"):
            for item in re.split(r"(?=:param |:return:)", joined):
                item = item.strip()
                if item.startswith(":param "):
                    param, _, rest = item[len(":param "):].partition(":")
                    bullets.append(f"* `{param.strip()}`: {_markdown(rest.strip())}")
                elif item.startswith(":return:"):
                    bullets.append(f"* Returns: {_markdown(item[len(':return:'):].strip())}")
            continue
        if bullets:
            lines += [*bullets, ""]
            bullets = []
        # "Raises:" starts its own paragraph, as it starts its own line in the docstring.
        for part in re.split(r" (?=Raises: )", joined):
            lines += [_markdown(part), ""]
    if bullets:
        lines += [*bullets, ""]
    return "\n".join(lines)


def _operations_table() -> str:
    rows = [
        "## Operations",
        "",
        "| operation | facade method | hook | capability | changes engine state |",
        "|---|---|---|---|---|",
    ]
    for op in OPERATIONS:
        caps = " or ".join(f"`{c}`" for c in op.capabilities)
        rows.append(
            f"| {op.summary} | `{op.facade_method}` | `{op.hook}` | {caps} | {'yes' if op.write else 'no'} |"
        )
    return "\n".join(rows) + "\n\n"


def render() -> str:
    """The whole of ``docs/hooks.md``."""
    sections = [_section(op.hook) for op in OPERATIONS]
    return INTRO + _operations_table() + "\n".join(sections).rstrip("\n") + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
