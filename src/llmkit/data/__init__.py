"""Data: the built-in corpus, text readers, training windows."""
