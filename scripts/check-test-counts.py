#!/usr/bin/env python3
"""Checks that ctest runs every Catch2 test case each test binary declares, once.

Usage: scripts/check-test-counts.py BUILD_DIR   (after ctest has run there, e.g. build/default)

For every Catch2 binary that a ctest entry runs, it compares three numbers:
  declared    the test cases the binary lists (`<bin> --list-test-names-only`; with Catch2 v3,
              `<bin> --list-tests --verbosity quiet`);
  registered  the distinct test cases the binary's ctest entries select (each entry's own
              arguments, passed back to the binary with --list-test-names-only);
  ran         the test cases the last ctest run executed for it, read from Catch2's summary in
              Testing/Temporary/LastTest.log ("... in N test cases" / "test cases: N").
It fails when they differ, when an entry selects no test case (a name ctest split, e.g. at ';')
or selects one that another entry also runs, or when the log shows an entry that ran none.
An entry whose output was truncated by ctest before the summary counts as running what it
selects only if ctest reported it passed or failed, never as zero.
"""

import json
import os
import re
import subprocess
import sys
from collections import defaultdict


def fail(msg):
    print(f"check-test-counts: {msg}", file=sys.stderr)


def catch2_major(path, cache={}):
    """2 or 3 for a Catch2 test binary, None for anything else (scripts, plain programs such as
    test_no_exceptions), judged by the help text Catch2 links into every binary."""
    if path not in cache:
        major = None
        try:
            with open(path, "rb") as f:
                data = f.read()
            if b"host application" in data:
                if b"--list-test-names-only" in data:
                    major = 2
                elif b"--list-tests" in data:
                    major = 3
        except OSError:
            pass
        cache[path] = major
    return cache[path]


def list_names(binary, args, cwd):
    """The test cases `args` (a test spec) selects, one name per line as Catch2 lists them."""
    if catch2_major(binary) == 2:
        listing = ["--list-test-names-only"]
    else:
        listing = ["--list-tests", "--verbosity", "quiet"]
    out = subprocess.run([binary, *args, *listing], cwd=cwd, capture_output=True, text=True,
                         timeout=60)
    return [line for line in out.stdout.splitlines() if line.strip()]


def selection_args(args):
    # Drop what only matters when running (the no-tests guard, reporters, output files); keep the
    # test spec.
    kept, skip = [], 0
    for a in args:
        if skip:
            skip -= 1
            continue
        if a in ("--warn", "-w", "--reporter", "-r", "--out", "-o"):
            skip = 1
            continue
        kept.append(a)
    return kept


def ran_counts(log):
    """ctest name -> (status, test cases Catch2 says it ran or None if not visible)."""
    result = {}
    if not os.path.exists(log):
        return None
    with open(log, encoding="utf-8", errors="replace") as f:
        text = f.read()
    # One block per test: "N/M Testing: name" ... "Test Passed." / "Test Failed." ...
    blocks = re.split(r"^\d+/\d+ Testing: ", text, flags=re.M)[1:]
    for block in blocks:
        name = block.split("\n", 1)[0].rstrip()
        status = None
        for line in block.splitlines():
            if line.startswith("Test Passed.") or line.startswith("Test Failed") or line.startswith(
                    "Test Timeout") or line.startswith("Test Skipped"):
                status = line.strip()
        count = None
        m = re.search(r"All tests passed \(\d+ assertions? in (\d+) test cases?\)", block)
        if m:
            count = int(m.group(1))
        else:
            m = re.search(r"^test cases:\s*(\d+)", block, flags=re.M)
            if m:
                count = int(m.group(1))
            elif re.search(r"^No tests ran$", block, flags=re.M):
                count = 0
        result[name] = (status, count)
    return result


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    build_dir = os.path.abspath(sys.argv[1])
    # Read the last run's log first: `ctest --show-only` starts a new LastTest.log (it is put back
    # afterwards, for whoever reads it next).
    log = os.path.join(build_dir, "Testing", "Temporary", "LastTest.log")
    ran = ran_counts(log)
    if ran is None:
        fail(f"no {log}: run ctest in {build_dir} first")
        return 1
    with open(log, "rb") as f:
        saved_log = f.read()
    try:
        listing = subprocess.run(["ctest", "--show-only=json-v1"], cwd=build_dir,
                                 capture_output=True, text=True, check=True)
    finally:
        with open(log, "wb") as f:
            f.write(saved_log)
    tests = json.loads(listing.stdout)["tests"]

    # Catch2 binary -> [(ctest name, selection args, working directory)]
    entries = defaultdict(list)
    for t in tests:
        cmd = t.get("command") or []
        if not cmd or catch2_major(cmd[0]) is None:
            continue
        cwd = build_dir
        for p in t.get("properties", []):
            if p.get("name") == "WORKING_DIRECTORY":
                cwd = p["value"]
        entries[cmd[0]].append((t["name"], selection_args(cmd[1:]), cwd))


    errors = 0
    total_declared = 0
    for binary in sorted(entries):
        cwd = entries[binary][0][2]
        declared = list_names(binary, [], cwd)
        total_declared += len(declared)
        if len(set(declared)) != len(declared):
            fail(f"{binary}: two test cases share a name")
            errors += 1
        selected = defaultdict(list)  # test case -> ctest entries that select it
        ran_total = 0
        for name, args, ecwd in entries[binary]:
            names = list_names(binary, args, ecwd)
            if not names:
                fail(f"{binary}: ctest entry '{name}' selects no test case")
                errors += 1
            for n in names:
                selected[n].append(name)
            status, count = ran.get(name, (None, None))
            if status is None:
                fail(f"{binary}: ctest entry '{name}' did not run in the last ctest run")
                errors += 1
            elif count == 0:
                fail(f"{binary}: ctest entry '{name}' ran no test case ({status})")
                errors += 1
            else:
                ran_total += count if count is not None else len(names)
        for n, who in selected.items():
            if len(who) > 1:
                fail(f"{binary}: test case '{n}' is run by {len(who)} ctest entries: {who}")
                errors += 1
        missing = [n for n in declared if n not in selected]
        for n in missing:
            fail(f"{binary}: test case '{n}' is declared but no ctest entry runs it")
        registered = len([n for n in selected if n in declared])
        line = (f"{os.path.relpath(binary, build_dir)}: declared {len(declared)}, "
                f"registered {registered}, ran {ran_total}")
        if len(declared) != registered or registered != ran_total or missing:
            fail(line + "  <- mismatch")
            errors += 1
        else:
            print("check-test-counts: " + line)

    if not entries:
        fail(f"no Catch2 test binary is registered with ctest in {build_dir}")
        return 1
    if errors:
        fail(f"{errors} problem(s)")
        return 1
    print(f"check-test-counts: {len(entries)} binaries, {total_declared} test cases, "
          "each registered and run once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
