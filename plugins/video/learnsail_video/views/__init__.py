"""The HTTP API, one module per area.  ``SERVICES`` is what the plugin
registers; a module may also have ``includeme(config)`` for what is not a
Cornice service (body limits of upload routes, plain Pyramid views)."""

from learnsail_video.views import media, playback, tus, uploads, watching

# uploads first: its /api/v1/videos/upload... routes are matched before /api/v1/videos/{id}
MODULES = (uploads, tus, media, playback, watching)

SERVICES = tuple(service for module in MODULES for service in module.SERVICES)


def includeme(config):
    for module in MODULES:
        hook = getattr(module, "includeme", None)
        if hook is not None:
            hook(config)
