"""The Wukong API: models, names, validation, and the JSON alias every layer shares."""

from wukong.api._base import JsonObj

__all__ = ["JsonObj"]
