"""The unsupervised objectives of the T5 objective study as SeqIO preprocessors, and their noise."""
