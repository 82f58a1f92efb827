"""Search a live process's memory for a private key (scripts/sdk-interop.sh).

    python3 scan_memory.py PID SCALAR_FILE KEY_PEM

Reads every readable mapping of PID through /proc/PID/mem and looks for the key's private
scalar (as stored big-endian, and byte-reversed as little-endian bignum limbs hold it) and for
each base64 line of its PEM text. Prints what was found where; exits 1 when anything was
found, 0 when nothing was, 2 when the scan itself failed (so "absent" is never a broken scan).
"""
import re
import sys


def needles(scalar_path, pem_path):
    d = open(scalar_path, "rb").read()
    if len(d) < 16:
        raise SystemExit(f"scan_memory: {scalar_path} holds {len(d)} bytes, not a private scalar")
    found = {"scalar": d, "scalar reversed": d[::-1]}
    for i, line in enumerate(open(pem_path).read().splitlines()):
        if line and not line.startswith("-----") and len(line) >= 40:
            found[f"PEM line {i}"] = line.encode()
    return found


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    pid, scalar_path, pem_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    wanted = needles(scalar_path, pem_path)
    hits = []
    scanned = 0
    try:
        maps = open(f"/proc/{pid}/maps").read().splitlines()
        mem = open(f"/proc/{pid}/mem", "rb", 0)
    except OSError as e:
        print(f"scan_memory: cannot read process {pid}: {e}")
        sys.exit(2)
    for line in maps:
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)\s+\S+\s+\S+\s+\S+\s*(.*)", line)
        if not m or not m.group(3).startswith("r"):
            continue
        start, end, name = int(m.group(1), 16), int(m.group(2), 16), m.group(4)
        if name in ("[vvar]", "[vsyscall]"):
            continue
        try:
            mem.seek(start)
            data = mem.read(end - start)
        except (OSError, ValueError, OverflowError):
            continue
        scanned += len(data)
        for what, needle in wanted.items():
            at = data.find(needle)
            if at >= 0:
                hits.append(f"{what} at {start + at:#x} in {name or '[anonymous]'}")
    if scanned < 1 << 20:
        print(f"scan_memory: only {scanned} bytes readable in process {pid}")
        sys.exit(2)
    print(f"scanned {scanned >> 20} MiB of process {pid}")
    for h in hits:
        print(f"found {h}")
    sys.exit(1 if hits else 0)


if __name__ == "__main__":
    main()
