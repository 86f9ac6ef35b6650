"""Libraries the rules share: HTTP, archives, parsers, the page renderer, materialization.

Nothing here is a rule kind: these modules hold no keys, versions or recipes. A rule module
in ``rules/`` imports them; they import only ``rules.errors``, ``rules.model`` and ``store``.
"""
