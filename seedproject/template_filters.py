"""Template filters available in every template (registered as a builtin in settings)."""

from typing import Any

from django import template

register = template.Library()


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    """``{{ stats|get_item:key }}``: a dict lookup with a variable key."""
    if not isinstance(mapping, dict):
        return None
    return mapping.get(key, mapping.get(str(key)))
