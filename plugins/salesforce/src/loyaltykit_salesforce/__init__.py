"""Salesforce Loyalty Management adapter for loyaltykit."""

__version__ = "0.1.0"  # the distribution's one version source (pyproject reads it)

from .adapter import SalesforceAdapter
from .settings import SalesforceSettings

__all__ = ["SalesforceAdapter", "SalesforceSettings", "__version__"]
