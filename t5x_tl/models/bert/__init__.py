"""The BERT family (BERT, RoBERTa): post-LayerNorm encoders numerically equal to Hugging Face's, both ways."""
