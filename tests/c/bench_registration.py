"""Client CPU per x509 registration through the real C SDK (scripts/sdk-interop.sh --bench N).

    python3 bench_registration.py N ID_DIR SCOPE SERVER_CA DEV_A CONFIG_A DEV_B CONFIG_B [DEVICE_OPTIONS...]

DEVICE_OPTIONS go to both device programs: `--transport amqp` measures AMQP registrations (HTTPS
without); with `--hub mqtt --no-twin` each run also connects to
the assigned IoT hub and sends one message (it must end with "hub done"), which is what is measured.

Runs N alternating registrations of device program A (the rustls tlsio, a SoftHSM key) and B
(the SDK's OpenSSL tlsio, a PEM key) against the running emulator, measures each process's
user+sys CPU (wait4 rusage), user CPU and wall time, and prints the medians and the ratios A/B
measured in this one run.
"""
import os
import statistics
import subprocess
import sys
import time


EXTRA = []


def check(dev, config, code, out):
    if code != 0 or not out.startswith(b"assigned") or ("--hub" in EXTRA and b"\nhub done" not in out):
        raise SystemExit(f"bench: {dev} with {config} did not register{' and send' if '--hub' in EXTRA else ''} "
                         f"(exit {code})")


def one(dev, config, id_dir, scope, server_ca):
    env = dict(os.environ, HSM_ABI_CONFIG=os.path.join(id_dir, config))
    env.pop("HSM_ABI_LOG", None)
    start = time.monotonic()
    p = subprocess.Popen(
        [dev, "--id-scope", scope, "--endpoint", "localhost", "--attestation", "x509",
         "--trusted-ca", server_ca, "--timeout", "60", *EXTRA],
        cwd=id_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - start
    check(dev, config, p.returncode, out)
    return (usage.ru_utime + usage.ru_stime) * 1000, wall * 1000, usage.ru_utime * 1000


def instructions(dev, config, id_dir, scope, server_ca):
    """User-space instructions of one registration under callgrind: independent of the load."""
    env = dict(os.environ, HSM_ABI_CONFIG=os.path.join(id_dir, config))
    env.pop("HSM_ABI_LOG", None)
    out = os.path.join(id_dir, f"callgrind.{os.getpid()}")
    r = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", dev, "--id-scope", scope,
         "--endpoint", "localhost", "--attestation", "x509", "--trusted-ca", server_ca, "--timeout", "60", *EXTRA],
        cwd=id_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    check(dev, config, r.returncode, r.stdout)
    with open(out) as f:
        total = next(int(line.split()[1]) for line in f if line.startswith("summary:"))
    os.remove(out)
    return total


def main():
    if len(sys.argv) < 9:
        raise SystemExit(__doc__)
    EXTRA.extend(sys.argv[9:])
    n = int(sys.argv[1])
    id_dir, scope, server_ca = sys.argv[2:5]
    dev_a, config_a, dev_b, config_b = sys.argv[5:9]
    a, b = [], []
    one(dev_a, config_a, id_dir, scope, server_ca)  # warm-up (page cache, token files)
    one(dev_b, config_b, id_dir, scope, server_ca)
    for _ in range(n):
        a.append(one(dev_a, config_a, id_dir, scope, server_ca))
        b.append(one(dev_b, config_b, id_dir, scope, server_ca))
    cpu_a = statistics.median(x[0] for x in a)
    cpu_b = statistics.median(x[0] for x in b)
    wall_a = statistics.median(x[1] for x in a)
    wall_b = statistics.median(x[1] for x in b)
    user_a = statistics.median(x[2] for x in a)
    user_b = statistics.median(x[2] for x in b)
    load = open("/proc/loadavg").read().split()[0]
    what = "registrations + hub connection and one message" if "--hub" in EXTRA else "registrations"
    print(f"bench: {n} {what} each ({' '.join(EXTRA) or '--transport http'}), load average {load}")
    print(f"bench: rustls tlsio + SoftHSM key: CPU {cpu_a:.1f} ms (user {user_a:.1f}), wall {wall_a:.0f} ms (median)")
    print(f"bench: OpenSSL tlsio + PEM key:    CPU {cpu_b:.1f} ms (user {user_b:.1f}), wall {wall_b:.0f} ms (median)")
    ir_a = instructions(dev_a, config_a, id_dir, scope, server_ca)
    ir_b = instructions(dev_b, config_b, id_dir, scope, server_ca)
    print(f"bench: instructions (callgrind, one run each): rustls {ir_a / 1e6:.1f} M, OpenSSL {ir_b / 1e6:.1f} M, "
          f"ratio {ir_a / ir_b:.2f}x")
    print(f"bench: CPU ratio rustls/OpenSSL = {cpu_a / cpu_b:.2f}x (target <= 0.5x); user time only {user_a / user_b:.2f}x")


if __name__ == "__main__":
    main()
