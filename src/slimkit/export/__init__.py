"""Safe persistence and deployable export."""

from slimkit.export.serialize import CHANGES, load_model, read_spec, record_change, save_model

__all__ = ["CHANGES", "load_model", "read_spec", "record_change", "save_model"]
