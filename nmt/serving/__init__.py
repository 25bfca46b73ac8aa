"""`nmt serve`: a trained model behind HTTP, with requests that arrive together decoded together."""
