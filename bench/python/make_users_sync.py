"""An independent client of Make's users API, written from Make's public documentation only,
for the benchmark to compare makesync against (docs/benchmarks.md, "Round trips").

It does what a careful script would: one keep-alive HTTP connection, the organization, its
roles, its member list and every page of /users (pg[limit]=10000, the independent Go client's
page size, read until a page holds fewer rows than asked), joined into members with role,
status and last login, and written to SQLite in one transaction: every member upserted,
members gone marked removed. Standard library only.

    python3 make_users_sync.py --base-url http://127.0.0.1:PORT --host eu1.make.com \
        --org 1001 --db users.db        # token in MAKE_API_TOKEN

Prints one JSON line: requests, users, seconds (wall), and the seconds spent in Make's
answers, in decoding and in SQLite.
"""

import argparse
import http.client
import json
import os
import sqlite3
import sys
import time
import urllib.parse

PAGE = 10_000


class Make:
    def __init__(self, base_url, host, token):
        parsed = urllib.parse.urlsplit(base_url)
        self.connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        self.host = host
        self.token = token
        self.requests = 0
        self.network = 0.0
        self.decoding = 0.0

    def get(self, path, query=()):
        target = "/api/v2" + path
        if query:
            target += "?" + urllib.parse.urlencode(list(query))
        headers = {
            "Authorization": "Token " + self.token,
            "Accept": "application/json",
            "Host": self.host,
        }
        for _attempt in range(5):
            started = time.perf_counter()
            self.connection.request("GET", target, headers=headers)
            response = self.connection.getresponse()
            body = response.read()
            self.network += time.perf_counter() - started
            self.requests += 1
            if response.status in (429, 418):
                time.sleep(float(response.getheader("Retry-After") or "1"))
                continue
            if response.status != 200:
                raise SystemExit(f"GET {path} answered {response.status}: {body[:200]!r}")
            started = time.perf_counter()
            document = json.loads(body)
            self.decoding += time.perf_counter() - started
            return document
        raise SystemExit(f"GET {path}: rate limited five times")


def read_organization(make, organization):
    make.get(f"/organizations/{organization}")
    roles = make.get("/users/roles", [("organizationId", organization)])["usersRoles"]
    members = make.get(f"/organizations/{organization}/user-organization-roles")[
        "userOrganizationRoles"
    ]
    users = []
    offset = 0
    while True:
        page = make.get(
            "/users",
            [
                ("organizationId", organization),
                ("cols[]", "id"),
                ("cols[]", "name"),
                ("cols[]", "email"),
                ("cols[]", "lastLogin"),
                ("pg[sortBy]", "id"),
                ("pg[sortDir]", "asc"),
                ("pg[offset]", offset),
                ("pg[limit]", PAGE),
            ],
        )["users"]
        users.extend(page)
        if len(page) < PAGE:
            break
        offset += PAGE
    role_names = {role["id"]: role["name"] for role in roles}
    by_id = {user["id"]: user for user in users}
    rows = []
    for member in members:
        user = by_id.get(member["userId"])
        if user is None:
            continue
        invitation = member.get("invitation")
        status = "active" if invitation is None else (
            "invited" if invitation == "pending" else "invitation_expired"
        )
        role = member["usersRoleId"]
        rows.append(
            (
                member["userId"],
                user["name"],
                user["email"],
                role,
                role_names.get(role, f"role {role}"),
                status,
                user.get("lastLogin"),
            )
        )
    return rows


def store(db_path, organization, rows):
    db = sqlite3.connect(db_path)
    db.execute(
        """CREATE TABLE IF NOT EXISTS users (
            organization_id INTEGER, user_id INTEGER, name TEXT, email TEXT, role_id INTEGER,
            role_name TEXT, status TEXT, last_login TEXT, removed INTEGER DEFAULT 0,
            PRIMARY KEY (organization_id, user_id))"""
    )
    with db:
        db.executemany(
            """INSERT INTO users (organization_id, user_id, name, email, role_id, role_name,
                   status, last_login, removed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)
               ON CONFLICT (organization_id, user_id) DO UPDATE SET name = excluded.name,
                   email = excluded.email, role_id = excluded.role_id,
                   role_name = excluded.role_name, status = excluded.status,
                   last_login = excluded.last_login, removed = 0""",
            [(organization, *row) for row in rows],
        )
        db.execute("CREATE TEMP TABLE present (user_id INTEGER PRIMARY KEY)")
        db.executemany("INSERT INTO present VALUES (?)", [(row[0],) for row in rows])
        db.execute(
            """UPDATE users SET removed = 1 WHERE organization_id = ? AND removed = 0
               AND user_id NOT IN (SELECT user_id FROM present)""",
            (organization,),
        )
    db.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--org", type=int, required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    make = Make(args.base_url, args.host, os.environ["MAKE_API_TOKEN"])
    rows = read_organization(make, args.org)
    stored = time.perf_counter()
    store(args.db, args.org, rows)
    ended = time.perf_counter()
    json.dump(
        {
            "requests": make.requests,
            "users": len(rows),
            "seconds": ended - started,
            "make_seconds": make.network,
            "decode_seconds": make.decoding,
            "store_seconds": ended - stored,
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
