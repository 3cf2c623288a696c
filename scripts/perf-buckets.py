#!/usr/bin/env python3
"""Where a status lookup's server time goes, from a `perf script` dump.

    perf record -F 400 --call-graph dwarf,16384 -p <bench pid> -o perf.data -- sleep 3
    perf script -i perf.data > perf.txt
    scripts/perf-buckets.py server < perf.txt     # or: loadgen

Each sample of a thread whose name starts with the argument goes to the
innermost frame of its stack that matches one of the parts below (generic
type parameters are stripped first, so that `Foo<axum::Body>` does not
count as axum); a sample that matches none is `other`.
"""
import collections
import re
import sys


def strip_generics(text):
    out, depth = [], 0
    for ch in text:
        if ch == '<':
            depth += 1
        elif ch == '>' and depth > 0:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return ''.join(out)


PARTS = [
    ("store", r"sqlite3|pcache1|readDbPage|getPageNormal|moveToChild|rusqlite::|find_for_status|Readers"),
    ("token", r"sha2::|hmac::|http::auth::|check_token|TokenKey|base64::"),
    ("reqid", r"remember_reqid|reqids::"),
    ("json-out", r"serde_json::ser|format_escaped_str|status_body|IntoResponse"),
    ("json-in", r"serde_json::de|from_slice|LimitedBody|http::extract"),
    ("metrics", r"observe::|metrics::"),
    ("request log", r"request_log::|tracing"),
    ("send", r"writev|write_vectored"),
    ("receive", r"recv|sys_read|tcp_recvmsg"),
    ("wait/wake", r"epoll_wait|park|futex|Condvar|schedule\b|__schedule"),
    ("hyper", r"hyper::"),
    ("axum/tower", r"axum|tower::|normalize_path|Edge::"),
    ("tokio", r"tokio::"),
]
PARTS = [(name, re.compile(pattern)) for name, pattern in PARTS]


def main():
    thread = sys.argv[1] if len(sys.argv) > 1 else "server"
    counts, total = collections.Counter(), 0
    wanted, frames = False, []

    def flush():
        nonlocal total
        if not wanted or not frames:
            return
        total += 1
        for frame in frames:
            for name, pattern in PARTS:
                if pattern.search(frame):
                    counts[name] += 1
                    return
        counts["other"] += 1

    for line in sys.stdin:
        if line and not line[0].isspace():
            flush()
            frames, wanted = [], line.startswith(thread)
        elif line.strip():
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                frames.append(strip_generics(parts[1]))
    flush()
    for name, n in counts.most_common():
        print(f"{name:12} {100 * n / max(total, 1):5.1f}%")
    print(f"samples {total}")


if __name__ == "__main__":
    main()
