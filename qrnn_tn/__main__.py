"""``python -m qrnn_tn``: the ``qrnn-tn`` command line."""

import sys

from qrnn_tn.cli import main

if __name__ == "__main__":
    sys.exit(main())
