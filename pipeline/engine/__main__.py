import sys

from .cli import main

# The guard matters: nerfstudio's data manager starts workers with multiprocessing spawn,
# which re-imports the main module.
if __name__ == "__main__":
    sys.exit(main())
