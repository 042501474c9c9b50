"""Multi-task learning on a low-resource task: single-task, hard sharing, shared encoder, soft L2 and soft KL.

python scripts/multitask_study.py --config=configs/multitask_study.py --study_dir=/tmp/t5x_tl_multitask
"""

from t5x_tl.experiments.study_cli import run

if __name__ == "__main__":
    run("configs/multitask_study.py", "t5x_tl.experiments.multitask_study")
