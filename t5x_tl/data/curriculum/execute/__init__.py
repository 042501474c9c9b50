"""Learning to Execute: generated programs and their SeqIO tasks, by family and difficulty."""
