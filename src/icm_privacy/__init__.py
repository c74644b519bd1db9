"""How much face identity survives image codecs."""
