"""scrm: the WeChat-first social CRM backend (kernel and composition root)."""

__version__ = "0.1.0"
