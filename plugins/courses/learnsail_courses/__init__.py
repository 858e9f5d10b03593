"""learnsail-courses: categories, tags, courses, chapters and lessons, the
review workflow, enrolment, learning progress, notes, collections and
comments.

``plugin.py`` is the plugin's face (hook implementations only),
``services.py`` and its siblings hold the rules, ``views.py`` the thin HTTP
layer, ``hookspecs.py`` the hooks the plugin offers to others.
"""

__version__ = "0.1.0"
