"""CRM.COM Rewards adapter for loyaltykit (POS front-end reduction model)."""

__version__ = "0.1.0"
