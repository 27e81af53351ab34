"""Record what PyFlink prints for every run of ``runs.py`` into ``expected/``.

Run it with a Python that has ``apache-flink`` installed (and Java 17 on the PATH)::

    PATH=/path/to/pyflink-venv/bin:$PATH python tests/pyflink_compat/record.py \\
        --examples /path/to/pyflink/examples/datastream [run names...]

PyFlink starts its Python workers with the ``python`` found on the PATH, hence the PATH.
Only outputs are written to the repository, never PyFlink's code.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runs import EXPECTED, PROGRAMS, all_runs, arguments, output_lines  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", required=True, help="pyflink/examples/datastream")
    parser.add_argument("names", nargs="*", help="only these runs")
    options = parser.parse_args()
    examples = Path(options.examples)
    EXPECTED.mkdir(exist_ok=True)
    failed = 0
    for run in all_runs():
        if options.names and run.name not in options.names:
            continue
        script = examples / run.script if run.example else PROGRAMS / run.script
        with tempfile.TemporaryDirectory() as scratch:
            output_dir = Path(scratch) / "out"
            result = subprocess.run(
                [sys.executable, str(script), *arguments(run, output_dir)],
                capture_output=True,
                text=True,
                timeout=600,
                cwd=scratch,
                env=os.environ.copy(),
            )
            if result.returncode != 0:
                failed += 1
                print(f"FAILED {run.name}:\n{result.stderr[-3000:]}", file=sys.stderr)
                continue
            lines = output_lines(result.stdout, output_dir)
        (EXPECTED / f"{run.name}.txt").write_text("".join(f"{line}\n" for line in lines))
        print(f"recorded {run.name}: {len(lines)} lines")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
