"""The embedded engine runs in process: building its facade must not load the HTTP stack."""

import os
import subprocess
import sys


def test_loyalty_on_the_embedded_engine_does_not_import_httpx(tmp_path):
    code = (
        "import sys; from loyaltykit import Loyalty; Loyalty().close(); "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('httpx', 'httpcore', 'tenacity')); "
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    # a shop migrates once (`loyaltykit-local migrate`), then every start only checks the schema
    env = {**os.environ, "LOYALTYKIT_ENGINE": "local",
           "LOYALTYKIT_LOCAL_DATABASE_URL": f"sqlite:///{tmp_path / 'start.sqlite3'}"}
    migrate = [sys.executable, "-c", "from loyaltykit_local.cli import main; main()", "migrate"]
    migrated = subprocess.run(migrate, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr[-2000:]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
