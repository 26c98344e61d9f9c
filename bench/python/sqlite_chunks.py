"""SQLite's own cost of a first sync's writes, apart from makesync: 100,000 rows of makesync's
`users` table (the SQLite store's 15 columns and primary key, WAL, synchronous=NORMAL) inserted
with INSERT OR REPLACE in transactions of 200 (makesync's write chunk), 1,000, 5,000 and all
at once. Standard library only; docs/benchmarks.md says what it showed.

    python3 bench/python/sqlite_chunks.py [--rows 100000]
"""

import argparse
import os
import sqlite3
import tempfile
import time

COLUMNS = """connection_id TEXT NOT NULL, user_id INTEGER NOT NULL, name TEXT NOT NULL,
    email TEXT NOT NULL, role_id INTEGER NOT NULL, role_name TEXT NOT NULL, status TEXT NOT NULL,
    invitation TEXT, last_login TEXT, first_seen TEXT NOT NULL, removed_at TEXT, digest INTEGER,
    role_identifier TEXT, role_management_type TEXT, teams TEXT,
    PRIMARY KEY (connection_id, user_id)"""


def insert(rows, chunk, directory):
    path = os.path.join(directory, f"chunks-{chunk}.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"CREATE TABLE users ({COLUMNS})")
    started = time.perf_counter()
    for start in range(0, len(rows), chunk):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT OR REPLACE INTO users VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows[start : start + chunk],
        )
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    count = parser.parse_args().rows
    rows = [
        ("bench-9811", 9_811_000_000 + n, f"User {n}", f"user{n}@org9811.example", 13,
         "Member", "active", None, "2026-11-01T10:00:00.000000Z",
         "2026-12-07T10:00:00.000000Z", None, n * 7919, None, None, None)
        for n in range(count)
    ]
    with tempfile.TemporaryDirectory() as directory:
        for chunk in (200, 1_000, 5_000, count):
            seconds = insert(rows, chunk, directory)
            print(f"{count} rows, {chunk} a transaction: {seconds * 1000:.0f} ms "
                  f"({seconds / count * 1e6:.2f} µs a row)")


if __name__ == "__main__":
    main()
