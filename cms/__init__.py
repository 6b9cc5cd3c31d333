"""cms: Claude Multi-Session. Launch and steer child Claude Code sessions.

This package's ``__init__`` stays empty of imports on purpose: the hook entry point
(``cms.hooks.child``) is imported on every tool call of every child session, and anything
imported here would be paid for there.
"""

__version__ = "0.1.0"
