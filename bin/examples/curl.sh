#!/usr/bin/env bash
# ispyb-falcon from the shell: curl, with python3 only to read JSON (and count CSV records).
#
#   bin/ispyb-falcon demo                  # in another terminal
#   bash bin/examples/curl.sh [BASE_URL]   # default http://127.0.0.1:8080/ispyb/api/v1
#
# Login and password come from ISPYB_LOGIN / ISPYB_PASSWORD (default pi_anna / demo;
# the demo accepts any password). Steps: log in, whoami, list the i03/i04 sessions
# of mx1001, create a sample in mx1001, read it back, export the data collections
# of mx1001-1 as CSV. An HTTP error prints its status and the JSON error and exits 1.
set -euo pipefail

API="${1:-http://127.0.0.1:8080/ispyb/api/v1}"
API="${API%/}"
LOGIN="${ISPYB_LOGIN:-pi_anna}"
PASSWORD="${ISPYB_PASSWORD:-demo}"
BODY="$(mktemp)"
trap 'rm -f "$BODY"' EXIT

# json EXPR: evaluate a Python expression on the JSON document on stdin, bound to `d`.
json() {
    python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

# call METHOD PATH [curl args...]: the response body on stdout; on an HTTP error,
# "error: METHOD URL -> HTTP <title>: <description>" on stderr and exit 1.
call() {
    local method="$1" path="$2" status
    shift 2
    local auth=()
    if [[ -n "${TOKEN:-}" ]]; then auth=(-H "Authorization: Bearer $TOKEN"); fi
    if ! status=$(curl -sS -o "$BODY" -w '%{http_code}' -X "$method" "${auth[@]}" "$@" "$API$path"); then
        echo "error: cannot reach $API" >&2
        exit 1
    fi
    if [[ "$status" -ge 400 ]]; then
        python3 - "$method" "$API$path" "$status" "$BODY" >&2 <<'EOF' || true
import json, sys
method, url, status, path = sys.argv[1:]
text = open(path, encoding="utf-8", errors="replace").read()
try:
    error = json.loads(text)
    title = error.get("title") or status
    description = error.get("description") or ""
    details = "; ".join(f"{e.get('path')}: {e.get('message')}" for e in error.get("errors") or [])
except (ValueError, AttributeError):
    title, description, details = status, " ".join(text.split())[:300], ""
line = f"error: {method} {url} -> HTTP {title}"
if description:
    line += f": {description}"
if details:
    line += f" [{details}]"
print(line)
EOF
        exit 1
    fi
    cat "$BODY"
}

# 1. log in with HTTP Basic; keep the token
ME=$(call GET /auth/login -u "$LOGIN:$PASSWORD")
TOKEN=$(json 'd["token"]' <<<"$ME")
echo "logged in as $(json '"%s (personId %s, roles %s)" % (d["login"], d["personId"], ",".join(d["roles"]))' <<<"$ME")"

# 2. who the token says I am
WHO=$(call GET /auth/whoami)
echo "whoami: $(json '"%s roles=%s expires %s" % (d["login"], ",".join(d["roles"]), d["expiresAt"])' <<<"$WHO")"

# 3. sessions of mx1001 on i03 or i04, oldest first
SESSIONS=$(call GET '/sessions?proposal=mx1001&beamLineName=i03,i04&order_by=startDate')
echo "sessions $(json '"(%s): %s" % (d["total"], ", ".join("mx1001-%s %s %s" % (s["visit_number"], s["beamLineName"], s["startDate"]) for s in d["results"]) or "(none)")' <<<"$SESSIONS")"

# 4. a new sample on a crystal and in a container of mx1001
CRYSTALS=$(call GET '/crystals?proposal=mx1001&limit=1')
CONTAINERS=$(call GET '/containers?proposal=mx1001&limit=1')
CRYSTAL_ID=$(json 'd["results"][0]["crystalId"] if d["results"] else ""' <<<"$CRYSTALS")
CONTAINER_ID=$(json 'd["results"][0]["containerId"] if d["results"] else ""' <<<"$CONTAINERS")
if [[ -z "$CRYSTAL_ID" || -z "$CONTAINER_ID" ]]; then
    echo "error: $LOGIN sees no crystal and container in mx1001 to put a sample in" >&2
    exit 1
fi
EPOCH=$(date +%s)
SAMPLE=$(call POST /samples -H 'Content-Type: application/json' \
    -d "{\"crystalId\": $CRYSTAL_ID, \"containerId\": $CONTAINER_ID, \"name\": \"example-$EPOCH\", \"location\": \"$((EPOCH % 1000))\"}")
SAMPLE_ID=$(json 'd["blSampleId"]' <<<"$SAMPLE")
echo "created sample $(json '"%s name=%s crystalId=%s containerId=%s location=%s" % (d["blSampleId"], d["name"], d["crystalId"], d["containerId"], d["location"])' <<<"$SAMPLE")"

# 5. read it back
AGAIN=$(call GET "/samples/$SAMPLE_ID")
echo "read back sample $(json '"%s name=%s recordTimeStamp=%s" % (d["blSampleId"], d["name"], d["recordTimeStamp"])' <<<"$AGAIN")"

# 6. every data collection of mx1001-1 as CSV (header + one record per collection)
call GET '/datacollections?session=mx1001-1' -H 'Accept: text/csv' >/dev/null
ROWS=$(python3 -c 'import csv, sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], newline=""))))' "$BODY")
echo "csv rows: $ROWS (header + $((ROWS - 1)) data collections of mx1001-1)"
