"""Discovery's own reading of entry_points.txt agrees with importlib.metadata."""

from __future__ import annotations

import importlib.metadata
import sys

from loyaltykit import plugins


def _dist(root, dirname: str, name: str, version: str, entry_points: str) -> None:
    info = root / dirname
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(entry_points)


def _triples(eps):
    return sorted((ep.name, ep.group, ep.value, ep.dist.name, ep.dist.version) for ep in eps)


def test_scan_matches_importlib_metadata(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    _dist(first, "acme_engine-1.2.dist-info", "acme-engine", "1.2",
          "# a comment\n[loyaltykit]\nacme = acme_engine.adapter:AcmeAdapter\n\n"
          "[loyaltykit.plugins]\naudit = acme_engine.audit\n[console_scripts]\nacme = x:y\n")
    # the same distribution again, later on sys.path: shadowed, as importlib.metadata does it
    _dist(second, "acme.engine-0.9.dist-info", "acme.engine", "0.9", "[loyaltykit]\nold = acme_old:Adapter\n")
    _dist(second, "other-3.0.dist-info", "other", "3.0", "[loyaltykit.plugins]\nmetrics = other.metrics:plugin\n")
    monkeypatch.setattr(sys, "path", [str(first), str(second), *sys.path])
    for group in (plugins.GROUP, plugins.PLUGIN_GROUP, "console_scripts"):
        ours = plugins.entry_points(group=group)
        assert _triples(ours) == _triples(importlib.metadata.entry_points(group=group))
    # every group at once (what discovery reads, in one scan of sys.path)
    every = importlib.metadata.entry_points()
    assert _triples(plugins.entry_points()) == _triples(ep for g in every.groups for ep in every.select(group=g))
    assert ("acme", "loyaltykit", "acme_engine.adapter:AcmeAdapter", "acme-engine", "1.2") in _triples(
        plugins.entry_points(group=plugins.GROUP))
    assert "old" not in {ep.name for ep in plugins.entry_points(group=plugins.GROUP)}


def test_discovered_entry_point_loads_its_object(tmp_path, monkeypatch):
    (tmp_path / "acme_observer.py").write_text("class Observer:\n    pass\nplugin = Observer()\n")
    _dist(tmp_path, "acme_observer-1.0.dist-info", "acme-observer", "1.0",
          "[loyaltykit.plugins]\nacme-audit = acme_observer:plugin\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    found = {d.name: d for d in plugins.discover()}
    assert all(d.group in (plugins.GROUP, plugins.PLUGIN_GROUP) for d in found.values())  # no console script
    item = found["acme-audit"]
    assert (item.is_adapter, item.distribution, item.version) == (False, "acme-observer", "1.0")
    assert type(item.load()).__name__ == "Observer"
    monkeypatch.delitem(sys.modules, "acme_observer", raising=False)


def test_a_custom_distribution_finder_falls_back_to_importlib_metadata(tmp_path, monkeypatch):
    _dist(tmp_path, "acme_engine-1.2.dist-info", "acme-engine", "1.2",
          "[loyaltykit]\nacme = acme_engine.adapter:AcmeAdapter\n[console_scripts]\nacme = x:y\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])

    class Finder:  # provides no distribution of its own, but is not the standard PathFinder
        @staticmethod
        def find_spec(*args, **kwargs):
            return None

        @staticmethod
        def find_distributions(*args, **kwargs):
            return iter(())

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder])
    assert not plugins._standard_finders_only()
    every = importlib.metadata.entry_points()
    assert _triples(plugins.entry_points()) == _triples(ep for g in every.groups for ep in every.select(group=g))
    found = {(d.name, d.group) for d in plugins.discover()}
    assert ("acme", plugins.GROUP) in found and ("acme", "console_scripts") not in found
