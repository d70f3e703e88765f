"""The pytest plugin of the contract suite (entry point ``pytest11: loyaltykit_contract``).

Installed, it only adds ``--loyaltykit-*`` options, two markers and the ``loyaltykit_target``
fixture; it collects nothing and changes no other test. The scenarios run when the
``loyaltykit_contract`` package is collected::

    pytest --pyargs loyaltykit_contract                                   # every installed harness
    pytest --pyargs loyaltykit_contract --loyaltykit-harness=mypkg.testing:make_harness

Every scenario is parametrized over (harness, facade), with ids like ``[salesforce-async]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from .discovery import GROUP, HarnessSource, discover
from .requirements import MARKER, assert_unsupported, required
from .target import FACADES, META_KEY, ContractTarget

PARITY_MARKER = "loyaltykit_parity"
TARGET_FIXTURE = "loyaltykit_target"

NO_HARNESS = (
    "loyaltykit contract suite: no engine harness found. Install an adapter that publishes one in the "
    f"'{GROUP}' entry-point group, or name one with --loyaltykit-harness=package.module:make_harness "
    "(or the loyaltykit_harness ini option). The suite never passes without running."
)

_SOURCES = pytest.StashKey[dict[tuple[str, ...], list[HarnessSource]]]()


@dataclass(frozen=True)
class TargetParam:
    source: HarnessSource
    facade: str


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("loyaltykit", "loyaltykit contract suite")
    group.addoption(
        "--loyaltykit-harness",
        action="append",
        default=[],
        metavar="MODULE:FACTORY",
        help="run the contract suite against this harness factory only (repeatable); "
        f"default: every '{GROUP}' entry point",
    )
    group.addoption(
        "--loyaltykit-engine",
        action="append",
        default=[],
        metavar="NAME",
        help="only the harnesses of these engines (repeatable)",
    )
    group.addoption(
        "--loyaltykit-facade",
        choices=("sync", "async", "both"),
        default="both",
        help="facade(s) every scenario runs through (default: both)",
    )
    group.addoption(
        "--loyaltykit-adapter-variant",
        default=None,
        metavar="NAME",
        help="use the harness's broken_adapters()[NAME] instead of make_adapter() "
        "(the suite's self-test: the run must fail)",
    )
    group.addoption(
        "--loyaltykit-matrix",
        default=None,
        metavar="PATH",
        help="write the compatibility matrix (Markdown) of this run to PATH",
    )
    parser.addini(
        "loyaltykit_harness",
        type="linelist",
        default=[],
        help="harness factories (module:factory) for the contract suite, as --loyaltykit-harness",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(*capabilities): capabilities a loyaltykit contract scenario needs"
    )
    config.addinivalue_line(
        "markers", f"{PARITY_MARKER}: a loyaltykit contract scenario comparing the sync and async facades"
    )
    path = config.getoption("--loyaltykit-matrix")
    if path:
        from .matrix import MatrixRecorder

        config.pluginmanager.register(MatrixRecorder(path), "loyaltykit-matrix-recorder")


def _sources(config: pytest.Config, module_specs: tuple[str, ...]) -> list[HarnessSource]:
    cache = config.stash.setdefault(_SOURCES, {})
    specs = module_specs or tuple(config.getoption("--loyaltykit-harness") or config.getini("loyaltykit_harness"))
    if specs not in cache:
        engines = config.getoption("--loyaltykit-engine") or None
        cache[specs] = discover(list(specs) or None, engines)
    return cache[specs]


def _module_specs(metafunc: pytest.Metafunc) -> tuple[str, ...]:
    """An adopting module may pin its harness: ``LOYALTYKIT_HARNESS = "mypkg.testing:make_harness"``."""
    spec = getattr(metafunc.module, "LOYALTYKIT_HARNESS", None)
    if spec is None:
        return ()
    return (spec,) if isinstance(spec, str) else tuple(spec)


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if TARGET_FIXTURE not in metafunc.fixturenames:
        return
    sources = _sources(metafunc.config, _module_specs(metafunc))
    if metafunc.definition.get_closest_marker(PARITY_MARKER):
        facades: tuple[str, ...] = ("parity",)
    else:
        choice = metafunc.config.getoption("--loyaltykit-facade")
        facades = FACADES if choice == "both" else (choice,)
    params: list[Any] = [
        pytest.param(TargetParam(source, facade), id=f"{source.name}-{facade}")
        for source in sources
        for facade in facades
    ]
    if not params:
        params = [pytest.param(None, id="no-harness")]
    metafunc.parametrize(TARGET_FIXTURE, params, indirect=True)


@pytest.fixture
def loyaltykit_target(request: pytest.FixtureRequest) -> Any:
    """A :class:`~loyaltykit_contract.target.ContractTarget`: fresh harness, adapter and facade."""
    param = getattr(request, "param", None)
    if param is None:
        pytest.fail(NO_HARNESS, pytrace=False)
    variant = request.config.getoption("--loyaltykit-adapter-variant")
    target = ContractTarget(param.source, param.facade, request.node, variant)
    request.node.user_properties.append(
        (
            META_KEY,
            {
                "engine": target.engine,
                "facade": param.facade,
                "requires": [c.value for c in required(request.node)],
                "declared": target.caps.supported(),
                "version": str(getattr(target.adapter, "version", "")),
            },
        )
    )
    try:
        yield target
    finally:
        target.close()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """A scenario whose capabilities are not all declared asserts "not supported" instead."""
    target = pyfuncitem.funcargs.get(TARGET_FIXTURE)
    if not isinstance(target, ContractTarget):
        return None
    missing = [c for c in required(pyfuncitem) if not target.supports(c)]
    if not missing:
        return None
    assert_unsupported(target, missing)
    return True
