"""Salesforce Loyalty Management adapter for loyaltykit."""

__version__ = "0.1.0"  # the distribution's one version source (pyproject reads it)

from .adapter import SalesforceAdapter  # noqa: E402 - after __version__, which adapter.py imports
from .settings import SalesforceSettings  # noqa: E402

__all__ = ["SalesforceAdapter", "SalesforceSettings", "__version__"]
