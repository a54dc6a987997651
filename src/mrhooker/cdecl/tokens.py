"""C text as tokens, and the tokens as top-level declarations: GNU extensions are removed or renamed before
pycparser sees the text (asm labels and the attributes that change a type are noted). No parsing here."""

import re
from dataclasses import dataclass
from typing import List, Optional

_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<string>L?"(?:[^"\\\n]|\\.)*")
    | (?P<char>L?'(?:[^'\\\n]|\\.)*')
    | (?P<word>[A-Za-z_$][A-Za-z0-9_$]*)
    | (?P<number>\.?[0-9](?:[eEpP][+-]|[A-Za-z0-9_.])*)
    | (?P<punct>\.\.\.|<<=|>>=|->|\+\+|--|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%&|^]=|[^\s])
    """,
    re.X | re.S,
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_IDENTIFIERS_IN = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")

# GNU spellings -> what pycparser understands; None drops the token (no effect on the ABI).
_RESPELL = {
    "__restrict": None,
    "__restrict__": None,
    "restrict": None,
    "__extension__": None,
    "__inline": "inline",
    "__inline__": "inline",
    "__signed": "signed",
    "__signed__": "signed",
    "__const": "const",
    "__const__": "const",
    "__volatile": "volatile",
    "__volatile__": "volatile",
    "__alignof": "_Alignof",
    "__alignof__": "_Alignof",
    "__thread": "_Thread_local",
    "__complex__": "_Complex",
}
_ATTRIBUTE_WORDS = ("__attribute__", "__attribute")
_ASM_WORDS = ("__asm__", "__asm", "asm")
# Attributes that change how a typedef'd value is passed, so they must not just be dropped.
_TYPE_CHANGING_ATTRIBUTES = ("transparent_union", "vector_size", "mode")


def _tokenize(text):
    return [m.group() for m in _TOKEN.finditer(text) if m.lastgroup != "space"]


@dataclass
class _Chunk:
    """One top-level declaration (or definition) of the token stream."""

    tokens: List[str]
    kind: str  # 'typedef', 'declaration' (has a parenthesis at top level), 'definition', 'other'
    symbol: Optional[str]  # the __asm__("...") label, if any
    attributes: frozenset  # the type-changing attributes seen at top level


def _matching_paren(tokens, start):
    """Index just past the ')' matching the '(' at tokens[start] (start itself if it is no '(')."""
    if start >= len(tokens) or tokens[start] != "(":
        return start
    depth = 0
    for index in range(start, len(tokens)):
        if tokens[index] == "(":
            depth += 1
        elif tokens[index] == ")":
            depth -= 1
            if depth == 0:
                return index + 1
    return len(tokens)


class _PendingChunk:
    """The declaration being collected by _split_declarations."""

    def __init__(self):
        self.tokens = []
        self.symbol = None
        self.attributes = set()
        self.is_typedef = self.has_paren = self.has_body = False

    def chunk(self):
        if not self.tokens or self.tokens == [";"]:
            return None
        if self.has_body:
            kind = "definition"
        elif self.is_typedef:
            kind = "typedef"
        elif self.has_paren:
            kind = "declaration"
        else:
            kind = "other"
        return _Chunk(self.tokens, kind, self.symbol, frozenset(self.attributes))


def _split_declarations(tokens):
    """Top-level declarations, with GNU attributes and asm labels taken out (and noted)."""
    chunks = []
    pending = _PendingChunk()
    depth = 0
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token in _ATTRIBUTE_WORDS or token in _ASM_WORDS:
            end = _matching_paren(tokens, index + 1)
            inner = tokens[index + 2 : end - 1]
            if depth == 0 and token in _ASM_WORDS:
                pending.symbol = "".join(t[1:-1] for t in inner if t.startswith('"'))
            elif depth == 0:
                pending.attributes.update(
                    w.strip("_") for w in inner if w.strip("_") in _TYPE_CHANGING_ATTRIBUTES
                )
            index = max(end, index + 1)
            continue
        index += 1
        if token in _RESPELL:
            token = _RESPELL[token]
            if token is None:
                continue
        if depth == 0:
            if token == "typedef":
                pending.is_typedef = True
            elif token == "(":
                pending.has_paren = True
            elif token == "{" and pending.tokens and pending.tokens[-1] == ")":
                pending.has_body = True
        pending.tokens.append(token)
        if token in ("(", "[", "{"):
            depth += 1
        elif token in (")", "]", "}"):
            depth = max(depth - 1, 0)
        if depth == 0 and (token == ";" or (token == "}" and pending.has_body)):
            chunk = pending.chunk()
            if chunk is not None:
                chunks.append(chunk)
            pending = _PendingChunk()
    chunk = pending.chunk()
    if chunk is not None:
        chunks.append(chunk)
    return chunks


def _chunk_line(chunk):
    line = " ".join(chunk.tokens)
    return line if line.endswith((";", "}")) else line + " ;"


# C's keywords (and gcc's __int128): never a function's name, nor a typedef's
_C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if "
    "inline int long register restrict return short signed sizeof static struct switch typedef "
    "union unsigned void volatile while _Alignas _Alignof _Atomic _Bool _Complex _Generic "
    "_Imaginary _Noreturn _Static_assert _Thread_local __int128".split()
)
