"""Turns README.md's shell blocks into one bash script, for scripts/readme-test.sh.

Every ```sh block runs, in order, in one shell (so `export` and `. .venv/bin/activate` carry on
as they do in a terminal), unless an HTML comment on the line before it says otherwise:

    <!-- readme-test: skip -->                 not run (the test command itself)
    <!-- readme-test: background URL -->       started in the background, as in another terminal;
                                               with a URL, the next block waits until it answers

The set-up line's `cargo install …` becomes `true`: the harness runs the binary CI just built
(it is put first on PATH), not a second, release build.
"""
import re
import shlex
import sys

INSTALL = "cargo install --locked --path crates/twinloop-cli"


def blocks(lines):
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)```sh\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent = len(m.group(1))
        marker = ""
        for back in range(i - 1, -1, -1):
            if lines[back].strip():
                found = re.match(r"^\s*<!--\s*readme-test:\s*(.*?)\s*-->\s*$", lines[back])
                marker = found.group(1) if found else ""
                break
        body = []
        i += 1
        while not re.match(r"^\s*```\s*$", lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        i += 1
        yield marker, "\n".join(body)


def main(readme):
    lines = open(readme).read().splitlines()
    out = ["set -euo pipefail", "set -x"]
    found_install = False
    for n, (marker, body) in enumerate(blocks(lines)):
        if INSTALL in body:
            found_install = True
            body = body.replace(INSTALL, "true")
        if marker == "skip":
            continue
        if marker.startswith("background"):
            url = marker[len("background"):].strip()
            out.append(f"( {body}\n) > \"$README_LOGS/block{n}.log\" 2>&1 &")
            if url:
                out.append(f"wait_for {shlex.quote(url)} \"$README_LOGS/block{n}.log\"")
        else:
            out.append(body)
    # A server the README started in the background with `&` must still be up at the end.
    out.append('for job in $(jobs -p); do kill -0 "$job" 2>/dev/null || wait "$job" '
               '|| { echo "readme-test: a background command failed" >&2; exit 1; }; done')
    if not found_install:
        sys.exit(f"{readme}: the set-up line no longer says `{INSTALL}`; update scripts/readme_blocks.py")
    print("\n".join(out))


main(sys.argv[1])
