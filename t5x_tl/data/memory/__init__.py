"""Tasks for a Recurrent Memory Transformer: facts segments away from the question, users' long documents."""
