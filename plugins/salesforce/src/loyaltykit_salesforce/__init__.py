"""Salesforce Loyalty Management adapter for loyaltykit."""

from .adapter import SalesforceAdapter
from .settings import SalesforceSettings

__all__ = ["SalesforceAdapter", "SalesforceSettings"]
__version__ = "0.1.0"
