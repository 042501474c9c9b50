"""t5x_tl: T5-style transfer learning in JAX/Flax NNX, with SeqIO tasks and Orbax checkpoints."""

from setuptools import find_packages, setup

setup(
    name="t5x_tl",
    version="0.1.0",
    description="T5-style transfer learning in JAX/Flax NNX: SeqIO tasks, sharded training, Orbax checkpoints.",
    packages=find_packages(include=["t5x_tl", "t5x_tl.*"]),
    python_requires=">=3.11",
    install_requires=[
        # jax 0.10.x is the newest line for Python 3.11; 3.12 machines get 0.11.x.
        "jax>=0.10.2,<0.12",
        "flax>=0.12.8,<0.13",
        "optax>=0.2.8,<0.3",
        "orbax-checkpoint>=0.12.8,<0.13",
        "seqio==0.0.20",
        # TensorFlow is only the input pipeline; tensorflow-text must match its minor version.
        "tensorflow>=2.21,<2.22",
        "tensorflow-text>=2.21,<2.22",
        "tensorflow-datasets>=4.9.10,<5",
        "ml-collections>=1.1,<2",
        "sentencepiece>=0.2,<0.3",
        "absl-py>=2",
        "numpy>=2,<3",
        "tqdm>=4.66",
        "tensorboard>=2.21,<2.22",
        "safetensors>=0.4,<1",  # Hugging Face checkpoints, read and written without torch
        # Downstream evaluation metrics (t5x_tl.eval.metrics).
        "scikit-learn>=1.9,<2",
        "scipy>=1.17,<2",
        "rouge-score>=0.1.2,<0.2",
        "sacrebleu>=2.6,<3",
        "matplotlib>=3.9,<4",  # the charts that experiment drivers write
    ],
    extras_require={
        # torch is pinned to the CPU build kept on disk; an open range pulls CUDA wheels.
        "test": ["pytest>=8", "hypothesis>=6", "ruff>=0.6", "torch==2.13.0", "transformers>=5,<6"],
    },
    entry_points={"console_scripts": ["t5x_tl-train=t5x_tl.cli:train_main"]},
)
