"""URL dispatch that skips, by a string prefix test, the routes that cannot
match: Pyramid tries every route's regular expression in order, and a
platform with many plugins has hundreds of routes."""

from __future__ import annotations

import re
from typing import Any

from pyramid.interfaces import IRoutesMapper
from pyramid.urldispatch import RoutesMapper

# the literal start of a pattern: up to the first placeholder or wildcard
LITERAL = re.compile(r"^[^{*:]*")


def _literal(pattern: str) -> str:
    prefix = LITERAL.match(pattern).group(0)
    return prefix if prefix.startswith("/") else "/" + prefix  # Pyramid anchors patterns at "/"


class PrefixRoutesMapper(RoutesMapper):
    """Same routes, same order, same answers as Pyramid's mapper."""

    def __init__(self) -> None:
        super().__init__()
        self._indexed: list[tuple[str, Any]] = []
        self._indexed_count = -1

    def _index(self) -> list[tuple[str, Any]]:
        if self._indexed_count != len(self.routelist):
            self._indexed = [(_literal(route.pattern), route) for route in self.routelist]
            self._indexed_count = len(self.routelist)
        return self._indexed

    def __call__(self, request: Any) -> dict:
        try:
            path = request.path_info or "/"
        except (KeyError, UnicodeDecodeError):
            return super().__call__(request)  # the same errors as Pyramid
        for prefix, route in self._index():
            if not path.startswith(prefix):
                continue
            match = route.match(path)
            if match is not None:
                preds = route.predicates
                info = {"match": match, "route": route}
                if preds and not all(p(info, request) for p in preds):
                    continue
                return info
        return {"route": None, "match": None}


def includeme(config: Any) -> None:
    if config.registry.queryUtility(IRoutesMapper) is None:
        config.registry.registerUtility(PrefixRoutesMapper(), IRoutesMapper)
