"""``python -m batchrek.emulator``: the emulator on its own, without the main CLI."""

from __future__ import annotations

import argparse
import sys

from batchrek.emulator.cli import add_arguments, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m batchrek.emulator", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
