"""SeqIO pretraining and benchmark tasks over text: the built-in corpus, your own files, TFDS and C4."""
