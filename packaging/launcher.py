"""Entry script of the frozen bundle: the same ``app.cli.main`` as ``hcc-response``.

``freeze_support`` lets multiprocessing children (spawned by the register's crash-safe writer or
torch's data loader) start correctly inside a PyInstaller bundle.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from app.cli import main

    sys.exit(main())
