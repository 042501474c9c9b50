"""Train or resume a job: ``python scripts/train.py --config=configs/<job>.py --workdir=<dir>``."""

from t5x_tl.cli import train_main

if __name__ == "__main__":
    train_main()
