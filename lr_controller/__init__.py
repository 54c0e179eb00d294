"""lr_controller: learned learning-rate control (Xu et al. 2019) in TensorFlow/Keras.

The user's surface needs TensorFlow only (`pip install lr_controller`):
`LearnedLRScheduler`, the Keras callback that applies a trained controller in
`fit` (`LearnedLRScheduler.from_preset("general", ...)` applies the one that
ships); `list_presets` and `describe`, which name the shipped controllers and
say in one line what one was trained on; and `load_policy`, which loads and
checks an exported policy. Training controllers needs the `train` extra
(tf-agents, Reverb, TFP, gin).
"""

__all__ = ["LearnedLRScheduler", "describe", "list_presets", "load_policy"]


def __getattr__(name: str):
  # Lazy: `import lr_controller` stays free of TensorFlow until these are used.
  if name == "LearnedLRScheduler":
    from lr_controller.callback import LearnedLRScheduler

    return LearnedLRScheduler
  if name in ("list_presets", "describe"):
    from lr_controller import presets

    return getattr(presets, name)
  if name == "load_policy":
    from lr_controller.controller import load_policy

    return load_policy
  raise AttributeError(f"module 'lr_controller' has no attribute {name!r}")
