"""Re-bless the golden images: `python -m tests.golden.regen [NAME ...]` (default: every recipe).

Run it only after a change that is meant to alter renders; review the new PNGs
(`git diff --stat tests/golden/expected`) and say why in the commit message.
"""

from __future__ import annotations

import sys

from tests.golden.cases import EXPECTED, names, render
from tools.io import save_image


def main(argv: list[str]) -> None:
    wanted = argv or names()
    unknown = sorted(set(wanted) - set(names()))
    if unknown:
        raise SystemExit(f"no golden recipe named {', '.join(unknown)}; known: {', '.join(names())}")
    EXPECTED.mkdir(exist_ok=True)
    for name in wanted:
        path = save_image(render(name), EXPECTED / f"{name}.png", bit_depth=16, overwrite=True)
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
