"""Run (or continue) the Learning-to-Execute curriculum study and write its table and chart.

python scripts/curriculum_study.py --config=configs/curriculum_study.py --study_dir=/tmp/t5x_tl_curriculum \
  [--config.seeds="(0,1)" --config.study.train.train.steps=300 ...]

Writes results.md, results.csv, results.json and relative_to_baseline.png in --study_dir; rerunning the same
command after a stop reuses finished runs and resumes the interrupted one from its checkpoint.
"""

from t5x_tl.experiments.study_cli import run

if __name__ == "__main__":  # spawned worker processes import this file and must not run the study
    run("configs/curriculum_study.py", "t5x_tl.experiments.curriculum_study")
