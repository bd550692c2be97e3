"""``python -m retrainer.cli.render_reference docs/reference.md``: regenerate the reference's sections.

It lives in the CLI package because it needs the CLI app; ``retrainer.reference`` is given the app
and never imports the CLI (that import made a circle through ``config_cmd``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from retrainer.cli import app
from retrainer.reference import render_sections


def main(argv: list[str]) -> None:
    target = Path(argv[0] if argv else "docs/reference.md")
    target.write_text(render_sections(target.read_text(encoding="utf-8"), app), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
