"""``python -m sobolev_flow``: the version (``--version``) and where the commands are."""

from __future__ import annotations

import sys

from . import __version__

USAGE = """\
usage: python -m sobolev_flow [--version]

sobolev_flow {version}: Wasserstein gradient flows of kernel mean discrepancies on the torus.
The commands are modules of the package:

  python -m sobolev_flow.run [CONFIG.toml] [--set KEY=VALUE ...]   simulate a flow into an HDF5 run file
  python -m sobolev_flow.rates RUN.h5                              fitted decay exponents against theory
  python -m sobolev_flow.plot RUN.h5 -o FIG.png                    figures of a run
  python -m sobolev_flow.validation                                convergence and accuracy studies

Each takes --help.
"""


def main(argv=None) -> int:
    """Print the version (``--version``/``-V``) or the usage; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv in (["--version"], ["-V"]):
        print(f"sobolev_flow {__version__}")
        return 0
    if not argv or argv in (["--help"], ["-h"]):
        print(USAGE.format(version=__version__), end="")
        return 0
    print(USAGE.format(version=__version__), end="", file=sys.stderr)
    print(f"python -m sobolev_flow: unknown arguments {' '.join(argv)!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
