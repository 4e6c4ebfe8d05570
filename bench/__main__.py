"""Run the benchmarks and print one table: `python -m bench [--audit-entries N]`.

Ratios are against baselines measured in the same run, on the same machine.
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--audit-entries", type=int, default=200_000)
    args = parser.parse_args()

    from bench._django import setup_bench_django

    backend = setup_bench_django()
    from bench import audit

    rows = audit.run(args.audit_entries)
    failed = False
    print(f"\nCaravan benchmarks (database: {backend})\n")
    header = (
        f"{'benchmark':32} {'entries':>9} {'seconds':>8} {'entries/s':>12} "
        f"{'vs scan':>8} {'target/s':>10} {'met':>4}"
    )
    print(header)
    print("-" * len(header))
    scan_rate = rows[0]["n"] / rows[0]["seconds"]
    for row in rows:
        rate = row["n"] / row["seconds"]
        target = row.get("target")
        met = "" if target is None else ("yes" if rate >= target else "NO")
        failed |= met == "NO"
        print(
            f"{row['name']:32} {row['n']:>9,} {row['seconds']:>8.3f} {rate:>12,.0f} "
            f"{rate / scan_rate:>8.2f} {'' if target is None else f'{target:,}':>10} {met:>4}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
