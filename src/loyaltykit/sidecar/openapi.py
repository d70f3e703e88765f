"""Render the sidecar's OpenAPI 3.1 document: ``python -m loyaltykit.sidecar.openapi [PATH]``.

The committed copy is ``docs/openapi/sidecar.json``; a test fails when the served document drifts
from it. Regenerate after any change to the kit's models or the sidecar's routes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path("docs/openapi/sidecar.json")


def openapi_document() -> dict[str, Any]:
    from .app import create_app

    return create_app(document_only=True).openapi()


def render() -> str:
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DEFAULT_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
