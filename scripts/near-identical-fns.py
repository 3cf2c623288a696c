#!/usr/bin/env python3
"""Near-identical Rust functions: pairs whose text is more than 85% the same.

Method (issue 10, item 6):

1. Every `.rs` file under the root (default `crates/payrail/src`) is read with
   comments, string and char literals blanked out (kept as same-length runs of
   spaces, so braces inside them do not count and line numbers stay true).
2. Modules under `#[cfg(test)]` (`#[cfg(test)] mod x { ... }`) are left out,
   as is any item directly under `#[cfg(test)]`.
3. A function starts at the `fn` keyword (with its `pub`/`async`/... prefix
   on the same line) and ends at the brace matching the first `{` after its
   signature; a declaration ending in `;` (trait method without a body) is
   not a function. Functions nested in a function are found too.
4. Functions of fewer than `--min-lines` lines (default 8, counted from the
   `fn` line to the closing brace, inclusive) are left out.
5. The text compared is the function's source with its comments removed
   (string literals kept: log and error texts are part of what is copied),
   every run of whitespace folded into one space. With `--factor-kinds`, names that only say which of the two record
   kinds a function handles (dmt, bill, bbps, transfer, payment, ackno, txnid,
   ... in any case, also inside identifiers such as `apply_dmt`) are replaced
   by one token `KIND` first.
6. Two functions are a pair when `difflib.SequenceMatcher(None, a, b).ratio()`
   on their folded text (characters) is above `--threshold` (default 0.85).
   `real_quick_ratio` and `quick_ratio` are upper bounds of `ratio`, so they
   only skip pairs that cannot pass.

Prints one line per pair (ratio, both locations and names) and the count;
`--count-only` prints the count alone; `--exclude DIR` (repeatable, relative
to the root) leaves a folder out, `--only DIR` keeps only pairs with at least
one side under DIR, `--split DIR` reports counts inside and outside DIR.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from dataclasses import dataclass

KIND_WORDS = [
    # Longest first so that `transfers` is not left as `KINDs` by `transfer`.
    "transfers", "transfer", "payments", "payment", "bills", "bill", "bbps", "dmt",
    "acknos", "ackno", "txnids", "txnid", "txn_id", "biller", "remitter",
]
KIND_RE = re.compile("|".join(KIND_WORDS), re.IGNORECASE)


@dataclass
class Function:
    path: str
    line: int
    name: str
    lines: int
    text: str  # whitespace-folded source


def blank_literals(src: str) -> str:
    """Comments, strings and chars replaced by spaces (newlines kept)."""
    out = []
    i, n = 0, len(src)

    def blank(chunk: str) -> str:
        return re.sub(r"[^\n]", " ", chunk)

    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(src[i:j]))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(src[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', src[i:i + 10]) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            m = re.match(r'r(#*)"', src[i:])
            hashes = m.group(1)
            end = src.find('"' + hashes, i + len(m.group(0)))
            j = n if end < 0 else end + 1 + len(hashes)
            out.append(blank(src[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append(blank(src[i:j + 1]))
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a).
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", src[i:])
            if m:
                out.append(blank(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def without_comments(src: str, code: str, start: int, end: int) -> str:
    """`src[start:end]` without its comments (found as blanks in `code`)."""
    out, i = [], start
    while i < end:
        if code[i] == " " and (src.startswith("//", i) or src.startswith("/*", i)):
            j = i
            while j < end and code[j] == " " and src[j] != "\n":
                j += 1
            if src.startswith("/*", i):  # a block comment may span lines
                while j < end and code[j] in " \n" and not src.startswith("*/", j - 2):
                    j += 1
            i = j
            continue
        out.append(src[i])
        i += 1
    return "".join(out)


def matching_brace(code: str, open_at: int) -> int:
    depth = 0
    for j in range(open_at, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(code) - 1


def test_ranges(code: str) -> list[tuple[int, int]]:
    """Offsets of items under `#[cfg(test)]`."""
    ranges = []
    for m in re.finditer(r"#\[cfg\(test\)\]", code):
        k = m.end()
        # The item runs to its matching brace, or to `;` if that comes first.
        brace, semi = code.find("{", k), code.find(";", k)
        if brace < 0 or (0 <= semi < brace):
            ranges.append((m.start(), semi if semi >= 0 else len(code)))
        else:
            ranges.append((m.start(), matching_brace(code, brace)))
    return ranges


FN_RE = re.compile(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)")


def functions_in(path: str, rel: str, min_lines: int) -> list[Function]:
    with open(path, encoding="utf-8") as f:
        src = f.read()
    code = blank_literals(src)
    skip = test_ranges(code)
    found = []
    for m in FN_RE.finditer(code):
        if any(a <= m.start() <= b for a, b in skip):
            continue
        # The body starts at the first `{` after the signature's parentheses
        # at depth zero; a `;` before it means a declaration.
        j, paren, angle = m.end(), 0, 0
        body = -1
        while j < len(code):
            ch = code[j]
            if ch in "([":
                paren += 1
            elif ch in ")]":
                paren -= 1
            elif ch == ";" and paren == 0:
                break
            elif ch == "{" and paren == 0:
                body = j
                break
            j += 1
        if body < 0:
            continue
        end = matching_brace(code, body)
        line_start = code.rfind("\n", 0, m.start()) + 1
        first = code.count("\n", 0, m.start()) + 1
        last = code.count("\n", 0, end) + 1
        if last - first + 1 < min_lines:
            continue
        text = " ".join(without_comments(src, code, line_start, end + 1).split())
        found.append(Function(rel, first, m.group(1), last - first + 1, text))
    return found


def collect(root: str, min_lines: int, exclude: list[str]) -> list[Function]:
    funcs = []
    for dirpath, _, files in os.walk(root):
        for name in sorted(files):
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if any(rel == e or rel.startswith(e.rstrip("/") + "/") for e in exclude):
                continue
            funcs.extend(functions_in(path, rel, min_lines))
    funcs.sort(key=lambda f: (f.path, f.line))
    return funcs


def pairs(funcs: list[Function], threshold: float, factor: bool):
    texts = [KIND_RE.sub("KIND", f.text) if factor else f.text for f in funcs]
    for i in range(len(funcs)):
        for j in range(i + 1, len(funcs)):
            a, b = texts[i], texts[j]
            # ratio <= 2*min/(len a + len b): skip what cannot pass.
            if 2 * min(len(a), len(b)) / (len(a) + len(b)) <= threshold:
                continue
            sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
            if sm.real_quick_ratio() <= threshold or sm.quick_ratio() <= threshold:
                continue
            r = sm.ratio()
            if r > threshold:
                yield r, funcs[i], funcs[j]


def under(f: Function, d: str) -> bool:
    return f.path.startswith(d.rstrip("/") + "/") or f.path == d


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", nargs="?", default="crates/payrail/src")
    ap.add_argument("--min-lines", type=int, default=8)
    ap.add_argument("--threshold", type=float, default=0.85)
    ap.add_argument("--factor-kinds", action="store_true", help="fold DMT/bill names into one token first")
    ap.add_argument("--exclude", action="append", default=[], help="folder (relative to root) to leave out")
    ap.add_argument("--only", help="keep pairs with a side under this folder (relative to root)")
    ap.add_argument("--split", help="also count pairs inside / outside this folder (relative to root)")
    ap.add_argument("--count-only", action="store_true")
    args = ap.parse_args()

    funcs = collect(args.root, args.min_lines, args.exclude)
    found = [p for p in pairs(funcs, args.threshold, args.factor_kinds)
             if not args.only or under(p[1], args.only) or under(p[2], args.only)]
    if not args.count_only:
        for r, a, b in sorted(found, key=lambda p: -p[0]):
            print(f"{r:.3f}  {a.path}:{a.line} {a.name} ({a.lines})  ~  {b.path}:{b.line} {b.name} ({b.lines})")
    print(f"{len(found)} pairs among {len(funcs)} functions of >= {args.min_lines} lines"
          f"{' (kinds factored)' if args.factor_kinds else ''}")
    if args.split:
        inside = sum(1 for _, a, b in found if under(a, args.split) and under(b, args.split))
        touching = sum(1 for _, a, b in found if under(a, args.split) != under(b, args.split))
        print(f"  inside {args.split}: {inside}; outside: {len(found) - inside - touching}; across: {touching}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
