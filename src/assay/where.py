"""The ``where`` language: a small grammar parsed into a tree, never ``eval``-ed.

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | atom
    atom    := "(" expr ")" | operand cmp operand | operand ["not"] "in" list
    cmp     := "==" | "=" | "!=" | "<" | "<=" | ">" | ">="
    operand := column | number | 'string' | "string"
    list    := "[" literal ("," literal)* "]"

The tree compiles to a vectorized Polars expression. SPEC: a ``where`` that
reads a column the row leaves empty is false for that row, whatever the
operators around it (so ``not x > 5`` is false where ``x`` is empty).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from .errors import WhereSyntaxError

KEYWORDS = {"and", "or", "not", "in"}
COMPARATORS = {"==", "=", "!=", "<", "<=", ">", ">="}


@dataclass(frozen=True)
class Column:
    name: str


@dataclass(frozen=True)
class Literal:
    value: str | int | float


@dataclass(frozen=True)
class Compare:
    op: str
    left: Column | Literal
    right: Column | Literal


@dataclass(frozen=True)
class InList:
    operand: Column | Literal
    values: tuple[str | int | float, ...]
    negated: bool


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    operands: tuple[Node, ...]


Node = Compare | InList | Not | BoolOp

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<op>==|!=|<=|>=|=|<|>)
      | (?P<punct>[()\[\],])
      | (?P<name>[A-Za-z_][A-Za-z0-9_.]*|`[^`]+`)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            bad = text[pos:].lstrip()
            raise WhereSyntaxError(text, len(text) - len(bad), f"unexpected {bad[:1]!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        start = match.start(kind)
        if kind == "name" and value.lower() in KEYWORDS:
            kind, value = "keyword", value.lower()
        tokens.append(_Token(kind, value, start))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, message: str, tok: _Token | None = None) -> WhereSyntaxError:
        tok = tok or self.peek()
        return WhereSyntaxError(self.text, tok.pos, message)

    def expect(self, kind: str, text: str | None = None) -> _Token:
        tok = self.peek()
        if tok.kind != kind or (text is not None and tok.text != text):
            want = repr(text) if text else kind
            got = repr(tok.text) if tok.text else "end of expression"
            raise self.fail(f"expected {want}, found {got}")
        return self.take()

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise self.fail("empty expression")
        node = self.parse_or()
        if self.peek().kind != "end":
            raise self.fail(f"unexpected {self.peek().text!r}")
        return node

    def parse_or(self) -> Node:
        parts = [self.parse_and()]
        while self.peek().kind == "keyword" and self.peek().text == "or":
            self.take()
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts))

    def parse_and(self) -> Node:
        parts = [self.parse_not()]
        while self.peek().kind == "keyword" and self.peek().text == "and":
            self.take()
            parts.append(self.parse_not())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def parse_not(self) -> Node:
        tok = self.peek()
        if tok.kind == "keyword" and tok.text == "not":
            self.take()
            return Not(self.parse_not())
        return self.parse_atom()

    def parse_atom(self) -> Node:
        tok = self.peek()
        if tok.kind == "punct" and tok.text == "(":
            self.take()
            node = self.parse_or()
            self.expect("punct", ")")
            return node
        left = self.parse_operand()
        tok = self.peek()
        if tok.kind == "op":
            self.take()
            right = self.parse_operand()
            op = "==" if tok.text == "=" else tok.text
            if isinstance(left, Literal) and isinstance(right, Literal):
                raise self.fail("a comparison needs at least one column", tok)
            return Compare(op, left, right)
        negated = False
        if tok.kind == "keyword" and tok.text == "not":
            self.take()
            negated = True
            tok = self.peek()
        if tok.kind == "keyword" and tok.text == "in":
            self.take()
            return InList(left, self.parse_list(), negated)
        raise self.fail("expected a comparison (==, !=, <, <=, >, >=) or 'in [...]'")

    def parse_operand(self) -> Column | Literal:
        tok = self.take()
        if tok.kind == "name":
            name = tok.text[1:-1] if tok.text.startswith("`") else tok.text
            return Column(name)
        if tok.kind == "number":
            return Literal(_number(tok.text))
        if tok.kind == "string":
            return Literal(_unquote(tok.text))
        got = repr(tok.text) if tok.text else "end of expression"
        raise self.fail(f"expected a column name or a literal, found {got}", tok)

    def parse_list(self) -> tuple[str | int | float, ...]:
        self.expect("punct", "[")
        values: list[str | int | float] = []
        while True:
            tok = self.take()
            if tok.kind == "number":
                values.append(_number(tok.text))
            elif tok.kind == "string":
                values.append(_unquote(tok.text))
            else:
                raise self.fail("expected a string or number in the list", tok)
            sep = self.take()
            if sep.kind == "punct" and sep.text == "]":
                return tuple(values)
            if not (sep.kind == "punct" and sep.text == ","):
                raise self.fail("expected ',' or ']'", sep)


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_where(text: str) -> Node:
    """Parse a ``where`` expression into a tree; raises WhereSyntaxError."""
    return _Parser(text).parse()


def columns(node: Node) -> set[str]:
    """The event columns an expression reads."""
    if isinstance(node, Compare):
        return {o.name for o in (node.left, node.right) if isinstance(o, Column)}
    if isinstance(node, InList):
        return {node.operand.name} if isinstance(node.operand, Column) else set()
    if isinstance(node, Not):
        return columns(node.operand)
    return set().union(*(columns(o) for o in node.operands))


def render(node: Node) -> str:
    """Canonical text of a tree (used in `assay check` and as a grouping key)."""
    if isinstance(node, Compare):
        return f"{_render_operand(node.left)} {node.op} {_render_operand(node.right)}"
    if isinstance(node, InList):
        inner = ", ".join(_render_literal(v) for v in node.values)
        neg = "not " if node.negated else ""
        return f"{_render_operand(node.operand)} {neg}in [{inner}]"
    if isinstance(node, Not):
        return f"not ({render(node.operand)})"
    return f" {node.op} ".join(f"({render(o)})" for o in node.operands)


def _render_operand(operand: Column | Literal) -> str:
    if isinstance(operand, Column):
        return operand.name
    return _render_literal(operand.value)


def _render_literal(value: str | int | float) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


class WhereTypeError(ValueError):
    """A column's type does not fit how the expression uses it."""


def to_polars(node: Node, schema: pl.Schema) -> pl.Expr:
    """Compile to a boolean Polars expression that is false where a read column is empty."""
    missing = sorted(c for c in columns(node) if c not in schema)
    if missing:
        raise WhereTypeError(f"reads column '{missing[0]}', which the events do not have")
    present = [pl.col(c).is_not_null() for c in sorted(columns(node))]
    expr = _compile(node, schema)
    for guard in present:
        expr = expr & guard
    return expr.fill_null(False)


def _compile(node: Node, schema: pl.Schema) -> pl.Expr:
    if isinstance(node, BoolOp):
        parts = [_compile(o, schema) for o in node.operands]
        out = parts[0]
        for p in parts[1:]:
            out = (out & p) if node.op == "and" else (out | p)
        return out
    if isinstance(node, Not):
        return ~_compile(node.operand, schema)
    if isinstance(node, InList):
        operand = _operand(node.operand, schema, node.values[0])
        values = [_literal_for(node.operand, v, schema) for v in node.values]
        expr = operand.is_in(values)
        return ~expr if node.negated else expr
    sample = node.right.value if isinstance(node.right, Literal) else None
    if sample is None and isinstance(node.left, Literal):
        sample = node.left.value
    left = _operand(node.left, schema, sample, other=node.right)
    right = _operand(node.right, schema, sample, other=node.left)
    ops = {
        "==": left.__eq__, "!=": left.__ne__, "<": left.__lt__,
        "<=": left.__le__, ">": left.__gt__, ">=": left.__ge__,
    }
    return ops[node.op](right)


def _is_numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric()


def _literal_for(column: Column | Literal, value: str | int | float, schema: pl.Schema) -> object:
    if not isinstance(column, Column):
        return value
    dtype = schema[column.name]
    if isinstance(dtype, pl.Datetime):
        from .events import parse_timestamp_literal

        if not isinstance(value, str):
            raise WhereTypeError(f"compares timestamp column '{column.name}' with number {value!r}; "
                                 "write the time as a quoted ISO-8601 string")
        return parse_timestamp_literal(value)
    if _is_numeric(dtype) and isinstance(value, str):
        raise WhereTypeError(f"compares numeric column '{column.name}' with text {value!r}")
    if not _is_numeric(dtype) and not isinstance(value, str):
        raise WhereTypeError(f"compares text column '{column.name}' with number {value!r}; "
                             f"quote it ('{value}') to compare as text")
    return value


def _operand(operand: Column | Literal, schema: pl.Schema, sample: object,
             other: Column | Literal | None = None) -> pl.Expr:
    if isinstance(operand, Column):
        if isinstance(other, Column):
            a, b = schema[operand.name], schema[other.name]
            if _is_numeric(a) != _is_numeric(b):
                raise WhereTypeError(f"compares column '{operand.name}' ({a}) with column "
                                     f"'{other.name}' ({b})")
        return pl.col(operand.name)
    if isinstance(other, Column):
        return pl.lit(_literal_for(other, operand.value, schema))
    return pl.lit(operand.value)
