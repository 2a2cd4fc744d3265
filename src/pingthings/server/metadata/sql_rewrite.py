"""Turn a PostgreSQL-flavoured metadata query into SQLite text, token by token.

The platform's ``sql_query`` speaks PostgreSQL: ``$1`` placeholders, ``::type`` casts, hstore
``annotations -> 'key'`` and ``skeys(annotations)``. SQLite gets:

* ``$N`` → ``?N`` (bound by number, never interpolated);
* ``expr::type`` → ``expr`` (the cast is dropped; SQLite's affinity rules compare the bound
  text with numbers as numbers where a column is numeric);
* ``->`` → ``->>`` (hstore's ``->`` yields text, which is SQLite's ``->>``);
* ``skeys(annotations)`` in a query over ``streams`` → the key column of a
  ``json_each(streams.annotations)`` join, so ``select distinct(skeys(annotations)) ...`` lists
  annotation keys as PostgreSQL does.

String literals, quoted identifiers and comments pass through untouched, so ``'$1'`` stays a
string. The tokenizer also reports what the sandbox checks: the statement's first keyword, every
identifier (quoted or not), and whether a second statement follows.
"""

from __future__ import annotations

import re
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


def _rewrite_skeys(tokens: list[Token]) -> list[Token]:
    words = [t.word if t.kind in ("ident", "qident") else t.text for t in tokens]
    significant = _significant(tokens)
    found = False
    out = list(tokens)
    for pos, index in enumerate(significant):
        if words[index] != "skeys" or tokens[index].kind != "ident":
            continue
        window = [words[i] for i in significant[pos + 1 : pos + 4]]
        if window != ["(", "annotations", ")"]:
            raise BadSQL("skeys() is supported only as skeys(annotations)")
        out[index] = Token("ident", f"{_SKEYS_ALIAS}.key")
        for i in significant[pos + 1 : pos + 4]:
            out[i] = Token("space", "")
        found = True
    if not found:
        return tokens
    for pos, index in enumerate(significant[:-1]):
        nxt = significant[pos + 1]
        if words[index] == "from" and words[nxt] == "streams":
            out[nxt] = Token("ident", f"streams, json_each(streams.annotations) AS {_SKEYS_ALIAS}")
            return out
    raise BadSQL("skeys(annotations) needs a query over the streams table (… FROM streams …)")


def rewrite(query: str) -> tuple[str, list[Token]]:
    """Rewrite a PostgreSQL-style query for SQLite.

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
    converted = _rewrite_skeys(converted)
    return "".join(t.text for t in converted), significant
