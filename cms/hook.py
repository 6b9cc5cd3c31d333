"""``python -m cms.hook EVENT``: the child hook's entry point under its old name.

Children started by an older cms run this command line from their ``--settings``;
they keep working. New children run :mod:`cms.hooks.child` directly. Standard library
only, like the hook itself.
"""

from __future__ import annotations

import sys

from cms.hooks.child import main

if __name__ == "__main__":
    sys.exit(main())
