"""How much ``%load_ext nbchat`` adds to starting an IPython shell.

Each round starts a fresh interpreter that makes an IPython shell and then either loads nbchat
or does nothing more; the difference of the medians is what the extension costs. Both variants
run interleaved in the same loop so that a noisy machine slows them alike.

    python benchmarks/load_time.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

SHELL = (
    "from IPython.core.interactiveshell import InteractiveShell; ip = InteractiveShell.instance()"
)
VARIANTS = {
    "IPython shell alone": SHELL,
    "+ %load_ext nbchat": SHELL + "; ip.run_line_magic('load_ext', 'nbchat')",
    "+ %load_ext nbchat + first session": SHELL
    + "; ip.run_line_magic('load_ext', 'nbchat'); import nbchat; nbchat.get_session()",
}


def wall_time(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    for code in VARIANTS.values():  # warm the disk cache
        wall_time(code)
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(rounds):
        for name, code in VARIANTS.items():
            times[name].append(wall_time(code))
    baseline = statistics.median(times["IPython shell alone"])
    print(f"median of {rounds} fresh interpreters each")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<38} {median * 1000:7.0f} ms   +{(median - baseline) * 1000:5.0f} ms")
    added = statistics.median(times["+ %load_ext nbchat"]) - baseline
    print(f"%load_ext nbchat adds {added * 1000:.0f} ms (target ≤ 150 ms)")


if __name__ == "__main__":
    main()
