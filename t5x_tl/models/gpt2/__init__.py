"""GPT-2 (OpenAI's, as Hugging Face's ``GPT2LMHeadModel`` / ``GPT2ForSequenceClassification``) in Flax NNX:
config.py (GPT2Config and config.json), layers.py (attention, MLP, block), model.py (the LM with cached
decoding, the classifier), hf.py (checkpoints both ways)."""
