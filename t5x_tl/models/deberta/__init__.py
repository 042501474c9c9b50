"""DeBERTa-v2/v3: disentangled-attention encoders numerically equal to Hugging Face's, both ways."""
