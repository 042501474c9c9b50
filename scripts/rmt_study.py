"""The Recurrent Memory Transformer study: memory tasks with and without memory, the oracle, and controls.

python scripts/rmt_study.py --config=configs/rmt_study.py --study_dir=/tmp/t5x_tl_rmt
"""

from t5x_tl.experiments.study_cli import run

if __name__ == "__main__":
    run("configs/rmt_study.py", "t5x_tl.experiments.rmt_study")
