"""loyaltykit adapter for the Reference engine, an imaginary engine documented in this package's
README: the template a new adapter copies (settings, transformers, flows, fake, harness)."""

__version__ = "0.1.0"
