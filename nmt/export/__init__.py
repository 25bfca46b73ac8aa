"""Shipping a trained model: a text-to-text SavedModel, or a LiteRT model with a tiny runner.

`nmt.export.exporter.export_model` is what `nmt export` calls. This package file imports
nothing, so `python -m nmt.export.litert_runner` stays free of TensorFlow.
"""
