"""The method registry of compress.prune."""

from __future__ import annotations

import pytest

from compress.prune import get_method, methods


def test_registry_lists_methods_on_a_miss():
    assert methods() == ["heads", "layers", "magnitude", "neurons", "structured"]
    with pytest.raises(ValueError, match="registered: heads, layers, magnitude, neurons, structured"):
        get_method("lottery")
