"""`-l`: a label selector checked as the API server parses it, before any request.

Kubernetes' grammar (k8s.io/apimachinery/pkg/labels/selector.go, which kubectl and the API
server share): requirements separated by commas, each `key`, `!key`, `key=value`,
`key==value`, `key!=value`, `key in (v1,v2)`, `key notin (v1,v2)`, or `key>N` / `key<N`
(integers); spaces between tokens do not matter. Keys and values are checked with the API's
own patterns. The words of an error are the parser's ("found 'x', expected: …"), so they
read as kubectl's do.
"""

from __future__ import annotations

import re
from typing import Final

from wukong.api.names import MAX_OBJECT_NAME
from wukong.api.placement import LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN

_SYMBOLS: Final = frozenset("=!(),<>")
_PAIRS: Final = frozenset({"!=", "=="})
_SPACE: Final = frozenset(" \t\r\n")
_EXACT: Final = frozenset({"=", "==", "!=", ">", "<"})
_SETS: Final = frozenset({"in", "notin"})
_OPERATORS: Final = "in, notin, =, ==, !=, gt, lt"
_END: Final = ""  # the last token: the end of the selector


class BadSelector(ValueError):
    """The selector does not parse, or names a key or value no label can have."""


def check_selector(text: str) -> None:
    """Raise BadSelector unless `text` is a label selector the API server would take."""
    _Parser(_tokens(text)).selector()


def _tokens(text: str) -> list[tuple[bool, str]]:
    """(is_symbol, text) for each token, as Kubernetes' lexer splits them, then the end."""
    tokens: list[tuple[bool, str]] = []
    at = 0
    while at < len(text):
        if text[at] in _SPACE:
            at += 1
        elif text[at] in _SYMBOLS:
            size = 2 if text[at : at + 2] in _PAIRS else 1
            tokens.append((True, text[at : at + size]))
            at += size
        else:
            start = at
            while at < len(text) and text[at] not in _SYMBOLS and text[at] not in _SPACE:
                at += 1
            tokens.append((False, text[start:at]))
    return [*tokens, (False, _END)]


def _found(token: str) -> str:
    return "found the end" if token == _END else f"found '{token}'"


class _Parser:
    """Kubernetes' recursive-descent parser, reduced to saying whether it parses."""

    def __init__(self, tokens: list[tuple[bool, str]]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self) -> tuple[bool, str]:
        return self.tokens[self.at]

    def take(self) -> tuple[bool, str]:
        token = self.tokens[self.at]
        self.at = min(self.at + 1, len(self.tokens) - 1)
        return token

    def word(self) -> str | None:
        """The next token if it is a word (a key or value), taken; else None, not taken."""
        symbol, text = self.peek()
        if symbol or text == _END:
            return None
        return self.take()[1]

    def selector(self) -> None:
        while True:
            symbol, text = self.peek()
            if text == _END:
                return
            if symbol and text != "!":
                raise BadSelector(f"{_found(text)}, expected: !, identifier, or the end")
            self.requirement()
            _, after = self.take()
            if after == _END:
                return
            if after != ",":
                raise BadSelector(f"{_found(after)}, expected: ',' or the end")
            symbol, text = self.peek()
            if text == _END or (symbol and text != "!"):
                raise BadSelector(f"{_found(text)}, expected: identifier after ','")

    def requirement(self) -> None:
        negated = self.peek() == (True, "!")
        if negated:
            self.take()
        key = self.word()
        if key is None:
            raise BadSelector(f"{_found(self.peek()[1])}, expected: identifier")
        _key(key)
        if negated or self.peek()[1] in (_END, ","):
            return  # !key, key: whether the label is there
        symbol, operator = self.take()
        if symbol and operator in _EXACT:
            self.exact(key, operator)
        elif not symbol and operator in _SETS:
            self.values(key)
        else:
            raise BadSelector(f"{_found(operator)}, expected: {_OPERATORS}")

    def exact(self, key: str, operator: str) -> None:
        value = "" if self.peek()[1] in (_END, ",") else self.word()
        if value is None:
            raise BadSelector(f"{_found(self.peek()[1])}, expected: identifier")
        if operator in "<>" and not re.fullmatch(r"[-+]?[0-9]+", value):
            raise BadSelector(f"{key}{operator}{value}: for > and <, the value must be an integer")
        _value(key, value)

    def values(self, key: str) -> None:
        symbol, text = self.take()
        if (symbol, text) != (True, "("):
            raise BadSelector(f"{_found(text)}, expected: '('")
        while True:  # `(a,b)`; empty entries (`()`, `(a,)`) are the empty value
            if (value := self.word()) is not None:
                _value(key, value)
            symbol, text = self.take()
            if (symbol, text) == (True, ")"):
                return
            if (symbol, text) != (True, ","):
                raise BadSelector(f"{_found(text)}, expected: ',', ')' or identifier")


def check_label(key: str, value: str) -> None:
    """Raise BadSelector unless `key: value` is a label the API server would store (an
    empty value is one, as `kubectl label` takes `tier=`)."""
    _key(key)
    _value(key, value)


def _key(key: str) -> None:
    """A label key: an optional DNS-subdomain prefix and '/', then a name of up to 63."""
    prefix = key.rpartition("/")[0]  # the pattern leaves its length to a check of its own
    if len(prefix) > MAX_OBJECT_NAME or not re.fullmatch(LABEL_KEY_PATTERN, key):
        raise BadSelector(
            f"{key!r} is not a label key: an optional DNS prefix and '/', then up to 63 "
            "letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        )


def _value(key: str, value: str) -> None:
    if not re.fullmatch(LABEL_VALUE_PATTERN, value):
        raise BadSelector(
            f"{value!r} (of {key}) is not a label value: up to 63 letters, digits, '-', '_' and "
            "'.', starting and ending with a letter or digit"
        )
