"""``python -m hjbench``: the same command line as the ``hjbench`` console script."""

from .cli import main

if __name__ == "__main__":
    main()
