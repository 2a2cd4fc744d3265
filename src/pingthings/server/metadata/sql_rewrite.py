"""Turn a PostgreSQL-flavoured metadata query into SQLite text, token by token.

The platform's ``sql_query`` speaks PostgreSQL: ``$1`` placeholders, ``::type`` casts, hstore
``annotations -> 'key'`` and ``skeys(annotations)``. SQLite gets:

* ``$N`` → ``?N`` (bound by number, never interpolated);
* ``expr::type`` → ``expr`` (the cast is dropped; SQLite's affinity rules compare the bound
  text with numbers as numbers where a column is numeric);
* ``->`` → ``->>`` (hstore's ``->`` yields text, which is SQLite's ``->>``); SQLite before 3.38
  has no such operator, so there ``left -> right`` becomes ``hstore_get(left, right)``, a function
  the sandbox registers (the left operand is a column, a qualified column or a parenthesised or
  function-call expression; the right one a literal, parameter or column);
* ``skeys(annotations)`` in a query over ``streams`` → the key column of a
  ``json_each(streams.annotations)`` join, so ``select distinct(skeys(annotations)) ...`` lists
  annotation keys as PostgreSQL does.

String literals, quoted identifiers and comments pass through untouched, so ``'$1'`` stays a
string. The tokenizer also reports what the sandbox checks: the statement's first keyword, every
identifier (quoted or not), and whether a second statement follows.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from pingthings.server.errors import BadSQL

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<line_comment>--[^\n]*)
  | (?P<block_comment>/\*.*?\*/)
  | (?P<string>'(?:[^']|'')*')
  | (?P<qident>"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])
  | (?P<param>\$[0-9]+)
  | (?P<cast>::)
  | (?P<arrow>->>|->)
  | (?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|0[xX][0-9a-fA-F]+)
  | (?P<blob>[xX]'[0-9a-fA-F]*')
  | (?P<ident>[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*)
  | (?P<op>\|\||<<|>>|<=|>=|==|!=|<>|[-+*/%<>=~&|(),.;?:@!^#{}])
    """,
    re.VERBOSE | re.DOTALL,
)

#: Words that may continue a PostgreSQL type name after ``::`` (``double precision`` …).
_TYPE_CONTINUATIONS = frozenset({"varying", "precision", "with", "without", "time", "zone"})
_SKEYS_ALIAS = "__annotation_keys"
#: Whether this SQLite understands ``->>`` (added in 3.38.0).
NATIVE_JSON_ARROWS = sqlite3.sqlite_version_info >= (3, 38, 0)
#: Name of the function that stands in for ``->>`` on an older SQLite.
ARROW_FUNCTION = "hstore_get"
_SPACE_KINDS = ("space", "line_comment", "block_comment")
#: Keywords that can stand next to an operand but are never one (nor a function name).
_KEYWORDS = frozenset(
    [
        "all",
        "and",
        "as",
        "asc",
        "between",
        "by",
        "case",
        "cast",
        "collate",
        "desc",
        "distinct",
        "else",
        "end",
        "escape",
        "except",
        "exists",
        "from",
        "glob",
        "group",
        "having",
        "in",
        "intersect",
        "is",
        "isnull",
        "join",
        "like",
        "limit",
        "match",
        "not",
        "notnull",
        "null",
        "offset",
        "on",
        "or",
        "order",
        "regexp",
        "select",
        "then",
        "union",
        "using",
        "values",
        "when",
        "where",
        "with",
    ]
)


def _is_name(token: Token) -> bool:
    return token.kind == "qident" or (token.kind == "ident" and token.word not in _KEYWORDS)


@dataclass(frozen=True)
class Token:
    """One lexical token: its kind (a group name of the pattern) and its text."""

    kind: str
    text: str

    @property
    def word(self) -> str:
        """Lower-cased identifier text with quotes removed ("" for non-identifiers)."""
        if self.kind == "ident":
            return self.text.lower()
        if self.kind == "qident":
            inner = self.text[1:-1]
            quote = self.text[0]
            if quote in '"`':
                inner = inner.replace(quote * 2, quote)
            return inner.lower()
        return ""


def tokenize(query: str) -> list[Token]:
    """Split ``query`` into tokens; BadSQL on text that cannot be tokenized (an open quote)."""
    tokens: list[Token] = []
    position = 0
    while position < len(query):
        match = _TOKEN.match(query, position)
        if match is None or match.end() == position:
            snippet = query[position : position + 20]
            raise BadSQL(f"cannot parse the query near {snippet!r} (unterminated quote or comment?)")
        kind = match.lastgroup or "op"
        tokens.append(Token(kind, match.group()))
        position = match.end()
    return tokens


def _significant(tokens: list[Token]) -> list[int]:
    return [i for i, t in enumerate(tokens) if t.kind not in ("space", "line_comment", "block_comment")]


def _drop_casts(tokens: list[Token]) -> list[Token]:
    out: list[Token] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.kind != "cast":
            out.append(token)
            index += 1
            continue
        index += 1
        index = _skip_space(tokens, index)
        if index >= len(tokens) or tokens[index].kind not in ("ident", "qident"):
            raise BadSQL("a '::' cast must be followed by a type name")
        index += 1
        while True:
            after = _skip_space(tokens, index)
            if (
                after < len(tokens)
                and tokens[after].kind == "ident"
                and tokens[after].word in _TYPE_CONTINUATIONS
            ):
                index = after + 1
                continue
            if after < len(tokens) and tokens[after].text == "(":
                close = after
                while close < len(tokens) and tokens[close].text != ")":
                    close += 1
                index = close + 1
                continue
            if after + 1 < len(tokens) and tokens[after].text == "[" and tokens[after + 1].text == "]":
                index = after + 2
                continue
            break
    return out


def _skip_space(tokens: list[Token], index: int) -> int:
    while index < len(tokens) and tokens[index].kind in ("space", "line_comment", "block_comment"):
        index += 1
    return index


def _pop_left_operand(out: list[Token]) -> str:
    """Remove the operand that ends ``out`` (skipping trailing spaces) and return its text."""
    while out and out[-1].kind in _SPACE_KINDS:
        out.pop()
    if not out:
        raise BadSQL("'->' needs a left operand")
    pieces: list[str] = []
    last = out.pop()
    if last.text == ")":
        depth = 1
        pieces.append(last.text)
        while out and depth:
            token = out.pop()
            depth += {")": 1, "(": -1}.get(token.text, 0)
            pieces.append(token.text)
        if depth:
            raise BadSQL("unbalanced parentheses before '->'")
        while out and out[-1].kind in _SPACE_KINDS:
            out.pop()
        if out and _is_name(out[-1]):
            pieces.append(out.pop().text)
    elif _is_name(last) or last.kind in ("param", "string"):
        pieces.append(last.text)
        while len(out) >= 2 and out[-1].text == "." and _is_name(out[-2]):
            pieces.append(out.pop().text)
            pieces.append(out.pop().text)
    else:
        raise BadSQL(f"unsupported left operand {last.text!r} of '->' on this SQLite version")
    return "".join(reversed(pieces))


def _arrows_as_calls(tokens: list[Token]) -> list[Token]:
    """Rewrite every ``left -> right`` / ``left ->> right`` into ``hstore_get(left, right)``."""
    out: list[Token] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.kind != "arrow":
            out.append(token)
            index += 1
            continue
        left = _pop_left_operand(out)
        index = _skip_space(tokens, index + 1)
        if index >= len(tokens) or not (
            _is_name(tokens[index]) or tokens[index].kind in ("string", "param", "number")
        ):
            raise BadSQL("'->' needs a key (a string, a $N parameter or a column) on its right")
        out.append(Token("space", " "))  # the spaces before the operand were consumed with it
        out.append(Token("ident", f"{ARROW_FUNCTION}({left}, {tokens[index].text})"))
        index += 1
    return out


def _rewrite_skeys(tokens: list[Token]) -> list[Token]:
    """``skeys(annotations)`` → a column of ``json_each`` joined to the ``streams`` table."""
    words = [t.word if t.kind in ("ident", "qident") else t.text for t in tokens]
    significant = _significant(tokens)
    found = False
    out = list(tokens)
    for pos, index in enumerate(significant):
        if words[index] != "skeys" or tokens[index].kind != "ident":
            continue
        after = [words[i] for i in significant[pos + 1 : pos + 6]]
        if after[:3] == ["(", "annotations", ")"]:
            width = 3
        elif len(after) == 5 and after[0] == "(" and after[2:] == [".", "annotations", ")"]:
            width = 5
        else:
            raise BadSQL("skeys() is supported only as skeys(annotations)")
        out[index] = Token("ident", f"{_SKEYS_ALIAS}.key")
        for i in significant[pos + 1 : pos + 1 + width]:
            out[i] = Token("space", "")
        found = True
    if not found:
        return tokens
    for pos, index in enumerate(significant[:-1]):
        table = significant[pos + 1]
        if words[index] != "from" or words[table] != "streams":
            continue
        following = significant[pos + 2 : pos + 4]
        last, source = table, "streams"
        if following and words[following[0]] == "as" and len(following) == 2:
            last, source = following[1], tokens[following[1]].text
        elif following and _is_name(tokens[following[0]]):
            last, source = following[0], tokens[following[0]].text
        join = f", json_each({source}.annotations) AS {_SKEYS_ALIAS}"
        out[last] = Token("ident", out[last].text + join)
        return out
    raise BadSQL("skeys(annotations) needs a query over the streams table (… FROM streams …)")


def rewrite(query: str, native_arrows: bool = NATIVE_JSON_ARROWS) -> tuple[str, list[Token]]:
    """Rewrite a PostgreSQL-style query for SQLite.

    Parameters
    ----------
    query
        The query text.
    native_arrows
        Use SQLite's ``->>`` operator (3.38+); otherwise call :data:`ARROW_FUNCTION`.

    Returns
    -------
    tuple
        The SQLite text and the tokens of the *original* query (for the sandbox's checks).

    Raises
    ------
    BadSQL
        Unparseable text, an empty query, or more than one statement.
    """
    if not isinstance(query, str):
        raise BadSQL("the query must be text")
    original = tokenize(query)
    significant = [original[i] for i in _significant(original)]
    while significant and significant[-1].text == ";":
        significant.pop()
    if not significant:
        raise BadSQL("the query is empty")
    if any(t.text == ";" for t in significant):
        raise BadSQL("only one SQL statement may be sent at a time")
    tokens = _drop_casts(original)
    converted: list[Token] = []
    for token in tokens:
        if token.kind == "param":
            converted.append(Token("param", "?" + token.text[1:]))
        elif token.kind == "arrow":
            converted.append(Token("arrow", "->>"))
        else:
            converted.append(token)
    if not native_arrows:
        converted = _arrows_as_calls(converted)
    converted = _rewrite_skeys(converted)
    return "".join(t.text for t in converted), significant
