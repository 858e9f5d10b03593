"""learnsail-bookmarks: every user keeps a private list of links.

An example third-party plugin for learnsail, written the way the built-in
plugins are: ``plugin.py`` is its face (hook implementations only),
``services.py`` its rules, ``views.py`` its thin HTTP layer.
"""

__version__ = "0.1.0"
