"""API conventions owned by the core: the Service class plugins use, the
schema validator, the error envelope views, the OpenAPI document and docs."""

from learnsail.api.service import Service, PUBLIC  # noqa: F401
from learnsail.api.validation import Schema  # noqa: F401


def includeme(config):
    # The core renders every error itself: keep Cornice's exception views out.
    config.get_settings()["handle_exceptions"] = False
    config.include("cornice")
    config.include("learnsail.api.service")
    config.include("learnsail.api.errorviews")
    config.include("learnsail.api.openapi")
