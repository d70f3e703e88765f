"""The embedded engine runs in process: building its facade must not load the HTTP stack, nor compile what it does not use."""

import json
import os
import subprocess
import sys


def _start(tmp_path, code: str) -> str:
    """Run ``code`` in a fresh interpreter on a migrated embedded engine; its last line of output."""
    # a shop migrates once (`loyaltykit-local migrate`), then every start only checks the schema
    env = {**os.environ, "LOYALTYKIT_ENGINE": "local",
           "LOYALTYKIT_LOCAL_DATABASE_URL": f"sqlite:///{tmp_path / 'start.sqlite3'}"}
    migrate = [sys.executable, "-c", "from loyaltykit_local.cli import main; main()", "migrate"]
    migrated = subprocess.run(migrate, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr[-2000:]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    return done.stdout.splitlines()[-1]


def test_loyalty_on_the_embedded_engine_does_not_import_httpx(tmp_path):
    _start(tmp_path, (
        "import sys; from loyaltykit import Loyalty; Loyalty().close(); "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('httpx', 'httpcore', 'tenacity')); "
        "print(loaded); sys.exit(1 if loaded else 0)"
    ))


def test_loyalty_on_the_embedded_engine_compiles_no_pattern_it_does_not_use(tmp_path):
    """What start-up leaves for first use: the scrubber's patterns (compiled on the first text
    scrubbed) and the tokenizer's pattern (compiled when pydantic reads a builtin default factory's
    signature, which the kit's settings do not need)."""
    code = (
        "import json, sys; from loyaltykit import Loyalty; Loyalty().close(); "
        "from loyaltykit import scrub; tokenize = sys.modules.get('tokenize'); "
        "compile_cache = getattr(tokenize, '_compile', None); "
        "print(json.dumps({'scrub': scrub._patterns.cache_info().currsize, "
        "'tokenize': compile_cache.cache_info().currsize if compile_cache else 0}))"
    )
    assert json.loads(_start(tmp_path, code)) == {"scrub": 0, "tokenize": 0}
    # and the scrubber still masks on first use
    from loyaltykit.scrub import scrub_text

    assert scrub_text("mail ann@example.com") == "mail ***"
