"""`python -m dragoman.client.cli`: the same entry point as the `dragoman` console script."""

import sys

from dragoman.client.cli import main

if __name__ == "__main__":
    sys.exit(main())
