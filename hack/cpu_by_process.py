"""CPU seconds by kind of process while something runs (session 50: where the test suite's
CPU goes). Every INTERVAL s it reads each process's utime+stime from /proc/PID/stat until
STOP exists, then writes {kind: [cpu seconds, processes]} to OUT as JSON, and every process
of more than MIN_CPU s (kind, seconds seen alive, CPU s, command line) to OUT.pids.json. A process that
lives less than INTERVAL s, and the last INTERVAL s of any, are missed; a process already
running at the start counts from then.

    python3 hack/cpu_by_process.py /tmp/stop cpu.json &  bash .ci/run; touch /tmp/stop
"""
import os, sys, time, json, collections
INTERVAL = 3.0
MIN_CPU = 2.0
stop, out = sys.argv[1], sys.argv[2]
tick = os.sysconf("SC_CLK_TCK")
seen = {}  # pid -> (class, cpu seconds max)
def klass(pid):
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
    except OSError:
        return None
    words = [c.decode(errors="replace") for c in cmd if c]
    if not words:
        return None
    exe = os.path.basename(words[0])
    joined = " ".join(words)
    if "python" in exe:
        if "-m wukong run" in joined or "wukong run" in joined or "runpy" in joined and "wukong" in joined:
            return "python: operator subprocess"
        if "-c" in words and "wukong" in joined:
            return "python: prepared operator"
        if "-m wukong" in joined:
            return "python: wukong cli/demo subprocess"
        if "xdist" in joined or "pytest" in joined or "execnet" in joined or "-c" in words:
            return "python: pytest (tests, in-process operator, simulator)"
        return "python: other " + " ".join(words[1:3])[:60]
    return exe[:40]
first_sweep = True
while not os.path.exists(stop):
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            f = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        fields = f.rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick
        pid = int(d)
        if pid not in seen:
            k = klass(pid)
            if k is None:
                continue
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ")
            except OSError:
                continue
            now = time.monotonic()
            seen[pid] = [k, cpu, cpu if first_sweep else 0.0, now, now, cmd.decode(errors="replace")[:300]]
        else:
            seen[pid][1] = max(seen[pid][1], cpu)
            seen[pid][4] = time.monotonic()
    first_sweep = False
    time.sleep(INTERVAL)
tot = collections.Counter(); n = collections.Counter()
for k, c, base, *_ in seen.values():
    tot[k] += c - base; n[k] += 1
json.dump({k: [round(v, 1), n[k]] for k, v in tot.most_common()}, open(out, "w"), indent=1)
start = min((v[3] for v in seen.values()), default=0.0)
pids = [
    {"pid": pid, "kind": k, "from": round(t0 - start), "alive": round(t1 - t0), "cpu": round(c - base, 1), "cmd": cmd}
    for pid, (k, c, base, t0, t1, cmd) in seen.items() if c - base >= MIN_CPU
]
json.dump(sorted(pids, key=lambda p: -p["cpu"]), open(out + ".pids.json", "w"), indent=1)
