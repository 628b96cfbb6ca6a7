"""The rule language of keywords.yaml: compile rules once, match articles fast."""

from .compile import Matcher, compile_rules
from .match import Hit

__all__ = ["Matcher", "compile_rules", "Hit"]
