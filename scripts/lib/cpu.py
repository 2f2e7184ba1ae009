#!/usr/bin/env python3
"""CPU time of the system under test, from /proc.

    cpu.py snap --service NAME=PID ... --nats PID[,PID...] --db-prefix PREFIX   (a JSON snapshot)
    cpu.py diff BEFORE.json AFTER.json                                 (prints seconds per group)

Groups: each service by name, nats-server (every node of a cluster), postgresql (the backends of the databases whose name
starts with PREFIX, and the server's own processes: postmaster, checkpointer, WAL writer,
background writer, autovacuum), and the machine as a whole (/proc/stat: every CPU's busy time,
whatever process, kernel threads included). Backends of other databases are left out, so another
program using the same PostgreSQL server does not count.
"""
import json
import os
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


AUX = ("checkpointer", "background", "walwriter", "autovacuum", "logical", "archiver", "stats",
       "walreceiver", "walsender", "startup")


def postgres_processes():
    """Every PostgreSQL process: (pid, parent pid, process title words after the cluster name)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "postgres":
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").split()
            with open(f"/proc/{pid}/status") as f:
                ppid = next(line.split()[1] for line in f if line.startswith("PPid:"))
        except (OSError, StopIteration):
            continue
        # A child's title is "postgres: [cluster:] user database host state" for a backend and
        # "postgres: [cluster:] checkpointer" (and so on) for the server's own processes.
        if cmdline[:1] == ["postgres:"]:
            title = cmdline[1:]
            if title and title[0].endswith(":"):
                title = title[1:]
        else:
            title = None  # the postmaster
        found.append((pid, ppid, title))
    return found


def postgres_pids(prefix):
    """The backends of the databases named PREFIX*, and the processes of the server they belong
    to (postmaster, checkpointer, WAL writer, autovacuum of those databases); nothing of another
    server or of another database."""
    processes = postgres_processes()
    ours = [(pid, ppid) for pid, ppid, title in processes
            if title and len(title) >= 2 and not title[0].startswith(AUX)
            and title[1].startswith(prefix)]
    servers = {ppid for _, ppid in ours}
    pids = [pid for pid, _ in ours] + [pid for pid in servers]
    for pid, ppid, title in processes:
        if ppid in servers and title and title[0].startswith(AUX):
            if title[:2] == ["autovacuum", "worker"] and len(title) > 2 \
                    and not title[2].startswith(prefix):
                continue
            pids.append(pid)
    return pids


def machine_ticks():
    with open("/proc/stat") as f:
        cpu = f.readline().split()[1:]
    values = [int(v) for v in cpu]
    idle = values[3] + values[4]
    return sum(values[:8]) - idle, sum(values[:8])


def snap(args):
    services, nats, prefix = {}, None, None
    i = 0
    while i < len(args):
        if args[i] == "--service":
            name, pid = args[i + 1].split("=")
            services[name] = pid
        elif args[i] == "--nats":
            nats = args[i + 1]
        elif args[i] == "--db-prefix":
            prefix = args[i + 1]
        else:
            sys.exit(f"unknown argument {args[i]}")
        i += 2
    groups = {}
    for name, pid in services.items():
        groups[name] = ticks(pid) or 0
    if nats:
        groups["nats-server"] = {pid: ticks(pid) or 0 for pid in nats.split(",")}
    if prefix is not None:
        # Per process, so that a backend that exits between two snapshots is not counted as a
        # negative amount.
        groups["postgresql"] = {pid: ticks(pid) or 0 for pid in postgres_pids(prefix)}
    busy, total = machine_ticks()
    return {"at": time.time(), "groups": groups, "machine": {"busy": busy, "total": total},
            "cores": os.cpu_count()}


def diff(before, after):
    span = after["at"] - before["at"]
    out = {"seconds": span, "cpu": {}}
    for name, value in after["groups"].items():
        old = before["groups"].get(name, 0)
        if isinstance(value, dict):
            used = sum(t - old.get(pid, 0) for pid, t in value.items() if t >= old.get(pid, 0))
        else:
            used = value - old
        out["cpu"][name] = used / HZ
    busy = after["machine"]["busy"] - before["machine"]["busy"]
    total = after["machine"]["total"] - before["machine"]["total"]
    out["machineBusyShare"] = busy / total if total else 0.0
    out["machineBusySeconds"] = busy / HZ
    out["cores"] = after["cores"]
    return out


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "snap":
        print(json.dumps(snap(sys.argv[2:])))
    elif len(sys.argv) == 4 and sys.argv[1] == "diff":
        with open(sys.argv[2]) as a, open(sys.argv[3]) as b:
            print(json.dumps(diff(json.load(a), json.load(b))))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
