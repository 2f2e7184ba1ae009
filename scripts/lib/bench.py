#!/usr/bin/env python3
"""The benchmark's runs and its report; started by scripts/bench.sh, which builds and starts
the stack and passes where it runs through the environment.

    bench.py run --label LABEL --results DIR [--short]   measure, write DIR/<time>-<LABEL>.json
    bench.py report --results DIR --out FILE             write FILE from the newest runs

A run measures, on the running stack: CPU while idle; open-loop runs at 20, 50, 200 and 1,000
orders/s (the one at 200/s is the latency run) with CPU per order by process and the machine's
busy share; the per-hop breakdown of the 200/s run from the saga history's timestamps; closed
loops of 64 and 128 orders in flight (with the invariant check); each service's peak RSS; and
perf profiles at 50/s and at 64 in flight. With the label `stored-N` (databases holding N orders
beforehand) it runs only the latency run and the closed loop at 64; with the label `cluster-r3`
(a three-node NATS cluster, every stream with three replicas) only the closed loop at 64; with
the label `traced` (spans exported by OTLP to a sink on this machine) or `change-over` (both
majors of each event published) the latency run and the closed loop at 64.
"""
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpu  # noqa: E402

SERVICES = ["order-service", "payment-service", "inventory-service", "saga-coordinator"]
GROUPS = SERVICES + ["nats-server", "postgresql"]
ENV = os.environ


def pg_url(db):
    return (f"postgres://{ENV['PG_APP_USER']}:{ENV['PG_APP_PASSWORD']}@127.0.0.1:{ENV['PG_PORT']}/"
            f"{ENV['DB_PREFIX']}{db}")


def psql_json(db, sql):
    out = subprocess.run(["psql", pg_url(db), "-Atc", sql], capture_output=True, text=True,
                         check=True).stdout.strip()
    return json.loads(out) if out else None


def snapshot():
    args = []
    for svc in SERVICES:
        with open(f"{ENV['RUN_DIR']}/{svc}.pid") as f:
            args += ["--service", f"{svc}={f.read().strip()}"]
    args += ["--nats", ENV["NATS_PID"], "--db-prefix", ENV["DB_PREFIX"]]
    return cpu.snap(args)


DATABASES = ["orders", "payments", "inventory", "sagas"]


def tables_snapshot():
    """Per database: transactions committed, and per table the rows read by sequential scans
    (seq_tup_read), the rows fetched through indexes (idx_tup_fetch), the index entries read
    (idx_tup_read, index-only scans included) and the rows inserted. (PostgreSQL publishes a
    busy backend's counts at most once a second, so a window's edges are uncertain by about
    that much.)"""
    out = {}
    for db in DATABASES:
        row = psql_json(db, """
SELECT json_build_object(
  'commits', (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
  'tables', (SELECT json_object_agg(t.relname, json_build_object(
      'seq', coalesce(t.seq_tup_read, 0), 'fetch', coalesce(t.idx_tup_fetch, 0),
      'entries', coalesce((SELECT sum(i.idx_tup_read) FROM pg_stat_user_indexes i
                           WHERE i.relid = t.relid), 0),
      'inserted', t.n_tup_ins))
    FROM pg_stat_user_tables t))""")
        out[db] = row
    return out


def pg_superuser(sql):
    """Runs `sql` in the `postgres` database as the server's superuser (pg_stat_statements sees
    every database only so); None where that is not possible."""
    cmd = ["psql", "-p", ENV["PG_PORT"], "-d", "postgres", "-Atc", sql]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    else:
        cmd = ["sudo", "-n", "-u", "postgres"] + cmd
    done = subprocess.run(cmd, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def statements_snapshot():
    """pg_stat_statements of the benchmark's databases (BEGIN and COMMIT included): per
    statement, calls, rows and time; {} when the extension is not loaded."""
    out = pg_superuser(f"""
SELECT coalesce(json_object_agg(d.datname || ' ' || s.queryid, json_build_object(
  'db', substr(d.datname, {len(ENV['DB_PREFIX']) + 1}), 'query', left(s.query, 200),
  'calls', s.calls, 'rows', s.rows, 'ms', s.total_exec_time)), '{{}}')
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname LIKE '{ENV['DB_PREFIX']}%'""")
    return json.loads(out) if out else {}


def nats_snapshot():
    """Messages in and out of every NATS server (its monitoring /varz), and of each client
    connection open on it (/connz), keyed by server and connection id."""
    total = {"in": 0, "out": 0, "connections": {}}
    for url in ENV.get("NATS_MONITOR_URLS", "").split():
        try:
            with urllib.request.urlopen(f"{url}/varz", timeout=5) as r:
                varz = json.load(r)
            with urllib.request.urlopen(f"{url}/connz?limit=4096", timeout=5) as r:
                connz = json.load(r)
        except OSError:
            return None
        total["in"] += varz["in_msgs"]
        total["out"] += varz["out_msgs"]
        for c in connz.get("connections") or []:
            total["connections"][f"{url} {c['cid']}"] = {
                "name": c.get("name") or "unnamed", "in": c["in_msgs"], "out": c["out_msgs"]}
    return total


def clients_diff(before, after):
    """Messages in and out per client name, over the connections open at both snapshots: which
    client sent what the server counted."""
    clients = {}
    for key, now in (after.get("connections") or {}).items():
        was = (before.get("connections") or {}).get(key)
        if was is None:
            continue
        c = clients.setdefault(now["name"], {"in": 0, "out": 0})
        c["in"] += now["in"] - was["in"]
        c["out"] += now["out"] - was["out"]
    return clients


def counts_snapshot():
    return {"tables": tables_snapshot(), "statements": statements_snapshot(),
            "nats": nats_snapshot()}


def counts_diff(before, after):
    """What happened between two counts snapshots."""
    tables = {}
    for db, now in after["tables"].items():
        was = before["tables"].get(db) or {}
        tables[db] = {"commits": now["commits"] - was.get("commits", 0), "tables": {}}
        for t, v in (now.get("tables") or {}).items():
            w = (was.get("tables") or {}).get(t, {})
            tables[db]["tables"][t] = {k: v[k] - w.get(k, 0) for k in v}
    statements = {}
    for key, v in after["statements"].items():
        calls = v["calls"] - before["statements"].get(key, {}).get("calls", 0)
        if calls > 0:
            w = before["statements"].get(key, {})
            statements[key] = {"db": v["db"], "query": v["query"], "calls": calls,
                               "rows": v["rows"] - w.get("rows", 0),
                               "ms": v["ms"] - w.get("ms", 0.0)}
    nats = None
    if before["nats"] and after["nats"]:
        nats = {k: after["nats"][k] - before["nats"][k] for k in ("in", "out")}
        nats["clients"] = clients_diff(before["nats"], after["nats"])
    return {"tables": tables, "statements": statements, "nats": nats}


def load_command(extra, json_path):
    return ["target/release/saga-load", *extra, "--products", "100", "--expected-rate", "0.9",
            "--json", json_path,
            "--order-url", f"http://127.0.0.1:{ENV['ORDER_PORT']}",
            "--payment-url", f"http://127.0.0.1:{ENV['PAYMENT_PORT']}",
            "--inventory-url", f"http://127.0.0.1:{ENV['INVENTORY_PORT']}",
            "--saga-url", f"http://127.0.0.1:{ENV['SAGA_PORT']}",
            "--nats-url", f"nats://127.0.0.1:{ENV['NATS_PORT']}",
            "--admin-token", ENV["ADMIN_TOKEN"]]


def log(message):
    print(f"==> {message}", file=sys.stderr, flush=True)


def load_run(name, extra, seconds, check, work, during=None):
    """Runs saga-load for `seconds`; counts CPU from 5 s after the start to 3 s before the
    end of sending (the start and the final check are not steady state). `during`, if given,
    runs in the counted window (a profile)."""
    json_path = f"{work}/{name}.json"
    args = extra + ["--seconds", str(seconds)] + ([] if check else ["--no-check"])
    log(f"{name}: saga-load {' '.join(args)}")
    started = time.time()
    with open(f"{work}/{name}.txt", "w") as out:
        proc = subprocess.Popen(load_command(args, json_path), stdout=out, stderr=subprocess.STDOUT)
        window = None
        lead, tail = (5, 3) if seconds >= 15 else (1, 1)
        time.sleep(max(0, started + lead - time.time()))
        counts_before = counts_snapshot()
        before = snapshot()
        if during:
            threading.Thread(target=during, daemon=True).start()
        time.sleep(max(0, started + seconds - tail - time.time()))
        after = snapshot()
        counts_after = counts_snapshot()
        window = cpu.diff(before, after)
        proc.wait()
    with open(json_path) as f:
        report = json.load(f)
    return {"name": name, "args": args, "report": report, "window": window,
            "counts": counts_diff(counts_before, counts_after),
            "window_start": before["at"], "window_end": after["at"]}


def per_order(run, rate=None):
    """CPU per order in the counted window: µs by group, and in all."""
    w = run["window"]
    if rate is None:
        rate = run["report"]["throughputOrdersPerSecond"]
    orders = rate * w["seconds"]
    by = {g: w["cpu"].get(g, 0.0) / orders * 1e6 for g in GROUPS}
    sched = {g: w["cpuSched"].get(g, 0.0) / orders * 1e6 for g in GROUPS}
    switches = {g: sum(w["switches"].get(g, {}).values()) / orders for g in GROUPS}
    voluntary = {g: w["switches"].get(g, {}).get("voluntary", 0) / orders for g in GROUPS}
    c = run["counts"]
    commits = {db: v["commits"] / orders for db, v in c["tables"].items()}
    statements = {}
    for v in c["statements"].values():
        statements[v["db"]] = statements.get(v["db"], 0) + v["calls"] / orders
    rows_read = {f"{db}.{t}": (v["seq"] + v["fetch"]) / orders
                 for db, d in c["tables"].items() for t, v in d["tables"].items()}
    entries = {f"{db}.{t}": v["entries"] / orders
               for db, d in c["tables"].items() for t, v in d["tables"].items()}
    return {"ordersInWindow": orders, "byGroupUs": by, "totalUs": sum(by.values()),
            "schedUs": sched, "schedTotalUs": sum(sched.values()),
            "switches": switches, "voluntarySwitches": voluntary,
            "switchesTotal": sum(switches.values()),
            "machineSwitches": w["machineSwitches"] / orders,
            "commits": commits, "statements": statements,
            "natsIn": c["nats"]["in"] / orders if c["nats"] else None,
            "natsOut": c["nats"]["out"] / orders if c["nats"] else None,
            "rowsRead": rows_read, "indexEntriesRead": entries,
            "busyShare": w["machineBusyShare"],
            "ourCoresUsed": sum(w["cpu"].values()) / w["seconds"]}


def hops(since, until):
    """Per-hop latencies (ms, p50/p90/p99) of the sagas created in [since, until), from the
    coordinator's history: when each event was written (occurredAt) and when the coordinator
    took it (receivedAt)."""
    sql = f"""
WITH s AS (
  SELECT saga_id FROM sagas
  WHERE created_at >= to_timestamp({since}) AND created_at < to_timestamp({until})),
e AS (
  SELECT h.saga_id,
    max(h.occurred_at) FILTER (WHERE h.event_type = 'order.created') AS created,
    max(h.received_at) FILTER (WHERE h.event_type = 'order.created') AS created_rx,
    max(h.occurred_at) FILTER (WHERE h.event_type LIKE 'payment.%') AS paid,
    max(h.received_at) FILTER (WHERE h.event_type LIKE 'payment.%') AS paid_rx,
    max(h.occurred_at) FILTER (WHERE h.event_type IN ('inventory.reserved', 'inventory.failed')) AS held,
    max(h.received_at) FILTER (WHERE h.event_type IN ('inventory.reserved', 'inventory.failed')) AS held_rx,
    max(h.occurred_at) FILTER (WHERE h.event_type IN ('saga.completed', 'saga.aborted')) AS decided,
    max(h.occurred_at) FILTER (WHERE h.event_type IN ('order.confirmed', 'order.cancelled')) AS ended,
    max(h.received_at) FILTER (WHERE h.event_type IN ('order.confirmed', 'order.cancelled')) AS ended_rx
  FROM saga_history h JOIN s USING (saga_id) GROUP BY h.saga_id),
d AS (
  SELECT
    extract(epoch FROM created_rx - created) * 1000 AS "order.created: written -> coordinator",
    extract(epoch FROM paid - created) * 1000 AS "order.created written -> payment decided",
    extract(epoch FROM held - created) * 1000 AS "order.created written -> inventory decided",
    extract(epoch FROM paid_rx - paid) * 1000 AS "payment.*: written -> coordinator",
    extract(epoch FROM held_rx - held) * 1000 AS "inventory.*: written -> coordinator",
    extract(epoch FROM decided - greatest(paid_rx, held_rx)) * 1000 AS "last answer taken -> saga decided",
    extract(epoch FROM ended - decided) * 1000 AS "saga decided -> order confirmed or cancelled",
    extract(epoch FROM ended_rx - ended) * 1000 AS "order.confirmed: written -> coordinator",
    extract(epoch FROM ended - created) * 1000 AS "order.created written -> order ended (total)"
  FROM e WHERE created IS NOT NULL AND ended IS NOT NULL AND decided IS NOT NULL)
SELECT json_agg(json_build_object('hop', k, 'n', n, 'p50', p50, 'p90', p90, 'p99', p99) ORDER BY o)
FROM (
  SELECT k, o, count(v) AS n,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS p50,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY v) AS p90,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY v) AS p99
  FROM d, LATERAL (SELECT key, value::float8, ordinality
                   FROM jsonb_each_text(to_jsonb(d)) WITH ORDINALITY) AS j(k, v, o)
  GROUP BY k, o) x;
"""
    return psql_json("sagas", sql) or []


# The relays' retention statements (libs/messaging/src/outbox.rs, `prune`), with ages that make
# each delete a full batch of the seeded rows.
RETENTION = [
    ("orders", "sent outbox rows", "DELETE FROM messaging_outbox WHERE id IN ( "
     "SELECT id FROM (SELECT id, sent_at FROM messaging_outbox ORDER BY id LIMIT 10000) oldest "
     "WHERE sent_at < now() - interval '1 hour')"),
    ("sagas", "inbox rows", "DELETE FROM messaging_inbox WHERE event_id IN ( "
     "SELECT event_id FROM messaging_inbox WHERE handled_at < now() - interval '1 day' "
     "ORDER BY handled_at LIMIT 10000)"),
]


def retention_cost():
    """Time of one retention batch (10,000 rows) on the stored data, in a transaction rolled
    back: EXPLAIN ANALYZE's execution time and the rows it deleted."""
    out = []
    for db, what, sql in RETENTION:
        text = subprocess.run(["psql", pg_url(db), "-Atc",
                               f"BEGIN; EXPLAIN (ANALYZE, FORMAT JSON) {sql}; ROLLBACK;"],
                              capture_output=True, text=True, check=True).stdout
        plan = json.loads(text[text.index("["):text.rindex("]") + 1])[0]
        deleted = plan["Plan"].get("Plans", [{}])[0].get("Actual Rows", None)
        out.append({"database": db, "rows": what, "deleted": deleted,
                    "ms": plan["Execution Time"]})
    return out


def rss():
    out = {}
    for svc in SERVICES:
        with open(f"{ENV['RUN_DIR']}/{svc}.pid") as f:
            pid = f.read().strip()
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    out[svc] = int(line.split()[1]) / 1024
    return out


def profile(path, seconds):
    """A perf profile of the whole machine for `seconds`: samples by process, and the hottest
    symbols of each group. Written to `path` (text); nothing if perf is missing."""
    def run():
        data = path + ".data"
        rec = subprocess.run(["perf", "record", "-F", "499", "-a", "-o", data, "--", "sleep",
                              str(seconds)], capture_output=True, text=True)
        if rec.returncode != 0:
            with open(path, "w") as f:
                f.write("perf record failed: " + rec.stderr[-500:])
            return
        by_comm = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                                  "--sort", "comm", "-g", "none"], capture_output=True,
                                 text=True).stdout
        by_sym = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                                 "--sort", "comm,dso,sym", "-g", "none", "--percent-limit", "0.4"],
                                capture_output=True, text=True).stdout
        keep = lambda text, n: "\n".join(
            [l for l in text.splitlines() if re.match(r"^ +[0-9]", l)][:n])
        with open(path, "w") as f:
            f.write("samples by process (comm; postgres backends are all 'postgres')\n")
            f.write(keep(by_comm, 20) + "\n\nhottest symbols (self time, >= 0.4% of all samples)\n")
            f.write("\n".join(l[:160] for l in keep(by_sym, 60).splitlines()) + "\n")
        os.remove(data)
    return run


# What a PostgreSQL backend is doing when it leaves the CPU, from the frames of its stack at the
# switch (kernel and user): the first rule that matches names it.
OFF_CPU_REASONS = [
    ("WAL flush at commit (fdatasync)", ("fdatasync", "fsync", "issue_xlog_fsync", "XLogFlush")),
    ("waiting for the client's next message", ("secure_read", "pq_recvbuf", "pq_getbyte",
                                               "sock_recvmsg", "tcp_recvmsg", "ReadCommand")),
    ("lock or latch wait (LWLock, heavyweight lock, semaphore)", ("LWLock", "ProcSleep",
                                                                 "PGSemaphoreLock", "futex",
                                                                 "semop")),
    ("waiting for I/O (read/write)", ("pread", "pwrite", "ksys_read", "ksys_write",
                                      "filemap_read", "io_schedule")),
    ("background process sleeping (WaitLatch)", ("WaitLatch", "WaitEventSetWait",
                                                 "epoll_wait", "do_epoll_wait")),
    ("preempted (still runnable)", ("preempt_schedule", "exit_to_user_mode",
                                    "irqentry_exit")),
]


def pg_profile(path, seconds):
    """PostgreSQL at work, for `seconds`: where its processes spend CPU (perf record -F 999 -g,
    samples of the `postgres` processes by symbol) and why they leave the CPU (perf record of
    sched:sched_switch with stacks, each switch of a postgres process classed by the frames of
    its stack, OFF_CPU_REASONS). Written to `path` (text), with the counts as a JSON line."""
    def run():
        on, off = path + ".on", path + ".off"
        procs = [subprocess.Popen(["perf", "record", "-F", "999", "-a", "-g", "-o", on, "--",
                                   "sleep", str(seconds)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True),
                 subprocess.Popen(["perf", "record", "-e", "sched:sched_switch", "-a", "-g",
                                   "-o", off, "--", "sleep", str(seconds)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)]
        errs = [p.communicate()[1] for p in procs]
        if any(p.returncode != 0 for p in procs):
            with open(path, "w") as f:
                f.write("perf record failed: " + " ".join(e[-300:] for e in errs))
            return
        by_sym = subprocess.run(["perf", "report", "-i", on, "--stdio", "--no-children",
                                 "--comm", "postgres", "--sort", "dso,sym", "-g", "none",
                                 "--percentage", "relative"], capture_output=True, text=True).stdout
        script = subprocess.run(["perf", "script", "-i", off, "-F", "comm,tid,ip,sym"],
                                capture_output=True, text=True).stdout
        reasons, switches = {}, 0
        for block in script.split("\n\n"):
            lines = block.strip().splitlines()
            if not lines or not lines[0].lstrip().startswith("postgres"):
                continue
            switches += 1
            frames = " ".join(lines[1:])
            reason = next((name for name, marks in OFF_CPU_REASONS
                           if any(m in frames for m in marks)), "other")
            reasons[reason] = reasons.get(reason, 0) + 1
        # (share of postgres's samples, object, the line) for each symbol.
        samples = [(float(l.split()[0].rstrip("%")), l.split()[1], l)
                   for l in by_sym.splitlines() if re.match(r"^ +[0-9.]+%", l)]
        # Shares by object (the kernel, postgres, libc...), summed over every symbol: perf's own
        # `--sort dso` leaves the kernel's samples out.
        by_dso = {}
        for share, dso, _ in samples:
            by_dso[dso] = by_dso.get(dso, 0.0) + share
        dsos = [f"{v:.1f}% {k}" for k, v in sorted(by_dso.items(), key=lambda kv: -kv[1])]
        keep = [l[:160] for share, _, l in samples if share >= 1][:40]
        with open(path, "w") as f:
            f.write(json.dumps({"switches": switches, "reasons": reasons}) + "\n")
            f.write("on-CPU: postgres samples by object (kernel, postgres, libc, ...): "
                    + "; ".join(dsos[:6]) + "\n")
            f.write("on-CPU: postgres samples by symbol (self time, >= 1% of postgres's)\n")
            f.write("\n".join(keep) + "\n")
        for p in (on, off):
            os.remove(p)
    return run


def run(label, results, short):
    work = ENV["BENCH_WORK"]
    stored = label.startswith("stored") or label in ("cluster-r3", "traced", "change-over")
    secs = (lambda s: max(8, s // 6)) if short else (lambda s: s)
    result = {"label": label, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "machine": machine(), "short": short, "runs": {}}
    if not stored:
        log("idle: 10 s")
        before = snapshot()
        time.sleep(10)
        result["idle"] = cpu.diff(before, snapshot())
    if label.startswith("stored"):
        result["retention"] = retention_cost()
    runs = result["runs"]
    if label == "no-admission":
        plan = [(f"closed-{n}", ["--concurrency", str(n)], secs(60), False) for n in (128, 256, 512)]
        stored = True
    else:
        plan = [] if label.startswith("cluster") else [("rate-200", ["--rate", "200"], secs(60), True)]
    if not stored:
        plan = [("rate-20", ["--rate", "20"], secs(30), False),
                ("rate-50", ["--rate", "50"], secs(30), False)] + plan + \
               [("rate-1000", ["--rate", "1000"], secs(30), False)]
    if label != "no-admission":
        plan += [("closed-64", ["--concurrency", "64"], secs(60), True)]
    if not stored:
        # Past saturation (SPEC 12): more POSTs in flight than the system ends orders; admission
        # refuses what it cannot end within its bound, and saga-load waits out Retry-After.
        plan += [(f"closed-{n}", ["--concurrency", str(n)], secs(60), n == 512)
                 for n in (128, 256, 512)]
    for name, extra, seconds, check in plan:
        r = load_run(name, extra, seconds, check, work)
        rate = float(extra[1]) if extra[0] == "--rate" else None
        r["perOrder"] = per_order(r, rate)
        if name == "rate-200":
            r["hops"] = hops(r["window_start"], r["window_end"])
        runs[name] = r
    result["rssMiB"] = rss()
    if not stored and not short:
        # Profiles in runs of their own, so that perf's cost is in no measured figure.
        result["profiles"] = {}
        for name, extra, take in [("rate-20", ["--rate", "20"], pg_profile),
                                  ("closed-64", ["--concurrency", "64"], profile)]:
            # (load_run writes saga-load's output to {work}/profile-{name}.txt.)
            path = f"{work}/perf-{name}.txt"
            r = load_run(f"profile-{name}", extra, 30, False, work, take(path, 15))
            time.sleep(2)
            text = open(path).read() if os.path.exists(path) else "no profile"
            result["profiles"][name] = {"text": text, "perOrder": per_order(
                r, float(extra[1]) if extra[0] == "--rate" else None)}
    os.makedirs(results, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = f"{results}/{stamp}-{label}.json"
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    log(f"results in {path}")


def machine():
    sh = lambda c: subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
    return {"cores": os.cpu_count(), "cpu": sh("lscpu | sed -n 's/^Model name: *//p'"),
            "memGiB": sh("free -g | awk '/Mem:/ {print $2}'"), "kernel": platform.release(),
            "postgres": sh("psql --version | awk '{print $3}'"),
            "nats": sh(f"{ENV.get('NATS_BIN', 'nats-server')} --version")}


# ---------------------------------------------------------------------------------------------
# The report: docs/benchmarks.md from the newest runs of each label.

def fmt(values, unit="", digits=1):
    """One figure, or the range of several runs' figures ("lo–hi")."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    lo, hi = min(values), max(values)
    f = lambda v: f"{v:,.{digits}f}"
    return f"{f(lo)}{unit}" if f(lo) == f(hi) else f"{f(lo)}–{f(hi)}{unit}"


def verdict(ok):
    return "met" if ok else "**not met**"


LOAD_OUTPUT = re.compile(r"^\s*(\d+(\.\d+)?s\s+sent |\d+ orders, |POST /orders:|order to end:|outcomes:|"
                         r"payment:|invariants:|refusals:)")


def profile_text(text):
    """A profile's text without what saga-load wrote over it in the runs before the profile and
    its load got files of their own (NUL bytes, progress lines)."""
    kept = [l for l in text.replace("\0", "").splitlines()
            if not LOAD_OUTPUT.match(l) and not (" sent " in l and " in flight " in l)]
    return "\n".join(kept)


def comparison(cases):
    """Table lines comparing the same run under several setups: (run, setup, results) each."""
    L = ["| run | setup | orders/s | CPU per order (all) | nats-server per order | POST p99 | "
         "order-to-end p50 / p99 | unfinished | invariants | machine busy |", "| --- " * 10 + "|"]
    for run, name, runs in cases:
        rows = [r["runs"][run] for r in runs if run in r["runs"]]
        if not rows:
            continue
        rep = [x["report"] for x in rows]
        L.append(f"| {run} | {name} | {fmt([x['throughputOrdersPerSecond'] for x in rep], '', 0)} | "
                 f"{fmt([x['perOrder']['totalUs'] for x in rows], ' µs', 0)} | "
                 f"{fmt([x['perOrder']['byGroupUs']['nats-server'] for x in rows], ' µs', 0)} | "
                 f"{fmt([x['postLatency']['p99Ms'] for x in rep])} ms | "
                 f"{fmt([x['orderToEndLatency']['p50Ms'] for x in rep])} / "
                 f"{fmt([x['orderToEndLatency']['p99Ms'] for x in rep])} ms | "
                 f"{fmt([x['unfinished'] for x in rep], '', 0)} | "
                 f"{', '.join(sorted(set(str(x.get('invariants')) for x in rep)))} | "
                 f"{fmt([x['perOrder']['busyShare'] * 100 for x in rows], '%', 0)} |")
    return L


def _dig(v, path):
    for p in path:
        v = None if v is None else v.get(p)
    return v


def report(results, out):
    files = sorted(f for f in os.listdir(results) if f.endswith(".json"))
    by_label = {}
    for name in files:
        with open(f"{results}/{name}") as f:
            r = json.load(f)
        if not r.get("short"):
            by_label.setdefault(r["label"], []).append(r)
    empty = by_label.get("empty", [])[-2:]
    stored_label = next((l for l in sorted(by_label) if l.startswith("stored")), None)
    stored = by_label.get(stored_label, [])[-2:] if stored_label else []
    if not empty:
        sys.exit("no full run labelled 'empty' in " + results)

    def vals(runs, run, path):
        out = []
        for r in runs:
            v = r["runs"].get(run)
            for p in path:
                v = None if v is None else v.get(p)
            out.append(v)
        return out

    lat = lambda runs, run, which, q: vals(runs, run, ["report", which, q])
    thr = lambda runs, run: vals(runs, run, ["report", "throughputOrdersPerSecond"])
    cpo = lambda runs, run: vals(runs, run, ["perOrder", "totalUs"])
    m = empty[-1]["machine"]
    where = lambda runs: sorted({f"{r['machine']['cores']} cores ({r['machine']['cpu']}), "
                                 f"{r['machine']['nats']}" for r in runs})
    # Runs of another label compare with the `empty` runs only when made on the same machine.
    elsewhere = lambda runs: bool(runs) and where(runs) != where(empty)
    apart = lambda runs: ([f"The runs compared here were made on different machines or NATS releases: the runs above on "
                           f"{'; '.join(where(empty))}, these on {'; '.join(where(runs))}. The "
                           "comparison holds only once both are made again on one machine.", ""]
                          if elsewhere(runs) else [])
    dates = ", ".join(r["date"][:16].replace("T", " ") + " UTC"
                      for r in empty + stored + by_label.get("cluster-r3", [])[-2:]
                      + by_label.get("traced", [])[-2:] + by_label.get("change-over", [])[-2:])
    L = ["# Benchmarks", "",
         "Measured by `scripts/bench.sh` (the four services in release build, NATS and PostgreSQL "
         "on one machine, fresh databases, the load generator `saga-load` on the same machine). "
         "Every figure below is from the newest two runs; where they differ, the range is given.", "",
         f"- runs: {dates}",
         f"- machine: {m['cores']} cores ({m['cpu']}), {m['memGiB']} GiB, kernel {m['kernel']}; "
         f"PostgreSQL {m['postgres']} with its default settings (synchronous_commit on, fsync on); "
         f"{m['nats']}",
         *[f"- the `{label}` runs: {'; '.join(where(runs[-2:]))}" for label, runs in sorted(by_label.items())
           if label != "empty" and elsewhere(runs[-2:])],
         "- commands: `scripts/bench.sh` (fresh databases), `scripts/bench.sh --stored 10000000` "
         "(the latency run and the closed loop at 64 on databases holding 10 million orders) and "
         "`scripts/bench.sh --cluster` (the closed loop at 64 with three NATS replicas) and "
         "`scripts/bench.sh --traced` (with spans exported) and `scripts/bench.sh --change-over` "
         "(both majors of each event published)", "",
         "Every run but `--change-over` runs the services with `PUBLISH_MAJORS=2`: the state once a "
         "change-over of majors is over (docs/upgrading.md), each event published once. The default, "
         "`1,2`, is for the change-over; its cost is in its own section below.", ""]

    # Targets.
    p200 = lambda runs: lat(runs, "rate-200", "postLatency", "p99Ms")
    e50 = lambda runs: lat(runs, "rate-200", "orderToEndLatency", "p50Ms")
    e99 = lambda runs: lat(runs, "rate-200", "orderToEndLatency", "p99Ms")
    ok = lambda vs, pred: all(v is not None and pred(v) for v in vs)
    inv = lambda runs, run: vals(runs, run, ["report", "invariants"])
    unf = lambda runs, run: vals(runs, run, ["report", "unfinished"])
    cpu_rates = ["rate-20", "rate-50", "rate-200", "rate-1000", "closed-64", "closed-128",
                 "closed-256", "closed-512"]
    all_cpu = [v for run in cpu_rates for v in cpo(empty, run)]
    rss_all = [r["rssMiB"][s] for r in empty for s in SERVICES]
    idle_ms = [sum(r["idle"]["cpu"].values()) / r["idle"]["seconds"] * 1000 for r in empty]
    L += ["## Targets", "", "| target | measured | |", "| --- | --- | --- |",
          f"| 200 orders/s open loop, 60 s: POST p99 ≤ 5 ms | {fmt(p200(empty), ' ms')} | {verdict(ok(p200(empty), lambda v: v <= 5))} |",
          f"| … order-to-end p50 ≤ 10 ms | {fmt(e50(empty), ' ms')} | {verdict(ok(e50(empty), lambda v: v <= 10))} |",
          f"| … order-to-end p99 ≤ 25 ms | {fmt(e99(empty), ' ms')} | {verdict(ok(e99(empty), lambda v: v <= 25))} |"]
    for run in ("closed-64", "closed-128"):
        n = run.split("-")[1]
        good = ok(thr(empty, run), lambda v: v >= 3000) and ok(inv(empty, run), lambda v: v == "hold") \
            and ok(unf(empty, run), lambda v: v == 0)
        L.append(f"| closed loop, {n} in flight, 60 s: ≥ 3,000 orders/s first POST to last end, all "
                 f"terminal, invariants holding | {fmt(thr(empty, run), '/s', 0)}; unfinished "
                 f"{fmt(unf(empty, run), '', 0)}; invariants {', '.join(sorted(set(str(v) for v in inv(empty, run))))} | {verdict(good)} |")
    sched = lambda runs, run: vals(runs, run, ["perOrder", "schedTotalUs"])
    sw = lambda runs, run: vals(runs, run, ["perOrder", "switchesTotal"])
    for run, limit, what in (("rate-20", 4000, "at 20/s"), ("rate-200", 2000, "at 200/s"),
                             ("closed-64", 800, "at saturation (closed loop, 64 in flight)")):
        L.append(f"| CPU per order, all processes, {what}: ≤ {limit:,} µs | ticks {fmt(cpo(empty, run), ' µs', 0)}; "
                 f"schedstat {fmt(sched(empty, run), ' µs', 0)} | "
                 f"{verdict(ok(sched(empty, run) or cpo(empty, run), lambda v: v <= limit))} |")
    L += [f"| context switches per order at 20/s, all processes: ≤ 150 | {fmt(sw(empty, 'rate-20'), '', 0)} | "
          f"{verdict(ok(sw(empty, 'rate-20'), lambda v: v <= 150))} |",
          f"| peak RSS ≤ 64 MiB per service | {fmt(rss_all, ' MiB')} | {verdict(ok(rss_all, lambda v: v <= 64))} |",
          f"| idle CPU ~0 | {fmt(idle_ms, ' ms of CPU per second', 1)} (services, NATS and PostgreSQL together) | "
          f"{verdict(ok(idle_ms, lambda v: v <= 20))} |"]
    if stored:
        for what, f_empty, f_stored in (
                ("200/s POST p99", p200(empty), p200(stored)),
                ("200/s order-to-end p50", e50(empty), e50(stored)),
                ("200/s order-to-end p99", e99(empty), e99(stored)),
                ("closed loop 64: orders/s", thr(empty, "closed-64"), thr(stored, "closed-64"))):
            worse = (lambda a, b: b < a * 0.8) if "orders/s" in what else (lambda a, b: b > a * 1.2)
            good = bool(f_empty and f_stored) and not worse(max(f_empty) if "orders/s" in what
                                                            else min(f_empty),
                                                            min(f_stored) if "orders/s" in what
                                                            else max(f_stored))
            L.append(f"| growth: {what} with {stored_label.split('-')[1]} orders stored, within 20% | "
                     f"empty {fmt(f_empty)}, stored {fmt(f_stored)} | "
                     f"{'not comparable (other machine or NATS release)' if elsewhere(stored) else verdict(good)} |")
    L.append("")

    # Overload.
    over = ["closed-128", "closed-256", "closed-512"]
    if any(run in r["runs"] for r in empty for run in over):
        rep = lambda run, key: vals(empty, run, ["report", key])
        best = max((v for run in ["closed-64"] + over for v in thr(empty, run) if v), default=0)
        L += ["## Past saturation (SPEC 12)", "",
              "Closed loops of 128, 256 and 512 POSTs in flight, 60 s each: every task of `saga-load` "
              "sends its next order as soon as the last was accepted, and a refused one (503 "
              "`OVERLOADED` with `Retry-After`) again after the time it names plus up to a second. "
              "\"Offered\" counts every POST sent per second, accepted or refused: above the orders "
              "ended per second, the client asks for more than the system ends. order-service's "
              "admission (`ORDER_ADMISSION_MAX_AGE_MS`, `ORDER_ADMISSION_MAX_WRITING`, "
              "docs/operations.md) refuses what it cannot end within its bound. Order-to-end counts "
              "accepted orders, from the POST that was accepted.", "",
              "| POSTs in flight | offered POSTs/s | orders ended/s | of the best closed loop | refusals | "
              "other 5xx, failures | POST p99 | order-to-end p50 / p99 | invariants |",
              "| --- " * 9 + "|"]
        for run in over:
            if not any(run in r["runs"] for r in empty):
                continue
            share = [v / best * 100 for v in thr(empty, run) if v and best]
            L.append(f"| {run.split('-')[1]} | {fmt(rep(run, 'attemptsPerSecond'), '', 0)} | "
                     f"{fmt(thr(empty, run), '', 0)} | {fmt(share, '%', 0)} | {fmt(rep(run, 'refusals'), '', 0)} | "
                     f"{fmt(rep(run, 'serverErrors'), '', 0)}, {fmt(rep(run, 'postFailures'), '', 0)} | "
                     f"{fmt(lat(empty, run, 'postLatency', 'p99Ms'), ' ms')} | "
                     f"{fmt(lat(empty, run, 'orderToEndLatency', 'p50Ms'), ' ms', 0)} / "
                     f"{fmt(lat(empty, run, 'orderToEndLatency', 'p99Ms'), ' ms', 0)} | "
                     f"{', '.join(sorted(set(str(v) for v in inv(empty, run))))} |")
        none = by_label.get("no-admission", [])[-2:]
        if none:
            L += ["", "The same loops with admission off (`scripts/bench.sh --no-admission`: "
                  "`ORDER_ADMISSION_MAX_AGE_MS=0`, `ORDER_ADMISSION_MAX_WRITING=0`), every order "
                  "accepted:", "",
                  "| POSTs in flight | offered POSTs/s | orders ended/s | POST p99 | order-to-end p50 / p99 | unfinished |",
                  "| --- " * 6 + "|"]
            for run in over:
                rows = [r["runs"][run]["report"] for r in none if run in r["runs"]]
                if not rows:
                    continue
                L.append(f"| {run.split('-')[1]} | {fmt([x['attemptsPerSecond'] for x in rows], '', 0)} | "
                         f"{fmt([x['throughputOrdersPerSecond'] for x in rows], '', 0)} | "
                         f"{fmt([x['postLatency']['p99Ms'] for x in rows], ' ms')} | "
                         f"{fmt([x['orderToEndLatency']['p50Ms'] for x in rows], ' ms', 0)} / "
                         f"{fmt([x['orderToEndLatency']['p99Ms'] for x in rows], ' ms', 0)} | "
                         f"{fmt([x['unfinished'] for x in rows], '', 0)} |")
        e99s = [v for run in over for v in lat(empty, run, "orderToEndLatency", "p99Ms")]
        p99s = [v for run in over for v in lat(empty, run, "postLatency", "p99Ms")]
        shares = [v / best for run in over for v in thr(empty, run) if v and best]
        bad5xx = [v for run in over for k in ("serverErrors", "postFailures") for v in rep(run, k)]
        refused = [v for run in over for v in rep(run, "refusals")]
        L += ["", "| target | measured | |", "| --- | --- | --- |",
              f"| accepted orders' order-to-end p99 ≤ 2 s at every level | {fmt(e99s, ' ms', 0)} | {verdict(ok(e99s, lambda v: v <= 2000))} |",
              f"| POST p99 ≤ 100 ms | {fmt(p99s, ' ms')} | {verdict(ok(p99s, lambda v: v <= 100))} |",
              f"| orders ended per second ≥ 90% of the best closed loop ({best:,.0f}/s) | {fmt([v * 100 for v in shares], '%', 0)} | {verdict(ok(shares, lambda v: v >= 0.9))} |",
              f"| every refusal a 503 with Retry-After, no other 5xx | refusals {fmt(refused, '', 0)}; other 5xx and failures {fmt(bad5xx, '', 0)} | {verdict(ok(bad5xx, lambda v: v == 0) and ok(refused, lambda v: v > 0))} |",
              ""]

    # CPU per order.
    L += ["## CPU per order", "",
          "CPU time of each process group (/proc: user plus system) over the steady part of each run "
          "(from 5 s after its start to 3 s before its end), divided by the orders sent in that time "
          "(open loop: the rate; closed loop: the throughput). The load generator is not counted; the "
          "machine's busy share counts everything, the load generator and the kernel included.", "",
          "| run | orders/s | all | " + " | ".join(GROUPS) + " | cores used by these | machine busy |",
          "| --- " * (5 + len(GROUPS)) + "|"]
    for run in cpu_rates:
        rows = [r["runs"][run] for r in empty if run in r["runs"]]
        if not rows:
            continue
        cells = [fmt([x["perOrder"]["byGroupUs"][g] for x in rows], "", 0) for g in GROUPS]
        L.append(f"| {run} | {fmt([x['report']['throughputOrdersPerSecond'] for x in rows], '', 0)} | "
                 f"**{fmt([x['perOrder']['totalUs'] for x in rows], ' µs', 0)}** | " + " | ".join(cells) +
                 f" | {fmt([x['perOrder']['ourCoresUsed'] for x in rows], '', 2)} | "
                 f"{fmt([x['perOrder']['busyShare'] * 100 for x in rows], '%', 0)} |")
    L += ["", f"Idle, 10 s: " + ", ".join(
        f"{g} {fmt([r['idle']['cpu'].get(g, 0) / r['idle']['seconds'] * 1000 for r in empty], ' ms/s', 1)}"
        for g in GROUPS) + ".", ""]

    # What an order costs, counted.
    cost_runs = ["rate-20", "rate-50", "rate-200", "closed-64"]
    if any(r["runs"].get(run, {}).get("perOrder", {}).get("switches") for r in empty
           for run in cost_runs):
        po = lambda run, *path: [_dig(r["runs"].get(run), ["perOrder", *path]) for r in empty]
        L += ["## What an order costs", "",
              "Per order, over the same counted windows as the CPU above. CPU by schedstat "
              "(/proc/PID/task/*/schedstat: the time the scheduler ran each thread, in ns) beside "
              "the tick-based figure; context switches (voluntary and involuntary, summed over "
              "every thread of each group; new processes, PostgreSQL's backends among them, count "
              "from zero) and the machine's (/proc/stat `ctxt`, the load generator and the kernel "
              "included); PostgreSQL's commits (pg_stat_database) and statements "
              "(pg_stat_statements, BEGIN and COMMIT included) in each service's database; NATS "
              "messages in and out of the server (/varz), acks and pull requests included.", "",
              "| per order | " + " | ".join(cost_runs) + " |", "| --- " * (1 + len(cost_runs)) + "|"]
        row = lambda name, f: L.append(f"| {name} | " + " | ".join(f(run) for run in cost_runs) + " |")
        row("CPU, all (ticks)", lambda run: fmt(po(run, "totalUs"), " µs", 0))
        row("CPU, all (schedstat)", lambda run: fmt(po(run, "schedTotalUs"), " µs", 0))
        for g in GROUPS:
            row(f"… {g} (schedstat)", lambda run, g=g: fmt(po(run, "schedUs", g), " µs", 0))
        row("context switches, all", lambda run: fmt(po(run, "switchesTotal"), "", 0))
        for g in GROUPS:
            row(f"… {g}", lambda run, g=g: fmt(po(run, "switches", g), "", 1))
        row("… the machine's", lambda run: fmt(po(run, "machineSwitches"), "", 0))
        for db in DATABASES:
            row(f"commits, {db}", lambda run, db=db: fmt(po(run, "commits", db), "", 2))
        for db in DATABASES:
            row(f"statements, {db}", lambda run, db=db: fmt(po(run, "statements", db), "", 1))
        row("NATS messages in", lambda run: fmt(po(run, "natsIn"), "", 1))
        row("NATS messages out", lambda run: fmt(po(run, "natsOut"), "", 1))
        L.append("")

        # The statements of 20/s, most called first.
        st = (empty[-1]["runs"].get("rate-20", {}).get("counts") or {}).get("statements") or {}
        orders = _dig(empty[-1]["runs"].get("rate-20"), ["perOrder", "ordersInWindow"])
        if st and orders:
            top = sorted(st.values(), key=lambda v: -v["calls"])[:25]
            L += ["Statements at 20/s (newest run), most called first: calls per order, rows per "
                  "call, mean time per call.", "",
                  "| database | calls per order | rows per call | mean | statement |",
                  "| --- | --- | --- | --- | --- |"]
            for v in top:
                q = " ".join(v["query"].split())[:110].replace("|", "\\|")
                L.append(f"| {v['db']} | {v['calls'] / orders:.2f} | {v['rows'] / v['calls']:.1f} | "
                         f"{v['ms'] / v['calls'] * 1000:.0f} µs | `{q}` |")
            L.append("")

    # Rows read per order per table, empty and stored.
    tables = sorted({t for r in empty + stored for run in ("rate-200", "closed-64")
                     for t in (_dig(r["runs"].get(run), ["perOrder", "rowsRead"]) or {})})
    if tables:
        cols = [(run, name, runs) for run in ("rate-200", "closed-64")
                for name, runs in (("empty", empty), ("stored", stored))]
        L += ["## Rows read per order, per table", "",
              "Rows read by sequential scans plus rows fetched through an index "
              "(pg_stat_user_tables: `seq_tup_read + idx_tup_fetch`) per order, on fresh databases "
              f"and on databases holding {stored_label.split('-')[1] if stored_label else 'N'} "
              "orders (`--stored`). A figure that grows with what is stored is a statement that "
              "reads in proportion to a table's size.", "",
              "| table | " + " | ".join(f"{run} {name}" for run, name, _ in cols) + " |",
              "| --- " * (1 + len(cols)) + "|"]
        for t in tables:
            cells = [fmt([_dig(r["runs"].get(run), ["perOrder", "rowsRead", t]) for r in runs], "", 1)
                     for run, _, runs in cols]
            L.append(f"| {t} | " + " | ".join(cells) + " |")
        L.append("")

    # Runs.
    L += ["## Runs", "", "| run | orders | orders/s (first POST to last end) | POST p50 / p99 | "
          "order-to-end p50 / p90 / p99 | unfinished | invariants |", "| --- " * 7 + "|"]
    for label, runs in (("", empty), (" (stored)", stored)):
        for run in ["rate-20", "rate-50", "rate-200", "rate-1000", "closed-64", "closed-128",
                    "closed-256", "closed-512"]:
            rows = [r["runs"][run]["report"] for r in runs if run in r["runs"]]
            if not rows:
                continue
            g = lambda k, q: [x[k][q] for x in rows]
            L.append(f"| {run}{label} | {fmt([x['orders'] for x in rows], '', 0)} | "
                     f"{fmt([x['throughputOrdersPerSecond'] for x in rows], '', 0)} | "
                     f"{fmt(g('postLatency', 'p50Ms'))} / {fmt(g('postLatency', 'p99Ms'))} ms | "
                     f"{fmt(g('orderToEndLatency', 'p50Ms'))} / {fmt(g('orderToEndLatency', 'p90Ms'))} / "
                     f"{fmt(g('orderToEndLatency', 'p99Ms'))} ms | {fmt([x['unfinished'] for x in rows], '', 0)} | "
                     f"{', '.join(sorted(set(str(x.get('invariants')) for x in rows)))} |")
    L.append("")

    # Retention on the stored data.
    ret = [x for r in stored for x in r.get("retention", [])]
    if ret:
        L += ["## Retention's cost on the stored data", "",
              "One batch of the relays' retention deletes (`libs/messaging/src/outbox.rs`, `prune`) on "
              f"the databases holding {stored_label.split('-')[1]} orders, timed by `EXPLAIN ANALYZE` in a "
              "transaction rolled back (the statements as the relays run them, with ages that make each "
              "delete a full batch of the seeded rows).", "",
              "| rows | database | rows deleted | time |", "| --- | --- | --- | --- |"]
        for what in dict.fromkeys(x["rows"] for x in ret):
            xs = [x for x in ret if x["rows"] == what]
            L.append(f"| {what} | {xs[0]['database']} | {fmt([x['deleted'] for x in xs], '', 0)} | "
                     f"{fmt([x['ms'] for x in xs], ' ms', 1)} |")
        L.append("")

    # Tracing.
    traced = by_label.get("traced", [])[-2:]
    if traced:
        L += ["## Traces exported", "",
              "The latency run and the closed loop at 64 with `OTEL_EXPORTER_OTLP_ENDPOINT` set on every "
              "service (`scripts/bench.sh --traced`): every span of every order is exported by OTLP/HTTP "
              "to a sink on this machine that reads and discards them (its CPU is in the machine's busy "
              "share, not in \"all\"). Without the setting (the runs above) no span is made; the trace "
              "context still travels with each event (an outbox column and a NATS header).", "",
              ] + apart(traced) + comparison([(run, name, runs) for run in ("rate-200", "closed-64")
                              for name, runs in (("no exporter", empty), ("OTLP", traced))])
        L.append("")

    # Both majors published.
    change = by_label.get("change-over", [])[-2:]
    if change:
        L += ["## During a change-over (both majors published)", "",
              "The latency run and the closed loop at 64 with the producers publishing both majors of "
              "`order.created` and the payment events (`PUBLISH_MAJORS=1,2`, the default, "
              "`scripts/bench.sh --change-over`) against the runs above (`PUBLISH_MAJORS=2`). Each "
              "consumer of those events then receives every one twice, through its durable of each "
              "major, and handles it once: the copy that comes second waits for the first one's "
              "transaction (the batch's locks), finds its event in the inbox and is acked. That is "
              "twice the messages, outbox rows and deliveries of those events while the change-over "
              "lasts; retiring the old major (`PUBLISH_MAJORS=2`) ends it.", "",
              ] + apart(change) + comparison([(run, name, runs) for run in ("rate-200", "closed-64")
                              for name, runs in (("newest major", empty), ("both majors", change))])
        L.append("")

    # Three replicas.
    cluster = by_label.get("cluster-r3", [])[-2:]
    if cluster:
        L += ["## One replica and three (closed loop, 64 in flight)", "",
              "The same closed loop on a three-node NATS cluster on this machine (`scripts/bench.sh "
              "--cluster`: `NATS_CLUSTER=3 scripts/up.sh`, every stream with three replicas, the "
              "services connected to all three nodes) against the single server of the runs above. "
              "With three replicas a publish is acknowledged once two of the three nodes stored it, so "
              "every event costs a round of the cluster's replication; here all three nodes share the "
              "two cores with everything else.", "",
              ] + apart(cluster) + comparison([("closed-64", name, runs) for name, runs in
                              (("one server, R1", empty), ("three nodes, R3", cluster))])
        L.append("")

    # Hops.
    L += ["## Where an order's time goes (200 orders/s)", "",
          "From the saga coordinator's history of the orders created in the counted window: when each "
          "event was written (its `occurredAt`, stamped by its producer in the transaction that writes "
          "it to the outbox) and when the coordinator took it (`receivedAt`, in its transaction). "
          "\"written → decided\" spans the producer's commit, the relay's publish, JetStream, the "
          "consumer's pull, its transaction up to the decision. The confirmed path is POST → "
          "`order.created` → payment and inventory (in parallel) → coordinator → `saga.completed` → "
          "order-service → `order.confirmed`.", "",
          "| hop | p50 | p90 | p99 |", "| --- | --- | --- | --- |"]
    hop_names = []
    for r in empty:
        for h in r["runs"].get("rate-200", {}).get("hops", []):
            if h["hop"] not in hop_names:
                hop_names.append(h["hop"])
    for name in hop_names:
        pick = lambda q: [h[q] for r in empty for h in r["runs"]["rate-200"].get("hops", [])
                          if h["hop"] == name]
        L.append(f"| {name} | {fmt(pick('p50'), ' ms', 2)} | {fmt(pick('p90'), ' ms', 2)} | "
                 f"{fmt(pick('p99'), ' ms', 2)} |")
    L += ["", "POST to `order.created` written, and `order.confirmed` written to the load generator "
          "seeing it, are the rest of the order-to-end figure above.", ""]

    # RSS.
    L += ["## Memory", "", "Peak RSS (VmHWM) of each service after all the runs: " + ", ".join(
        f"{s} {fmt([r['rssMiB'][s] for r in empty], ' MiB')}" for s in SERVICES) + ".", ""]

    # Profiles, from runs of their own.
    newest = empty[-1]
    profiles = newest.get("profiles") or {}
    pg = profiles.get("rate-20")
    if pg:
        text = profile_text(pg["text"])
        head, _, rest = text.partition("\n")
        try:
            off = json.loads(head)
        except ValueError:
            off, rest = None, text
        p = pg["perOrder"]
        commits = sum((p.get("commits") or {}).values())
        pg_us = (p.get("schedUs") or {}).get("postgresql")
        pg_sw = (p.get("switches") or {}).get("postgresql")
        L += ["## PostgreSQL at 20 orders/s (profile, newest run)", "",
              "A run of its own (30 s at 20/s; perf is in no figure above): `perf record -F 999 -a -g` "
              "for the CPU, and `perf record -e sched:sched_switch -a -g` for why PostgreSQL's "
              "processes leave the CPU, each switch classed by the frames of its stack.", ""]
        if commits and pg_us is not None:
            L.append(f"- per order: {commits:.2f} commits, PostgreSQL CPU {pg_us:,.0f} µs "
                     f"(schedstat), {pg_sw:,.0f} context switches: per commit "
                     f"{pg_us / commits:,.0f} µs of CPU and {pg_sw / commits:.1f} switches.")
        if off and off.get("switches"):
            total = off["switches"]
            L.append(f"- why a postgres process left the CPU ({total:,} switches in 15 s): " + "; ".join(
                f"{k} {v / total * 100:.0f}%" for k, v in
                sorted(off["reasons"].items(), key=lambda kv: -kv[1])) + ".")
        L += ["", "```", rest.strip(), "```", ""]
    whole = profiles.get("closed-64")
    if whole:
        L += ["## Profile: closed loop, 64 in flight (newest run)", "",
              "A run of its own; `perf record -F 499 -a` for 15 s.", "", "```",
              profile_text(whole["text"]).strip(), "```", ""]

    marker = "<!-- written by hand below -->"
    kept = ""
    if os.path.exists(out):
        old = open(out).read()
        if marker in old:
            kept = old[old.index(marker):]
    with open(out, "w") as f:
        f.write("\n".join(L) + "\n" + (kept or marker + "\n"))
    log(f"wrote {out}")


def main():
    args = sys.argv[1:]
    opt = lambda name, default=None: args[args.index(name) + 1] if name in args else default
    if args[:1] == ["run"]:
        run(opt("--label", "empty"), opt("--results"), "--short" in args)
    elif args[:1] == ["report"]:
        report(opt("--results"), opt("--out"))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
