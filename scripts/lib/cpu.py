#!/usr/bin/env python3
"""CPU time and context switches of the system under test, from /proc.

    cpu.py snap --service NAME=PID ... --nats PID[,PID...] --db-prefix PREFIX   (a JSON snapshot)
    cpu.py diff BEFORE.json AFTER.json                                 (prints seconds per group)

For each process, summed over its threads (/proc/PID/task/*): user plus system time in clock
ticks (stat), the exact time on a CPU and the time runnable but waiting for one, in nanoseconds
(schedstat), and the voluntary and involuntary context switches (status).

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


def process(pid):
    """{ticks, ns, waitNs, voluntary, involuntary} of one process, summed over its threads; None
    if it is gone."""
    total = {"ticks": 0, "ns": 0, "waitNs": 0, "voluntary": 0, "involuntary": 0}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        base = f"/proc/{pid}/task/{tid}"
        try:
            with open(f"{base}/stat") as f:
                stat = f.read()
            with open(f"{base}/schedstat") as f:
                ns, wait_ns = (int(v) for v in f.read().split()[:2])
            with open(f"{base}/status") as f:
                status = f.read()
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended while it was read
        fields = stat[stat.rindex(")") + 2:].split()
        total["ticks"] += int(fields[11]) + int(fields[12])
        total["ns"] += ns
        total["waitNs"] += wait_ns
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total["voluntary"] += int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                total["involuntary"] += int(line.split()[1])
    return total


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
    """(busy ticks, all ticks, context switches) of the whole machine."""
    with open("/proc/stat") as f:
        lines = f.read().splitlines()
    values = [int(v) for v in lines[0].split()[1:]]
    idle = values[3] + values[4]
    switches = next(int(line.split()[1]) for line in lines if line.startswith("ctxt "))
    return sum(values[:8]) - idle, sum(values[:8]), switches


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
    # Per process, so that a process that exits between two snapshots (a backend) is counted
    # for none of its time rather than as a negative amount.
    pids = {name: [pid] for name, pid in services.items()}
    if nats:
        pids["nats-server"] = nats.split(",")
    if prefix is not None:
        pids["postgresql"] = postgres_pids(prefix)
    groups = {name: {pid: p for pid in ps if (p := process(pid)) is not None}
              for name, ps in pids.items()}
    busy, total, switches = machine_ticks()
    return {"at": time.time(), "groups": groups,
            "machine": {"busy": busy, "total": total, "switches": switches},
            "cores": os.cpu_count()}


def diff(before, after):
    span = after["at"] - before["at"]
    out = {"seconds": span, "cpu": {}, "cpuSched": {}, "runQueueWait": {}, "switches": {}}
    for name, procs in after["groups"].items():
        old = before["groups"].get(name, {})
        # A process started in between (a backend the pool opened) counts from zero: all of its
        # life is in the window.
        zero = {"ticks": 0, "ns": 0, "waitNs": 0, "voluntary": 0, "involuntary": 0}
        both = [(old.get(pid, zero), now) for pid, now in procs.items()]
        delta = lambda key: sum(max(0, now[key] - was[key]) for was, now in both)
        out["cpu"][name] = delta("ticks") / HZ
        out["cpuSched"][name] = delta("ns") / 1e9
        out["runQueueWait"][name] = delta("waitNs") / 1e9
        out["switches"][name] = {"voluntary": delta("voluntary"),
                                 "involuntary": delta("involuntary")}
    busy = after["machine"]["busy"] - before["machine"]["busy"]
    total = after["machine"]["total"] - before["machine"]["total"]
    out["machineBusyShare"] = busy / total if total else 0.0
    out["machineBusySeconds"] = busy / HZ
    out["machineSwitches"] = after["machine"]["switches"] - before["machine"]["switches"]
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
