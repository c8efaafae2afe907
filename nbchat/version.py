"""The package version, in a module of its own so that lower modules import it sideways.

``nbchat/__init__.py`` re-exports it; the client reads it for its User-Agent without importing
the package root (which would run the import graph back up).
"""

__version__ = "0.1.0"
