"""borderwatch: poll news sources, match keyword rules, store hits, email digests."""

__version__ = "0.1.0"
USER_AGENT = f"borderwatch/{__version__} (+https://github.com/borderwatch/borderwatch; news monitor)"
