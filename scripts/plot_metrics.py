"""Plot a run's metrics.jsonl: python scripts/plot_metrics.py RUN_DIR [--out DIR]"""

import argparse
import sys

from trm_jax.errors import TRMError
from trm_jax.plotting import plot_metrics


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run_dir")
    ap.add_argument("--out", default=None, help="output folder (default RUN_DIR/plots)")
    args = ap.parse_args(argv)
    try:
        paths = plot_metrics(args.run_dir, args.out)
    except TRMError as e:
        sys.exit(f"error: {e}")
    print("\n".join(paths))


if __name__ == "__main__":
    from launcher import launch

    launch(main)
