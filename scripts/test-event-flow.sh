#!/usr/bin/env bash
# Posts orders for arbitrary products to the running system (scripts/up.sh) and reports how many
# ended confirmed, cancelled or still pending. Exits 1 if any is still pending at the end.
#
#   scripts/test-event-flow.sh [ORDERS]
#
# ORDERS, else NUM_ORDERS, else 20 orders. order-service is ORDER_SERVICE_URL, else
# http://127.0.0.1:$ORDER_PORT (3004); SAGA_TIMEOUT_MS as for up.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v python3 >/dev/null 2>&1 || { source scripts/lib/infra.sh; apt_install python3; }
exec python3 - "${1:-${NUM_ORDERS:-20}}" <<'PY'
import json, os, random, sys, time, urllib.request, urllib.error

n = int(sys.argv[1])
base = os.environ.get("ORDER_SERVICE_URL") or f"http://127.0.0.1:{os.environ.get('ORDER_PORT', '3004')}"
base = base.rstrip("/")
wait_s = int(os.environ.get("SAGA_TIMEOUT_MS", "30000")) / 1000 + 30

def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)

run = random.randrange(1 << 30)
ids = []
for i in range(n):
    items = [{"productId": f"flow-{run}-{random.randrange(5)}", "quantity": random.randint(1, 3),
              "unitPrice": round(random.uniform(1, 100), 2)} for _ in range(random.randint(1, 3))]
    status, order = call("POST", "/orders", {"customerId": f"flow-{run}", "items": items})
    if status != 201:
        print(f"order {i} refused: {status} {order}", file=sys.stderr)
        sys.exit(2)
    ids.append(order["orderId"])
print(f"posted {n} orders; waiting up to {wait_s:.0f}s for their sagas")

deadline = time.time() + wait_s
while True:
    counts = {"CONFIRMED": 0, "CANCELLED": 0, "PENDING": 0}
    for oid in ids:
        _, order = call("GET", f"/orders/{oid}")
        counts[order["status"]] = counts.get(order["status"], 0) + 1
    if counts["PENDING"] == 0 or time.time() > deadline:
        break
    time.sleep(0.5)
print(f"confirmed: {counts['CONFIRMED']}  cancelled: {counts['CANCELLED']}  pending: {counts['PENDING']}")
sys.exit(1 if counts["PENDING"] else 0)
PY
