"""The in-context-learning study: train a small decoder-only model on fresh mappings, then accuracy by K.

python scripts/icl_study.py --config=configs/icl_study.py --study_dir=/tmp/t5x_tl_icl
"""

from t5x_tl.experiments.study_cli import run

if __name__ == "__main__":
    run("configs/icl_study.py", "t5x_tl.experiments.icl_study")
