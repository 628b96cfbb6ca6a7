"""Storage: the only package that speaks SQL. SQLite (``sqlite.py``) today."""

from .sqlite import *  # noqa: F401,F403
