"""feedbackctl: runtime informs authority; it never replaces it."""

__version__ = "0.1.0"
