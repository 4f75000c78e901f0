#!/usr/bin/env python3
"""Spec generation and verdict for the Autobahn|Testsuite run (driven by scripts/autobahn.sh).

Runs under the machine's Python 3 with the standard library only; the suite itself is Python 2.7
code living in its own virtualenv, and this file never imports it. It only reads the JSON the
suite writes, so that a broken or missing suite install can never make the verdict pass.

    harness.py spec  TEMPLATE URL OUT [--exclude PATTERN]...
    harness.py judge REPORT_DIR EXPECTED [--exclude PATTERN]... [--update]

Why judge here rather than trust `wstest`: wstest exits 0 even when every case failed or the
server was never reachable. The only trustworthy signal is the report's `index.json`.
"""

import argparse
import json
import os
import re
import sys
from collections import Counter

# The behaviours the suite reports for a case (autobahntestsuite/case/case.py), best first.
BEHAVIOURS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]

# The closing-handshake verdicts that are not a pass. `behaviorClose` is judged separately from
# `behavior` by the suite, so a case can echo perfectly and still close with the wrong code.
BAD_CLOSE = {"FAILED", "WRONG CODE", "UNCLEAN"}

# Groups allowed to be UNIMPLEMENTED: none. 12.* and 13.* need permessage-deflate (RFC 7692),
# which the server negotiates by default; an UNIMPLEMENTED case anywhere means the server declined
# an offer it should have taken, or a case was skipped.
MAY_BE_UNIMPLEMENTED = ()


def case_key(case_id):
    """Sorts "9.10.2" after "9.2.1": case ids are dotted numbers, not strings."""
    return tuple(int(part) for part in case_id.split("."))


def pattern_regex(pattern):
    """Compiles a case pattern exactly as the suite does (caseset.py): '.' literal, '*' any run.

    The suite anchors only the start (`re.match`), so "9.*" also covers "9.10.1"; mirroring it
    here keeps the quick run's notion of "excluded" identical to what wstest actually skipped.
    """
    return re.compile(pattern.replace(".", r"\.").replace("*", ".*"))


def excluded(case_id, patterns):
    return any(p.match(case_id) if "*" in raw else case_id == raw for raw, p in patterns)


def cmd_spec(args):
    with open(args.template) as f:
        spec = json.load(f)
    # The template names one server; the port is only known once the server is running.
    for server in spec["servers"]:
        server["url"] = args.url
    spec["exclude-cases"] = list(spec.get("exclude-cases", [])) + list(args.exclude)
    with open(args.out, "w") as f:
        json.dump(spec, f, indent=2)
        f.write("\n")
    return 0


def load_results(report_dir):
    """Returns {case id: {behavior, behaviorClose, remoteCloseCode}}, or None if unusable."""
    path = os.path.join(report_dir, "index.json")
    try:
        with open(path) as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        print(f"autobahn: no usable report at {path}: {e}", file=sys.stderr)
        return None
    if not isinstance(index, dict) or len(index) != 1:
        agents = list(index) if isinstance(index, dict) else type(index).__name__
        print(f"autobahn: expected one agent in {path}, found {agents}", file=sys.stderr)
        return None
    (cases,) = index.values()
    if not cases:
        print(f"autobahn: {path} lists no case: did the server accept connections?", file=sys.stderr)
        return None
    # Durations and report file names change from run to run; only the verdicts are compared.
    # The close code the server sent is kept too: the suite passes a case whose server drops TCP
    # without any close frame ("or empty"), so only this field shows such a regression.
    return {
        case_id: {
            "behavior": r["behavior"],
            "behaviorClose": r["behaviorClose"],
            "remoteCloseCode": r.get("remoteCloseCode"),
        }
        for case_id, r in cases.items()
    }


def print_capped(lines, cap=40):
    """A server that is down fails all 500 cases; the first few dozen tell the story."""
    for line in lines[:cap]:
        print(line)
    if len(lines) > cap:
        print(f"  ... and {len(lines) - cap} more (all of them in the report)")


def show(result):
    """"OK/OK close 1002": behaviour, closing behaviour, and the code the server sent (if any)."""
    if not result:
        return "absent"
    code = result.get("remoteCloseCode")
    return f'{result["behavior"]}/{result["behaviorClose"]} close {code if code else "none"}'



def cmd_judge(args):
    patterns = [(raw, pattern_regex(raw)) for raw in args.exclude]
    actual = load_results(args.report_dir)
    if actual is None:
        return 1

    counts = Counter(r["behavior"] for r in actual.values())
    print(f"autobahn: {len(actual)} cases")
    for behaviour in BEHAVIOURS + sorted(set(counts) - set(BEHAVIOURS)):
        print(f"  {behaviour:<14} {counts.get(behaviour, 0)}")
    close_counts = Counter(r["behaviorClose"] for r in actual.values())
    print("  closing handshake: " + ", ".join(f"{k} {v}" for k, v in sorted(close_counts.items())))

    # Name the cases worth a look: everything that is neither a clean pass nor allowed to be
    # unimplemented. NON-STRICT and INFORMATIONAL are acceptable but should be known by id.
    problems = []
    for case_id in sorted(actual, key=case_key):
        r = actual[case_id]
        if r["behavior"] in ("NON-STRICT", "INFORMATIONAL"):
            print(f"  note: {case_id} {show(r)}")
        if r["behavior"] == "FAILED":
            problems.append(f"{case_id} FAILED ({show(r)})")
        elif r["behavior"] == "UNIMPLEMENTED" and not case_id.startswith(MAY_BE_UNIMPLEMENTED):
            problems.append(f"{case_id} UNIMPLEMENTED ({show(r)})")
        elif r["behavior"] != "UNIMPLEMENTED" and r["behaviorClose"] in BAD_CLOSE:
            problems.append(f"{case_id} closing handshake {r['behaviorClose']} ({show(r)})")

    try:
        with open(args.expected) as f:
            expected = json.load(f)
    except FileNotFoundError:
        expected = {}
        if not args.update:
            problems.append(f"no expected results at {args.expected}: run with --update once")

    # Compare only what this run was asked to run, so the quick run neither reports the cases it
    # skipped as missing nor, with --update, forgets their recorded results.
    diffs = []
    for case_id in sorted(set(expected) | set(actual), key=case_key):
        if excluded(case_id, patterns):
            continue
        want, got = expected.get(case_id), actual.get(case_id)
        if want != got and expected:
            diffs.append(f"  {case_id}: expected {show(want)}, got {show(got)}")

    if args.update:
        merged = {k: v for k, v in expected.items() if excluded(k, patterns)}
        merged.update(actual)
        # One line per case, in case order, so a regression reads as a one-line diff in review.
        lines = [f"  {json.dumps(k)}: {json.dumps(merged[k])}" for k in sorted(merged, key=case_key)]
        with open(args.expected, "w") as f:
            f.write("{\n" + ",\n".join(lines) + "\n}\n")
        print(f"autobahn: wrote {len(merged)} cases to {args.expected}"
              + (f" ({len(diffs)} changed)" if diffs else ""))
        print_capped(diffs)
    elif diffs:
        print(f"autobahn: {len(diffs)} cases differ from {args.expected}:")
        print_capped(diffs)
        problems.append(f"{len(diffs)} cases differ from the expected results "
                        "(scripts/autobahn.sh --update records a deliberate change)")

    print_capped([f"autobahn: FAIL: {p}" for p in problems])
    print("autobahn: " + ("FAILED" if problems else "passed"))
    return 1 if problems else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    spec = sub.add_parser("spec", help="write a fuzzingclient spec for one server URL")
    spec.add_argument("template")
    spec.add_argument("url")
    spec.add_argument("out")
    spec.add_argument("--exclude", action="append", default=[])
    spec.set_defaults(run=cmd_spec)

    judge = sub.add_parser("judge", help="count, diff against expected, and give the verdict")
    judge.add_argument("report_dir")
    judge.add_argument("expected")
    judge.add_argument("--exclude", action="append", default=[])
    judge.add_argument("--update", action="store_true")
    judge.set_defaults(run=cmd_judge)

    args = parser.parse_args()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
