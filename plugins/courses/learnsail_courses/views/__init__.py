"""The HTTP API, one module per area; SERVICES is what the plugin registers."""

from learnsail_courses.views import categories, comments, courses, learning, structure

SERVICES = (*categories.SERVICES, *courses.SERVICES, *structure.SERVICES, *learning.SERVICES, *comments.SERVICES)
