"""Run (or continue) the T5 objective study and write its table and chart.

python scripts/objective_study.py --config=configs/objective_study.py --study_dir=/tmp/t5x_tl_objectives \
  [--config.seeds="(0,1,2)" --config.workers=2 --config.pretrain.train.steps=600 ...]

Writes results.md, results.csv, results.json and objective_study.png in --study_dir; rerunning the same
command after a stop reuses finished runs and resumes the interrupted ones from their checkpoints.
"""

from t5x_tl.experiments.study_cli import run

if __name__ == "__main__":  # spawned worker processes import this file and must not run the study
    run("configs/objective_study.py", "t5x_tl.experiments.objective_study")
