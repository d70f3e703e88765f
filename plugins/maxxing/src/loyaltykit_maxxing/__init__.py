"""MAXXING promotion engine adapter for loyaltykit."""

__version__ = "0.1.0"
