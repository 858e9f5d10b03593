"""The HTTP API, one module per area.  ``SERVICES`` is what the plugin
registers; a module may also have ``includeme(config)`` for what is not a
Cornice service (body limits of upload routes, plain Pyramid views)."""

from learnsail_video.views import uploads

MODULES = (uploads,)

SERVICES = tuple(service for module in MODULES for service in module.SERVICES)


def includeme(config):
    for module in MODULES:
        hook = getattr(module, "includeme", None)
        if hook is not None:
            hook(config)
