"""Search algorithms (model-agnostic) and the Translator that runs them on a trained model."""
