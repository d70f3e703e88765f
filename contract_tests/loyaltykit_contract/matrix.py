"""The compatibility matrix: adapter x capability and adapter x scenario, from a suite run.

Generate it (runs the suite against every installed harness, then writes the file)::

    python -m loyaltykit_contract.matrix                      # writes docs/COMPATIBILITY.md
    python -m loyaltykit_contract.matrix -o other.md -- -k redeem   # extra pytest arguments after --

or add ``--loyaltykit-matrix=PATH`` to any pytest run of the suite.

Cells: **passes**; **not supported** (the adapter does not declare the capability and the suite
asserted that the facade refuses the call); **n/a** (not applicable, with the reason in the
notes: an in-process engine has no transport to fault, an engine without expiring tokens, a
seeding feature the engine lacks without claiming a capability for it); **FAILS**.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import __version__
from .target import META_KEY, NOT_APPLICABLE, OUTCOME_KEY

PASSES, NOT_SUPPORTED, NA, FAILS = "passes", "not supported", "n/a", "FAILS"


GROUPS = {
    "test_identify": "Identify",
    "test_evaluate": "Evaluate",
    "test_redeem": "Redeem a voucher",
    "test_spend": "Spend cashback or points",
    "test_export": "Export orders",
    "test_reverse": "Reverse (cancel, refund)",
    "test_money": "Checkout money",
    "test_lifecycle": "Facade life cycle",
    "test_resilience": "Resilience",
    "test_parity": "Parity and declaration",
    "test_products": "Product sync",
    "test_members": "Members (enrol, update, statement, wallet)",
    "test_issuance": "Issue a voucher to a member",
    "test_points_catalog": "Points catalog paid in points",
}


def _group(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
    return GROUPS.get(module, module)


@dataclass
class _Result:
    group: str
    scenario: str
    doc: str
    engine: str
    facade: str
    requires: list[str]
    declared: list[str]
    version: str
    outcome: str = PASSES
    detail: str = ""


@dataclass(eq=False)
class MatrixRecorder:
    """A pytest plugin object: records each contract scenario's outcome, writes the matrix."""

    path: str
    docs: dict[str, str] = field(default_factory=dict)
    results: dict[str, _Result] = field(default_factory=dict)

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        doc = (getattr(item, "obj", None).__doc__ or "").strip().splitlines() if hasattr(item, "obj") else []
        self.docs[item.nodeid] = " ".join(line.strip() for line in doc[:3]).split(". ")[0].rstrip(".")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props: dict[str, Any] = dict(report.user_properties)
        meta = props.get(META_KEY)
        if meta is None:
            return
        result = self.results.get(report.nodeid)
        if result is None:
            result = self.results[report.nodeid] = _Result(
                group=_group(report.nodeid),
                scenario=_scenario_name(report.nodeid, meta["engine"], meta["facade"]),
                doc=self.docs.get(report.nodeid, ""),
                engine=meta["engine"],
                facade=meta["facade"],
                requires=meta["requires"],
                declared=meta["declared"],
                version=meta.get("version", ""),
            )
        if report.failed:
            result.outcome, result.detail = FAILS, _first_line(report)
        elif report.skipped and result.outcome != FAILS:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            reason = reason.removeprefix("Skipped: ")
            result.outcome, result.detail = NA, reason.removeprefix(NOT_APPLICABLE)
        elif report.when == "call" and report.passed:
            outcome = props.get(OUTCOME_KEY)
            if outcome and outcome.get("outcome") == "not_supported":
                result.outcome, result.detail = NOT_SUPPORTED, outcome.get("detail", "")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.results:
            return
        path = Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(list(self.results.values())), encoding="utf-8")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.results:
            terminalreporter.write_line(f"loyaltykit compatibility matrix written to {self.path}")


def _scenario_name(nodeid: str, engine: str, facade: str) -> str:
    name = nodeid.rsplit("::", 1)[-1]
    match = re.match(r"^(?P<base>[^\[]+)\[(?P<id>.*)\]$", name)
    if not match:
        return name
    rest = match["id"].removeprefix(f"{engine}-{facade}").lstrip("-")
    return f"{match['base']}[{rest}]" if rest else match["base"]


def _first_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return text.strip().splitlines()[0][:200] if text.strip() else "failed"


def _cell(outcomes: dict[str, str]) -> str:
    values = set(outcomes.values())
    if len(values) == 1:
        return values.pop()
    return ", ".join(f"{facade}: {outcome}" for facade, outcome in sorted(outcomes.items()))


def render(results: list[_Result]) -> str:
    engines = sorted({r.engine for r in results})
    versions = {r.engine: r.version for r in results}
    declared = {r.engine: set(r.declared) for r in results}
    by_scenario: dict[str, dict[str, dict[str, _Result]]] = defaultdict(lambda: defaultdict(dict))
    docs: dict[str, str] = {}
    requires: dict[str, list[str]] = {}
    for r in results:
        by_scenario[r.scenario][r.engine][r.facade] = r
        docs.setdefault(r.scenario, r.doc)
        requires.setdefault(r.scenario, r.requires)

    from loyaltykit.capabilities import Capability

    capabilities = [c.value for c in Capability]  # every one, checked by a scenario or not

    lines = [
        "# Compatibility matrix",
        "",
        f"Generated by `python -m loyaltykit_contract.matrix` (loyaltykit-contract {__version__}) from one run",
        "of the contract suite against every installed adapter harness, each scenario through both the",
        "sync and the async facade. Do not edit by hand; re-generate it.",
        "",
        "Legend: **passes**; **not supported**: the adapter does not declare the capability and the suite",
        "asserted that the facade refuses the call (`NotSupportedError`, nothing sent) — for a member",
        "update, a field outside the adapter's declared `member_fields` — and why is in the capability",
        "table of the adapter's README; **n/a**: not applicable, reason in the notes; **FAILS**: the",
        "adapter breaks the contract (details below).",
        "",
        "Adapters: " + ", ".join(f"{e} {versions[e]}".strip() for e in engines) + ".",
        "",
        "## By capability",
        "",
        "| capability | " + " | ".join(engines) + " |",
        "|---|" + "---|" * len(engines),
    ]
    for cap in capabilities:
        row = [f"`{cap}`"]
        for engine in engines:
            if cap not in declared[engine]:
                row.append(NOT_SUPPORTED)
                continue
            outcomes = [
                res.outcome
                for scenario, per_engine in by_scenario.items()
                if cap in requires[scenario]
                for res in per_engine.get(engine, {}).values()
            ]
            failed = sum(1 for o in outcomes if o == FAILS)
            ran = [o for o in outcomes if o in (PASSES, FAILS)]
            if failed:
                row.append(f"{FAILS} ({failed} of {len(outcomes)} runs)")
            elif ran:
                row.append(PASSES)
            elif outcomes:
                row.append(NA)
            else:
                row.append("declared, no scenario yet")
        lines.append("| " + " | ".join(row) + " |")

    groups: dict[str, list[str]] = defaultdict(list)
    for r in results:
        if r.scenario not in groups[r.group]:
            groups[r.group].append(r.scenario)
    group_order = list(GROUPS.values())
    notes: dict[tuple[str, str], str] = {}
    failures: list[str] = []
    lines += ["", "## By scenario"]
    for group in sorted(groups, key=lambda g: group_order.index(g) if g in group_order else len(group_order)):
        lines += [
            "",
            f"### {group}",
            "",
            "| scenario | requires | " + " | ".join(engines) + " |",
            "|---|---|" + "---|" * len(engines),
        ]
        for scenario in groups[group]:
            row = [f"`{scenario}`", ", ".join(requires[scenario]) or "-"]
            for engine in engines:
                per_facade = by_scenario[scenario].get(engine, {})
                if not per_facade:
                    row.append("-")
                    continue
                cell = _cell({facade: r.outcome for facade, r in per_facade.items()})
                for facade, r in sorted(per_facade.items()):
                    if r.outcome == NA:
                        key = (engine, r.detail)
                        notes.setdefault(key, f"n{len(notes) + 1}")
                        if f"[{notes[key]}]" not in cell:
                            cell = f"{cell} [{notes[key]}]"
                    elif r.outcome == FAILS:
                        failures.append(f"- `{scenario}` on {engine} ({facade}): {r.detail}")
                row.append(cell)
            lines.append("| " + " | ".join(row) + " |")

    lines += ["", "## Scenarios", ""]
    described: set[str] = set()
    for scenario in sorted(by_scenario):
        base = scenario.split("[", 1)[0]
        if base not in described:
            described.add(base)
            lines.append(f"- `{base}`: {docs[scenario]}.")
    if notes:
        lines += ["", "## Notes", ""]
        for (engine, detail), tag in sorted(notes.items(), key=lambda kv: int(kv[1][1:])):
            lines.append(f"- [{tag}] {engine}: {detail}")
    if failures:
        lines += ["", "## Failures", "", *failures]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loyaltykit_contract.matrix",
        description="Run the loyaltykit contract suite and write the compatibility matrix.",
    )
    parser.add_argument("-o", "--output", default="docs/COMPATIBILITY.md", help="default: docs/COMPATIBILITY.md")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    return int(
        pytest.main(
            ["--pyargs", "loyaltykit_contract", f"--loyaltykit-matrix={args.output}", "-q", "-p", "no:cacheprovider",
             # this module imported the package before pytest could rewrite its asserts; that is fine
             "-W", "ignore::pytest.PytestAssertRewriteWarning", *args.pytest_args]
        )
    )


if __name__ == "__main__":
    sys.exit(main())
