"""lr_controller: learned learning-rate control (Xu et al. 2019) in TensorFlow/Keras."""

__all__ = ["LearnedLRScheduler"]


def __getattr__(name: str):
  # Lazy: `import lr_controller` stays free of TensorFlow until the callback is used.
  if name == "LearnedLRScheduler":
    from lr_controller.callback import LearnedLRScheduler

    return LearnedLRScheduler
  raise AttributeError(f"module 'lr_controller' has no attribute {name!r}")
