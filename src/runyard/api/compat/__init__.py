"""Wire-compatible front ends for other products' clients, served over runyard's own services."""

from runyard.api.compat import datalinks

__all__ = ["datalinks"]
